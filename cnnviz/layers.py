"""Which layers qualify for which probe: the one place that decides.

    activations, stats   every layer with an output worth looking at (not Input, Flatten,
                         Dropout: they only pass values on)
    patterns             layers with maps or units to optimise: conv, dense, and pooling
                         right after a conv layer
    kernels              conv layers
    compare              conv layers and hidden dense layers (the output layer's order is
                         fixed by the classes, so matching it means nothing)
"""

from __future__ import annotations

from cnnviz.errors import UsageError
from cnnviz.runtime import import_tensorflow

import_tensorflow()  # quietly, before Keras

import keras  # noqa: E402

PROBES = ("activations", "stats", "patterns", "kernels", "compare")
_PASS_THROUGH = (keras.layers.InputLayer, keras.layers.Flatten, keras.layers.Dropout)
_OPTIMISABLE = (keras.layers.Conv2D, keras.layers.Dense, keras.layers.MaxPooling2D,
                keras.layers.AveragePooling2D)


def layers_for(model: keras.Model, probe: str) -> list[str]:
    """The names of the layers `probe` works on, in model order."""
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if probe in ("activations", "stats"):
        return [layer.name for layer in layers if not isinstance(layer, _PASS_THROUGH)]
    if probe == "patterns":
        return [layer.name for layer in layers if isinstance(layer, _OPTIMISABLE)
                and (isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))
                     or isinstance(_source(layer), keras.layers.Conv2D))]
    if probe == "kernels":
        return [layer.name for layer in layers if isinstance(layer, keras.layers.Conv2D)]
    if probe == "compare":
        dense = [layer.name for layer in layers if isinstance(layer, keras.layers.Dense)]
        return layers_for(model, "kernels") + dense[:-1]
    raise ValueError(f"unknown probe {probe!r}; valid: {', '.join(PROBES)}")


def check_layers(model: keras.Model, names: list[str], probe: str) -> None:
    """Refuse (UsageError naming the layers that do qualify) any name `probe` cannot use."""
    valid = layers_for(model, probe)
    bad = [name for name in names if name not in valid]
    if not bad:
        return
    why = {"patterns": "has no maps or units to optimise (it only reshapes, or is a pool "
                       "layer not right after a conv layer); patterns need one of",
           "kernels": "is not a conv layer; kernels exist for",
           "compare": "cannot be compared; comparable layers"}.get(probe, "cannot be probed; valid")
    raise UsageError(f"{bad[0]} {why}: {', '.join(valid) or 'none in this model'}", "layers")


def _source(layer):
    """The layer whose output feeds `layer` (None when it is not a single layer)."""
    history = getattr(layer.input, "_keras_history", None)
    return getattr(history, "operation", None)
