"""An independent forward pass in float64 NumPy: every layer computed from its configuration
and weights, never by TensorFlow, to check that what cnnviz shows is what Keras computes.

    values = forward(model, inputs, ["conv1", "output"])   # float64 arrays

Supported: Conv2D, DepthwiseConv2D, SeparableConv2D (strides, same/valid padding, dilation),
Dense, max/average/global pooling, BatchNormalization (inference), activation layers and
functions, Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Flatten, Reshape,
ZeroPadding2D, Cropping2D, Rescaling, Normalization, and training-only layers (Dropout,
noise, …) as the identity; nested models through cnnviz.graph. Any other layer raises
Unsupported naming it: the pass stops there, it never skips a layer.

Convolutions come twice, as the articles wrote them: `conv2d_naive`, loops a reader can
follow (the tests' reference), and `conv2d`, the same sums over sliding windows (numpy's
sliding_window_view and one einsum), used by the pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from cnnviz.errors import CnnvizError
from cnnviz.graph import graph_of
from cnnviz.runtime import import_tensorflow

import_tensorflow()  # quietly, before Keras

import keras  # noqa: E402

L = keras.layers


class Unsupported(CnnvizError):
    """A layer the NumPy pass has no implementation of (named, with its kind)."""


# ---- activation functions ----------------------------------------------------------------

def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def _gelu(x, approximate=False):
    if approximate:
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + _erf(x / np.sqrt(2)))


def _sigmoid(x):
    return 0.5 * (1 + np.tanh(x / 2))  # = 1 / (1 + e^-x), without overflow


SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805
FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0),
    "relu6": lambda x: np.clip(x, 0, 6),
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "softmax": _softmax,
    "log_softmax": lambda x: x - x.max(-1, keepdims=True)
    - np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True)),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "selu": lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0))),
    "softplus": lambda x: np.logaddexp(0, x),
    "softsign": lambda x: x / (1 + np.abs(x)),
    "swish": lambda x: x * _sigmoid(x),
    "silu": lambda x: x * _sigmoid(x),
    "gelu": _gelu,
    "exponential": np.exp,
    "hard_sigmoid": lambda x: np.clip(x / 6 + 0.5, 0, 1),
    "hard_silu": lambda x: x * np.clip(x / 6 + 0.5, 0, 1),
    "hard_swish": lambda x: x * np.clip(x / 6 + 0.5, 0, 1),
    "leaky_relu": lambda x: np.where(x >= 0, x, 0.2 * x),
    "mish": lambda x: x * np.tanh(np.logaddexp(0, x)),
}


def activation(function, where: str) -> Callable[[np.ndarray], np.ndarray]:
    """The NumPy twin of a Keras activation function (by its name)."""
    name = getattr(function, "__name__", str(function))
    if name not in FUNCTIONS:
        raise Unsupported(f"{where}: activation {name!r} has no NumPy implementation in cnnviz; "
                          f"known: {', '.join(FUNCTIONS)}")
    return FUNCTIONS[name]


# ---- convolutions ------------------------------------------------------------------------

def pads(size: int, kernel: int, stride: int, padding: str) -> tuple[int, int]:
    """(before, after) padding of one axis, as TensorFlow pads `same` (the smaller half first)."""
    if padding == "valid":
        return 0, 0
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _padded(x: np.ndarray, kernel, strides, dilation, padding: str, fill: float = 0.0):
    sides = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    (t, b), (left, r) = (pads(n, k, s, padding) for n, k, s in zip(x.shape[1:3], sides, strides))
    return np.pad(x, ((0, 0), (t, b), (left, r), (0, 0)), constant_values=fill), sides


def windows(x: np.ndarray, kernel, strides, dilation=(1, 1), padding="valid",
            fill: float = 0.0) -> np.ndarray:
    """(N, H', W', C, kh, kw): the input window each output position reads (a view)."""
    padded, sides = _padded(x, kernel, strides, dilation, padding, fill)
    view = np.lib.stride_tricks.sliding_window_view(padded, sides, axis=(1, 2))
    return view[:, ::strides[0], ::strides[1], :, ::dilation[0], ::dilation[1]]


def conv2d(x: np.ndarray, kernel: np.ndarray, strides=(1, 1), padding="valid",
           dilation=(1, 1)) -> np.ndarray:
    """Vectorised: every output position's window times the kernel, summed (one einsum)."""
    return np.einsum("nhwcij,ijco->nhwo", windows(x, kernel.shape[:2], strides, dilation, padding),
                     kernel, optimize=True)


def conv2d_naive(x: np.ndarray, kernel: np.ndarray, strides=(1, 1), padding="valid",
                 dilation=(1, 1)) -> np.ndarray:
    """The readable reference: for each image, output position and map, the sum over the
    kernel's rows, columns and input channels of input × weight."""
    padded, _ = _padded(x, kernel.shape[:2], strides, dilation, padding)
    kh, kw, cin, cout = kernel.shape
    rows = (padded.shape[1] - (dilation[0] * (kh - 1) + 1)) // strides[0] + 1
    cols = (padded.shape[2] - (dilation[1] * (kw - 1) + 1)) // strides[1] + 1
    out = np.zeros((len(x), rows, cols, cout))
    for n in range(len(x)):
        for i in range(rows):
            for j in range(cols):
                for o in range(cout):
                    total = 0.0
                    for a in range(kh):
                        for b in range(kw):
                            for c in range(cin):
                                total += padded[n, i * strides[0] + a * dilation[0],
                                                j * strides[1] + b * dilation[1], c] \
                                    * kernel[a, b, c, o]
                    out[n, i, j, o] = total
    return out


def depthwise2d(x: np.ndarray, kernel: np.ndarray, strides=(1, 1), padding="valid",
                dilation=(1, 1)) -> np.ndarray:
    """kernel (kh, kw, C, M): channel c's window times its own kernels → C·M maps (c·M + m)."""
    found = np.einsum("nhwcij,ijcm->nhwcm", windows(x, kernel.shape[:2], strides, dilation,
                                                    padding), kernel, optimize=True)
    return found.reshape(*found.shape[:3], -1)


# ---- the layers ----------------------------------------------------------------------------

def _w(variable) -> np.ndarray:
    return np.asarray(variable, np.float64)


def _conv(layer, x):
    if layer.groups != 1:
        raise Unsupported(f"{layer.name}: grouped convolution (groups={layer.groups})")
    out = conv2d(x, _w(layer.kernel), layer.strides, layer.padding, layer.dilation_rate)
    return out + _w(layer.bias) if layer.use_bias else out


def _depthwise(layer, x):
    out = depthwise2d(x, _w(layer.kernel), layer.strides, layer.padding, layer.dilation_rate)
    return out + _w(layer.bias) if layer.use_bias else out


def _separable(layer, x):
    inner = depthwise2d(x, _w(layer.depthwise_kernel), layer.strides, layer.padding,
                        layer.dilation_rate)
    out = np.einsum("nhwc,co->nhwo", inner, _w(layer.pointwise_kernel)[0, 0], optimize=True)
    return out + _w(layer.bias) if layer.use_bias else out


def _dense(layer, x):
    out = x @ _w(layer.kernel)
    return out + _w(layer.bias) if layer.use_bias else out


def _pool(layer, x):
    pool, strides = layer.pool_size, layer.strides or layer.pool_size
    if isinstance(layer, L.MaxPooling2D):
        return windows(x, pool, strides, padding=layer.padding, fill=-np.inf).max(axis=(4, 5))
    values = windows(x, pool, strides, padding=layer.padding)
    counts = windows(np.ones_like(x[:1, ..., :1]), pool, strides, padding=layer.padding)
    return values.sum(axis=(4, 5)) / counts.sum(axis=(4, 5))  # padding is not counted


def _global(layer, x):
    reduce = np.max if isinstance(layer, L.GlobalMaxPooling2D) else np.mean
    return reduce(x, axis=(1, 2), keepdims=bool(getattr(layer, "keepdims", False)))


def _batch_norm(layer, x):
    axis = layer.axis if isinstance(layer.axis, int) else layer.axis[0]
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    mean, var = (_w(v).reshape(shape) for v in (layer.moving_mean, layer.moving_variance))
    out = (x - mean) / np.sqrt(var + layer.epsilon)
    if layer.scale:
        out = out * _w(layer.gamma).reshape(shape)
    return out + _w(layer.beta).reshape(shape) if layer.center else out


def _normalization(layer, x):
    mean, var = _w(layer.mean), _w(layer.variance)
    if layer.invert:
        return mean + x * np.sqrt(var)
    return (x - mean) / np.maximum(np.sqrt(var), keras.config.epsilon())


def _relu(layer, x):
    slope, limit, floor = layer.negative_slope, layer.max_value, layer.threshold
    out = np.where(x >= floor, x, slope * (x - floor))
    return out if limit is None else np.minimum(out, limit)


def _activation_layer(layer, x):
    if isinstance(layer, L.ReLU):
        return _relu(layer, x)
    if isinstance(layer, L.LeakyReLU):
        return np.where(x >= 0, x, layer.negative_slope * x)
    if isinstance(layer, L.ELU):
        return np.where(x > 0, x, layer.alpha * np.expm1(np.minimum(x, 0)))
    if isinstance(layer, L.PReLU):
        return np.where(x >= 0, x, _w(layer.alpha) * x)
    if isinstance(layer, L.Softmax):
        return _softmax(x, layer.axis if isinstance(layer.axis, int) else tuple(layer.axis))
    return activation(layer.activation, layer.name)(x)


def _merge(layer, xs):
    if isinstance(layer, L.Concatenate):
        return np.concatenate(xs, axis=layer.axis)
    if isinstance(layer, L.Subtract):
        return xs[0] - xs[1]
    reduce = next(f for kind, f in ((L.Add, np.sum), (L.Multiply, np.prod), (L.Average, np.mean),
                                    (L.Maximum, np.max), (L.Minimum, np.min))
                  if isinstance(layer, kind))
    return reduce(np.stack(xs), axis=0)


def _reshape(layer, x):
    if isinstance(layer, L.Flatten):
        return x.reshape(len(x), -1)
    return x.reshape(len(x), *layer.target_shape)


def _zero_padding(layer, x):
    (t, b), (left, r) = layer.padding
    return np.pad(x, ((0, 0), (t, b), (left, r), (0, 0)))


def _cropping(layer, x):
    (t, b), (left, r) = layer.cropping
    return x[:, t:x.shape[1] - b, left:x.shape[2] - r]


IDENTITY = (L.Dropout, L.SpatialDropout2D, L.GaussianNoise, L.GaussianDropout,
            L.ActivityRegularization, L.Identity, L.AlphaDropout)
WITH_ACTIVATION = (L.Conv2D, L.DepthwiseConv2D, L.SeparableConv2D, L.Dense)
# (kinds, implementation): the first match wins (SeparableConv2D before Conv2D's base).
IMPLEMENTATIONS: list[tuple[tuple, Callable]] = [
    ((L.SeparableConv2D,), _separable),
    ((L.DepthwiseConv2D,), _depthwise),
    ((L.Conv2D,), _conv),
    ((L.Dense,), _dense),
    ((L.MaxPooling2D, L.AveragePooling2D), _pool),
    ((L.GlobalAveragePooling2D, L.GlobalMaxPooling2D), _global),
    ((L.BatchNormalization,), _batch_norm),
    ((L.Normalization,), _normalization),
    ((L.Rescaling,), lambda layer, x: x * _w(layer.scale) + _w(layer.offset)),
    ((L.Activation, L.ReLU, L.LeakyReLU, L.ELU, L.PReLU, L.Softmax), _activation_layer),
    ((L.Flatten, L.Reshape), _reshape),
    ((L.ZeroPadding2D,), _zero_padding),
    ((L.Cropping2D,), _cropping),
    (IDENTITY, lambda layer, x: x),
]
MERGES = (L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum, L.Concatenate)


def implementation(layer) -> Callable:
    """The NumPy function of a layer (its own activation applied after), or Unsupported. A
    subclass is computed from its configuration, like its class: if its `call` computes
    something else, the check shows the deviation at that layer."""
    if isinstance(layer, MERGES):
        return _merge
    for kinds, function in IMPLEMENTATIONS:
        if isinstance(layer, kinds):
            if isinstance(layer, WITH_ACTIVATION):
                after = activation(layer.activation, layer.name)
                return lambda lay, x: after(function(lay, x))
            return function
    raise Unsupported(f"{layer.name}: {type(layer).__name__} has no NumPy implementation in "
                      "cnnviz; the check stops at this layer")


def call_layer(step, args, kwargs) -> np.ndarray:
    """One layer call of the flat graph in float64 NumPy."""
    layer = step.layer
    function = implementation(layer)
    if function is _merge:
        return _merge(layer, [np.asarray(a, np.float64) for a in args[0]])
    return function(layer, np.asarray(args[0], np.float64))


def forward(model, inputs: np.ndarray, wanted: list[str]) -> list[np.ndarray]:
    """The float64 values of the `wanted` layers for model inputs (already preprocessed)."""
    return graph_of(model).walk(np.asarray(inputs, np.float64), call_layer, wanted)


def first_unsupported(model) -> tuple[str, str] | None:
    """(address, kind) of the first layer the pass cannot compute, or None."""
    for step in graph_of(model).steps:
        if step.nested:
            continue
        try:
            implementation(step.layer)
        except Unsupported:
            return step.address, type(step.layer).__name__
    return None


@dataclass
class LayerCheck:
    """One layer of a verification: the largest deviation of the NumPy value from Keras'
    over the images, absolute and relative to the layer's largest |value|."""

    address: str
    kind: str
    max_abs: float = 0.0
    scale: float = 0.0

    @property
    def max_rel(self) -> float:
        return self.max_abs / self.scale if self.scale > 0 else self.max_abs

    def ok(self, tolerance: float) -> bool:
        return bool(np.isfinite(self.max_rel)) and self.max_rel <= tolerance


@dataclass
class Verification:
    """Every layer up to the first the pass cannot compute (`stopped_at`, its kind)."""

    layers: list[LayerCheck]
    images: int
    tolerance: float
    stopped_at: tuple[str, str] | None = None

    @property
    def ok(self) -> bool:
        return self.stopped_at is None and all(c.ok(self.tolerance) for c in self.layers)

    @property
    def worst(self) -> LayerCheck | None:
        return max(self.layers, key=lambda c: c.max_rel, default=None)


def verify(model, inputs: np.ndarray, tolerance: float = 1e-4, batch: int = 32,
           progress: Callable[[int], None] | None = None) -> Verification:
    """Keras' value of every layer against the float64 NumPy pass, batch by batch (memory
    bounded by `batch`), up to the first layer the pass cannot compute."""
    graph = graph_of(model)
    steps = [s for s in graph.steps if not s.nested]
    stopped = first_unsupported(model)
    if stopped is not None:
        steps = steps[:[s.address for s in steps].index(stopped[0])]
    checks = [LayerCheck(s.address, type(s.layer).__name__) for s in steps]
    for start in range(0, len(inputs), batch):
        x = np.asarray(inputs[start:start + batch], np.float32)
        if not checks:
            break
        addresses = [c.address for c in checks]
        theirs = graph.run(x, addresses)
        ours = forward(model, x, addresses)
        for check, keras_value, value in zip(checks, theirs, ours):
            keras_value = np.asarray(keras_value, np.float64)
            check.max_abs = max(check.max_abs, float(np.max(np.abs(value - keras_value),
                                                            initial=0.0)))
            check.scale = max(check.scale, float(np.max(np.abs(keras_value), initial=0.0)))
        if progress is not None:
            progress(len(x))
    return Verification(checks, len(inputs), tolerance, stopped)
