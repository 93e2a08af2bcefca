"""cnnviz: train a small CNN on MNIST-style images and look inside it."""

__version__ = "0.1.0"

from cnnviz.errors import CnnvizError, UsageError

__all__ = ["__version__", "CnnvizError", "UsageError"]
