"""Weights of conv layers as arrays ready to draw."""

from __future__ import annotations

import keras
import numpy as np

from cnnviz.graph import graph_of
from cnnviz.layers import check_layers


def conv_kernels(model: keras.Model, name: str) -> np.ndarray:
    """The spatial kernel of a convolution as float32 (kh, kw, in_channels, out_maps).

    DepthwiseConv2D and SeparableConv2D: the depthwise kernels, one per map it computes
    (kh, kw, 1, channels × multiplier); a separable layer's pointwise 1×1 mixing is not
    drawn."""
    check_layers(model, [name], "kernels")
    layer = graph_of(model).layer(name)
    if isinstance(layer, (keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)):
        kernel = layer.kernel if isinstance(layer, keras.layers.DepthwiseConv2D) \
            else layer.depthwise_kernel
        kernel = np.asarray(keras.ops.convert_to_numpy(kernel), dtype=np.float32)
        kh, kw, channels, multiplier = kernel.shape
        return kernel.reshape(kh, kw, 1, channels * multiplier)
    return np.asarray(keras.ops.convert_to_numpy(layer.kernel), dtype=np.float32)

