"""Weights of conv layers as arrays ready to draw."""

from __future__ import annotations

import keras
import numpy as np

from cnnviz.layers import check_layers


def conv_kernels(model: keras.Model, name: str) -> np.ndarray:
    """The kernel of a conv layer as float32 (kh, kw, in_channels, out_maps)."""
    check_layers(model, [name], "kernels")
    return np.asarray(keras.ops.convert_to_numpy(model.get_layer(name).kernel), dtype=np.float32)
