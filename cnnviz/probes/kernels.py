"""Weights of conv layers as arrays ready to draw."""

from __future__ import annotations

import keras
import numpy as np

from cnnviz.errors import UsageError
from cnnviz.layers import layers_for


def conv_layers(model: keras.Model) -> list[str]:
    return layers_for(model, "kernels")


def conv_kernels(model: keras.Model, name: str) -> np.ndarray:
    """The kernel of a conv layer as float32 (kh, kw, in_channels, out_maps)."""
    layer = model.get_layer(name)
    if not isinstance(layer, keras.layers.Conv2D):
        raise UsageError(f"{name} is not a conv layer; kernels exist for: "
                         f"{', '.join(conv_layers(model))}")
    return np.asarray(keras.ops.convert_to_numpy(layer.kernel), dtype=np.float32)
