"""What the ascent climbs: a layer's output as the network computes it, and the
pre-activation a silent ReLU map climbs instead until it wakes (see probes/patterns.py)."""

from __future__ import annotations

from typing import Callable

import keras

from cnnviz.graph import ACTIVATIONS, POOLS, graph_of
from cnnviz.layers import check_layers, has_activation, layers_for

GLOBAL_POOLS = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)


def response(model: keras.Model, name: str) -> Callable:
    """x → (pre-activation, post-activation) output of a layer; post is the layer's output
    as the network computes it.

    pre is: for a convolution or dense layer with its own activation, its linear part; for
    an activation layer, its input; for a pool (global ones too) right after either, the
    pool of their pre; for any other layer, post itself.
    Which layers qualify is cnnviz.layers' decision.
    """
    check_layers(model, [name], "patterns")
    graph = graph_of(model)
    layer = graph.layer(name)
    source = graph.source(name)
    if has_activation(layer):
        def linear(x):
            (inputs,) = graph.run(x, [], inputs_of=(name,))
            pre = linear_part(layer, inputs)
            return pre, layer.activation(pre)

        return linear
    if isinstance(layer, ACTIVATIONS) and len(graph.step(name).sources) == 1:
        def activated(x):
            post, inputs = graph.run(x, [name], inputs_of=(name,))
            return inputs, post

        return activated
    if isinstance(layer, POOLS + GLOBAL_POOLS) and source is not None and (
            isinstance(source.layer, ACTIVATIONS) or has_activation(source.layer)) \
            and source.address in layers_for(model, "patterns"):
        below = response(model, source.address)

        def pooled(x):
            pre, post = below(x)
            return layer(pre), layer(post)

        return pooled

    def plain(x):
        (post,) = graph.run(x, [name])
        return post, post

    return plain


def linear_part(layer, x):
    """The linear part of a convolution or dense layer (before its activation)."""
    if isinstance(layer, keras.layers.Dense):
        out = keras.ops.matmul(x, layer.kernel)
    elif isinstance(layer, keras.layers.SeparableConv2D):
        out = keras.ops.separable_conv(x, layer.depthwise_kernel, layer.pointwise_kernel,
                                       layer.strides, layer.padding, layer.data_format,
                                       layer.dilation_rate)
    elif isinstance(layer, keras.layers.DepthwiseConv2D):
        out = keras.ops.depthwise_conv(x, layer.kernel, layer.strides, layer.padding,
                                       layer.data_format, layer.dilation_rate)
    else:
        out = layer.convolution_op(x, layer.kernel)
    return out + layer.bias if layer.use_bias else out


def ends_in_softmax(layer) -> bool:
    """Whether a layer's output is a softmax (its own activation, a Softmax layer, or an
    Activation('softmax')): its class logits are the softmax's input."""
    if isinstance(layer, keras.layers.Softmax):
        return True
    activation = getattr(layer, "activation", None)
    if isinstance(activation, keras.layers.Softmax):
        return True
    name = getattr(activation, "__name__", "")  # keras' softmax, tf.nn.softmax (softmax_v2)
    return name in ("softmax", "softmax_v2") or (
        activation is not None and activation in (keras.activations.softmax, keras.ops.softmax))
