"""cnnviz: train a small CNN on MNIST-style images and look inside it.

    import cnnviz
    m = cnnviz.load("mnist-article2")          # a bundle name or folder, a .keras file, a keras.Model
    a = m.activations([17, 3], layers="conv2")  # a["conv2"]: (2, 11, 11, 64); a.show()
    p = m.patterns("conv3", maps=range(8))      # p.pixels (8, 28, 28) for a 28x28 gray input
    m.atlas("outputs/mnist-article2")

Importing cnnviz imports no TensorFlow; the first call that needs it does.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from cnnviz.errors import CnnvizError, CnnvizWarning, UsageError

if TYPE_CHECKING:
    from cnnviz.inspected import Inspected

from cnnviz.version import __version__
__all__ = ["__version__", "load", "train", "live", "CnnvizError", "CnnvizWarning", "UsageError",
           "Objective", "channel", "neuron"]
_OBJECTIVES = ("Objective", "channel", "neuron")


def __getattr__(name: str):
    """cnnviz.channel / neuron / Objective (composable pattern objectives), imported on first
    use so that `import cnnviz` stays free of TensorFlow."""
    if name in _OBJECTIVES:
        from cnnviz.runtime import import_tensorflow

        import_tensorflow()
        from cnnviz.probes import objectives

        return getattr(objectives, name)
    raise AttributeError(f"module 'cnnviz' has no attribute {name!r}")


def load(model: Any = None, trained_dir: str | Path = "trained",
         data: str | Path | None = None, dataset: str | None = None,
         preprocess: str | None = None, resize: bool = True,
         trust_model: bool = False) -> "Inspected":
    """Open a model: a bundle name or folder in `trained_dir`, a .keras file, a keras.Model
    object, or None for the newest bundle.

    data: a dataset file or folder to use instead of the bundle's own; dataset: mnist,
    fashion, cifar10 or cifar100 (default: the bundle's, else mnist). preprocess: how pixels
    become a plain model's input (unit, raw, symmetric, caffe, torch or "MEAN,STD"; default:
    detected from a leading Rescaling/Normalization layer, else unit). resize=False refuses
    data of another image size instead of converting it. trust_model=True loads a .keras
    file whose loading could run code stored in it (a Lambda layer): only files you trust."""
    from cnnviz.checks import path, text

    trained_dir, data = path(trained_dir, "trained_dir"), path(data, "data", optional=True)
    text(dataset, "dataset", optional=True)
    for name, value in (("resize", resize), ("trust_model", trust_model)):
        if not isinstance(value, bool):
            raise UsageError(f"{name} must be True or False, got {value!r}", name)
    from cnnviz.runtime import import_tensorflow

    import_tensorflow()
    from cnnviz.inputs import Preprocessing
    from cnnviz.inspected import Inspected
    from cnnviz.model import from_keras_model, load_model

    if preprocess is not None and not isinstance(preprocess, (str, Preprocessing)):
        raise UsageError(f"preprocess must be unit, raw, symmetric, caffe, torch or "
                         f"\"MEAN,STD\", got {preprocess!r}", "preprocess")
    import keras

    if model is not None and not isinstance(model, (str, Path, keras.Model)):
        raise UsageError(f"model must be a bundle name or folder, a .keras file or a "
                         f"keras.Model, got {type(model).__name__}", "model")

    if model is not None and not isinstance(model, (str, Path)):
        loaded = from_keras_model(model, preprocess)
    else:
        loaded = load_model(None if model is None else str(model), Path(trained_dir),
                            preprocess=preprocess, trust=trust_model or None)
    if loaded.preprocessing.origin == "default":  # what the command line prints as a note
        import warnings

        from cnnviz.model import input_note

        warnings.warn(CnnvizWarning(input_note(loaded.preprocessing)), stacklevel=2)
    return Inspected(loaded, data, dataset, resize)


def train(preset: str = "article2", name: str | None = None, dataset: str = "mnist",
          data: str | Path | None = None, trained_dir: str | Path = "trained",
          force: bool = False, progress: Callable[[int, dict], None] | None = None,
          strategy: Any = None, **settings: Any) -> "Inspected":
    """Train a network into trained_dir/NAME (a bundle) and return it opened.

    settings: any training setting by its name (epochs=3, learning_rate=1e-3, conv=[16, 32],
    seed=2, ...). progress(epoch, logs) is called after every epoch. An existing bundle is
    refused unless force=True. strategy: a tf.distribute strategy or its name (auto,
    default, mirrored, multi-worker; see cnnviz.distributed); batch_size is the global batch."""
    from cnnviz.runtime import import_tensorflow

    import_tensorflow()
    from cnnviz.training_run import train_new

    loaded = train_new(preset, name, dataset, data, Path(trained_dir), force, progress, settings,
                       strategy)
    from cnnviz.inspected import Inspected

    return Inspected(loaded, data)


def live(model: Any = None, port: int = 8765, host: str = "127.0.0.1",
         atlas: str | Path | None = None, **load_options: Any):
    """The live page of `cnnviz serve`, served from a background thread (a notebook goes on
    running): returns a handle with `.url` and `.stop()`. model: an opened model (what
    `load` returns) or anything `load` takes (load_options go to it); port 0 picks a free
    one; atlas: the folder served at /atlas/ (default outputs/NAME)."""
    from cnnviz.checks import path, text, whole

    port, host = whole(port, "port", 0, 65535), text(host, "host")
    folder = path(atlas, "atlas", optional=True)
    from cnnviz.inspected import Inspected

    opened = model if isinstance(model, Inspected) else load(model, **load_options)
    from cnnviz.serve.live import Live
    from cnnviz.serve.running import start_in_background

    folder = folder or Path("outputs") / opened.loaded.folder_name
    return start_in_background(Live(opened, folder), host, port)
