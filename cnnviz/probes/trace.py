"""The arithmetic of one activation: every number that produces the value of map `m` at
position (i, j) of a layer, in float64 from the inputs Keras fed that layer, checked against
the value Keras reports.

    t = trace_value(model, inputs, "conv2", 7, (3, 4))   # inputs: one preprocessed image
    t.steps[0].arrays["products"]    # (kh, kw, C): patch × kernel
    t.traced, t.reported, t.ok

The core step is the layer that combines values (a convolution, Dense, a pool, a merge, a
reshape); the steps after it are the pointwise layers between it and the layer asked for
(BatchNormalization with its statistics, activations, rescaling, inference no-ops), each
with its numbers. The check: |traced − reported| ≤ 1e-5 × the scale of the sum (the sum
of |terms|, at least |reported|): what float32 arithmetic can account for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cnnviz.errors import UsageError
from cnnviz.graph import graph_of
from cnnviz.probes import forward64 as f64
from cnnviz.probes.forward64 import L, Unsupported

TOLERANCE = 1e-5
POINTWISE_AFTER = (L.BatchNormalization, L.Activation, L.ReLU, L.LeakyReLU, L.ELU, L.PReLU,
                   L.Rescaling, L.Normalization) + f64.IDENTITY
TOP_INPUTS = 12  # Dense: the inputs shown by their contribution


@dataclass
class TraceStep:
    """One step: what it is, its numbers and arrays, and the value after it."""

    kind: str
    layer: str
    text: str
    value: float
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    numbers: dict[str, float] = field(default_factory=dict)


@dataclass
class Trace:
    layer: str
    map: int
    at: tuple[int, int] | None
    steps: list[TraceStep]
    reported: float
    scale: float                        # the sum of |terms| of the core step
    field: tuple[int, int, int, int] | None = None  # on the input: top, left, bottom, right

    @property
    def traced(self) -> float:
        return self.steps[-1].value

    @property
    def error(self) -> float:
        return abs(self.traced - self.reported)

    @property
    def ok(self) -> bool:
        return bool(self.error <= TOLERANCE * max(self.scale, abs(self.reported), 1e-30))

    def summary(self) -> str:
        where = f" at {self.at}" if self.at is not None else ""
        verdict = "equal" if self.ok else "DIFFERENT"
        return (f"{self.layer} map {self.map}{where}: traced {self.traced:.6g}, the network "
                f"reports {self.reported:.6g} ({verdict}: |difference| {self.error:.2g})")


def trace_value(model, inputs: np.ndarray, layer: str, index: int,
                at: tuple[int, int] | None = None) -> Trace:
    """The steps behind one value of `layer` for one preprocessed input (1, H, W, C)."""
    graph = graph_of(model)
    at = check_position(model, layer, index, at)
    chain = _chain(graph, layer)
    core = chain[0]
    values = graph.run(np.asarray(inputs, np.float32), chain, (core,))
    outputs = {name: np.asarray(v, np.float64)[0] for name, v in zip(chain, values)}
    fed = values[-1]
    fed = [np.asarray(v, np.float64) for v in fed] if isinstance(fed, (list, tuple)) \
        else np.asarray(fed, np.float64)
    where = (*at, index) if at is not None else (index,)
    step, scale = _core(graph.layer(core), core, fed, where)
    steps = [step]
    for name in chain[1:]:
        steps.append(_pointwise(graph.layer(name), name, steps[-1].value, where,
                                graph.shape(name)[1:]))
    box = graph.field_box(layer, *at) if at is not None else None
    return Trace(layer, index, at, steps, float(outputs[layer][where]), scale, box)


def check_position(model, layer: str, index: int, at) -> tuple[int, int] | None:
    """Refuse a map or position outside the layer (before any work); the position as ints."""
    shape = graph_of(model).shape(layer)
    if not 0 <= index < shape[-1]:
        raise UsageError(f"map {index} out of range; {layer} has maps 0–{shape[-1] - 1}", "map")
    if len(shape) == 4:
        if at is None or len(at) != 2 or not (0 <= at[0] < shape[1] and 0 <= at[1] < shape[2]):
            raise UsageError(f"at {at}: give a position (row, column) within {layer}'s "
                             f"{shape[1]}×{shape[2]}", "at")
        return int(at[0]), int(at[1])
    if at is not None:
        raise UsageError(f"{layer} has no positions (its output is {shape[1:]}); leave at out",
                         "at")
    return None


def _chain(graph, layer: str) -> list[str]:
    """[core, pointwise…, layer]: back from `layer` through single-input pointwise layers."""
    chain = [layer]
    while isinstance(graph.layer(chain[0]), POINTWISE_AFTER):
        source = graph.source(chain[0])
        if source is None or source.nested:
            break
        chain.insert(0, source.address)
    return chain


def _core(layer, name: str, fed, where) -> tuple[TraceStep, float]:
    """The combining step, in float64 from what Keras fed the layer; (step, scale)."""
    for kinds, function in CORES:
        if isinstance(layer, kinds):
            return function(layer, name, fed, where)
    if isinstance(layer, POINTWISE_AFTER):  # fed straight by the input
        value = float(f64.implementation(layer)(layer, fed)[0][where])
        return TraceStep("input", name, f"{name} of the input value {fed[0][where]:.6g}",
                         value, numbers={"input": float(fed[0][where])}), abs(value)
    raise Unsupported(f"{name}: tracing a {type(layer).__name__} is not supported")


def _with_activation(layer, name, total, text, arrays, numbers, scale, every=None):
    """The core's own activation, as part of its step's text and value. A softmax needs
    every map's pre-activation (`every`): e^z / Σ e^z over them."""
    function = getattr(layer, "activation", None)
    label = getattr(function, "__name__", "linear")
    if label == "softmax":
        shifted = np.exp(every - every.max())
        value = float(np.exp(total - every.max()) / shifted.sum())
        text += f"; softmax over the {len(every)} values: e^{total:.6g} / Σ e^z = {value:.6g}"
        numbers["pre_activation"] = total
        arrays["pre_activations"] = every
        return TraceStep(kind_of(layer), name, text, value, arrays, numbers), scale
    value = float(f64.activation(function, name)(np.asarray([total]))[0]) if function else total
    if label != "linear":
        text += f"; {label}({total:.6g}) = {value:.6g}"
        numbers["pre_activation"] = total
    return TraceStep(kind_of(layer), name, text, value, arrays, numbers), scale


def kind_of(layer) -> str:
    return type(layer).__name__


def _conv(layer, name, fed, where):
    i, j, m = where
    kh, kw = layer.kernel_size
    window = f64.windows(fed[:1], (kh, kw), layer.strides, layer.dilation_rate,
                         layer.padding)[0, i, j]                          # (C, kh, kw)
    patch = np.transpose(window, (1, 2, 0))
    if isinstance(layer, L.SeparableConv2D):
        depth = np.asarray(layer.depthwise_kernel, np.float64)            # (kh, kw, C, M)
        point = np.asarray(layer.pointwise_kernel, np.float64)[0, 0, :, m]  # (C·M,)
        inner = np.einsum("ijc,ijcq->cq", patch, depth).reshape(-1)       # depthwise values
        products = inner * point
        per_channel = products.reshape(patch.shape[2], -1).sum(axis=1)
        arrays = {"patch": patch, "depthwise": depth, "depthwise_values": inner,
                  "pointwise": point, "products": products, "per_channel": per_channel}
        what = f"Σ depthwise value × pointwise weight over {products.size}"
    elif isinstance(layer, L.DepthwiseConv2D):
        mult = layer.depth_multiplier
        channel, q = divmod(m, mult)
        kernel = np.asarray(layer.kernel, np.float64)[:, :, channel, q]
        patch = patch[:, :, channel]
        products = patch * kernel
        per_channel = np.array([products.sum()])
        arrays = {"patch": patch, "kernel": kernel, "products": products,
                  "per_channel": per_channel}
        what = f"Σ patch × kernel of input channel {channel} over {kh}×{kw}"
    else:
        kernel = np.asarray(layer.kernel, np.float64)[:, :, :, m]
        products = patch * kernel
        per_channel = products.sum(axis=(0, 1))
        arrays = {"patch": patch, "kernel": kernel, "products": products,
                  "per_channel": per_channel}
        what = f"Σ patch × kernel over {kh}×{kw}×{patch.shape[2]}"
    every = None
    if isinstance(layer, L.Conv2D) and not isinstance(layer, (L.SeparableConv2D,
                                                           L.DepthwiseConv2D)):
        every = np.einsum("ijc,ijco->o", patch, np.asarray(layer.kernel, np.float64)) + (
            np.asarray(layer.bias, np.float64) if layer.use_bias else 0)
    return _summed(layer, name, m, products, what, arrays, every)


def _summed(layer, name, m, products, what, arrays, every) -> tuple[TraceStep, float]:
    """Σ products, + the bias, then the layer's own activation."""
    total = float(products.sum())
    numbers = {"sum": total}
    text = f"{what} = {total:.6g}"
    if layer.use_bias:
        bias = float(np.asarray(layer.bias, np.float64)[m])
        numbers["bias"] = bias
        total += bias
        text += f"; + bias {bias:.6g} = {total:.6g}"
    return _with_activation(layer, name, total, text, arrays, numbers,
                            float(np.abs(products).sum()), every)


def _dense(layer, name, fed, where):
    m = where[-1]
    x = fed[0].reshape(-1) if fed.ndim == 2 else fed[0][where[:-1]]
    weights = np.asarray(layer.kernel, np.float64)[:, m]
    products = x * weights
    order = np.argsort(-np.abs(products))[:TOP_INPUTS]
    arrays = {"inputs": x, "weights": weights, "products": products, "top": order}
    every = x @ np.asarray(layer.kernel, np.float64) + (
        np.asarray(layer.bias, np.float64) if layer.use_bias else 0)
    return _summed(layer, name, m, products, f"Σ input × weight over {len(x)} inputs", arrays,
                   every)


def _pool(layer, name, fed, where):
    i, j, m = where
    pool, strides = layer.pool_size, layer.strides or layer.pool_size
    biggest = isinstance(layer, L.MaxPooling2D)
    window = f64.windows(fed[:1, ..., m:m + 1], pool, strides, padding=layer.padding,
                         fill=-np.inf if biggest else np.nan)[0, i, j, 0]
    inside = window[np.isfinite(window)]
    if biggest:
        value = float(inside.max())
        won = np.unravel_index(int(np.argmax(np.where(np.isfinite(window), window, -np.inf))),
                               window.shape)
        text = f"max of the {pool[0]}×{pool[1]} window = {value:.6g} (row {won[0]}, column {won[1]})"
        numbers = {"row": int(won[0]), "column": int(won[1])}
    else:
        value = float(inside.mean())
        text = f"mean of the {inside.size} values of the window = {value:.6g}"
        numbers = {"count": int(inside.size)}
    return TraceStep(kind_of(layer), name, text, value, {"window": window}, numbers), \
        float(np.abs(inside).max(initial=0.0))


def _global(layer, name, fed, where):
    m = where[-1]
    values = fed[0][..., m]
    biggest = isinstance(layer, L.GlobalMaxPooling2D)
    value = float(values.max() if biggest else values.mean())
    text = (f"{'max' if biggest else 'mean'} of map {m} over its {values.shape[0]}×"
            f"{values.shape[1]} positions = {value:.6g}")
    return TraceStep(kind_of(layer), name, text, value, {"map": values}), \
        float(np.abs(values).max(initial=0.0))


def _merge(layer, name, fed, where):
    operands = [np.asarray(v, np.float64)[0] for v in fed]
    if isinstance(layer, L.Concatenate):
        if layer.axis not in (-1, len(operands[0].shape)):
            raise Unsupported(f"{name}: tracing a Concatenate along axis {layer.axis}")
        sizes = np.cumsum([o.shape[-1] for o in operands])
        which = int(np.searchsorted(sizes, where[-1], side="right"))
        channel = where[-1] - (int(sizes[which - 1]) if which else 0)
        value = float(operands[which][(*where[:-1], channel)])
        text = f"channel {channel} of operand {which + 1} of {len(operands)} = {value:.6g}"
        return TraceStep("Concatenate", name, text, value, numbers={"operand": which,
                                                                    "channel": channel}), abs(value)
    picked = np.array([o[where] for o in operands])
    value = float(f64._merge(layer, [picked[k:k + 1] for k in range(len(picked))])[0])
    text = (f"{type(layer).__name__} of {', '.join(f'{v:.6g}' for v in picked)} = {value:.6g}")
    return TraceStep(kind_of(layer), name, text, value, {"operands": picked}), \
        float(np.abs(picked).sum())


def _reshape(layer, name, fed, where):
    out_shape = f64.implementation(layer)(layer, fed[:1]).shape[1:]
    position = int(np.ravel_multi_index(where, out_shape))
    source = np.unravel_index(position, fed.shape[1:])
    value = float(fed[0][source])
    text = f"value {tuple(int(s) for s in source)} of the previous layer = {value:.6g}"
    return TraceStep(kind_of(layer), name, text, value,
                     numbers={"source": position}), abs(value)


def _shift(layer, name, fed, where):
    i, j, m = where
    if isinstance(layer, L.ZeroPadding2D):
        (top, _), (left, _) = layer.padding
        r, c = i - top, j - left
        inside = 0 <= r < fed.shape[1] and 0 <= c < fed.shape[2]
        value = float(fed[0, r, c, m]) if inside else 0.0
        text = f"the previous value at ({r}, {c}) = {value:.6g}" if inside else "padding: 0"
    else:
        (top, _), (left, _) = layer.cropping
        value = float(fed[0, i + top, j + left, m])
        text = f"the previous value at ({i + top}, {j + left}) = {value:.6g}"
    return TraceStep(kind_of(layer), name, text, value), abs(value)


CORES = [
    ((L.Conv2D, L.DepthwiseConv2D, L.SeparableConv2D), _conv),
    ((L.Dense,), _dense),
    ((L.MaxPooling2D, L.AveragePooling2D), _pool),
    ((L.GlobalAveragePooling2D, L.GlobalMaxPooling2D), _global),
    (f64.MERGES, _merge),
    ((L.Flatten, L.Reshape), _reshape),
    ((L.ZeroPadding2D, L.Cropping2D), _shift),
]


def _pointwise(layer, name: str, before: float, where: tuple, shape: tuple) -> TraceStep:
    """A pointwise layer after the core, with its numbers."""
    m = where[-1]
    if isinstance(layer, L.BatchNormalization) and layer.axis in (-1, len(shape)):
        numbers = {"mean": float(np.asarray(layer.moving_mean)[m]),
                   "variance": float(np.asarray(layer.moving_variance)[m]),
                   "epsilon": float(layer.epsilon),
                   "gamma": float(np.asarray(layer.gamma)[m]) if layer.scale else 1.0,
                   "beta": float(np.asarray(layer.beta)[m]) if layer.center else 0.0}
        value = (before - numbers["mean"]) / np.sqrt(numbers["variance"] + numbers["epsilon"]) \
            * numbers["gamma"] + numbers["beta"]
        text = (f"({before:.6g} − mean {numbers['mean']:.6g}) / √(variance "
                f"{numbers['variance']:.6g} + {numbers['epsilon']:g}) × γ {numbers['gamma']:.6g}"
                f" + β {numbers['beta']:.6g} = {value:.6g}")
        return TraceStep("BatchNormalization", name, text, float(value), numbers=numbers)
    if isinstance(layer, f64.IDENTITY):
        return TraceStep(type(layer).__name__, name, f"{type(layer).__name__}: unchanged at "
                         "inference", before)
    full = np.full((1, *shape), before)  # the layer's own function, at this position
    value = float(f64.implementation(layer)(layer, full)[0][where])
    label = getattr(getattr(layer, "activation", None), "__name__", type(layer).__name__)
    return TraceStep(type(layer).__name__, name, f"{label}({before:.6g}) = {value:.6g}", value)
