"""A Keras model as one flat graph: every layer, nested ones included, addressed by name.

    g = graph_of(model)
    g.addresses            # ["rescale", "features/conv1", "features/bn1", …, "output"]
    g.run(x, ["features/conv1", "output"])   # their values for input x (tensors)
    g.table()              # shapes, parameters, receptive field and stride of every layer

A layer inside a nested model (a Sequential or functional model used as a layer) is
`outer/inner`. Its values come from running the model's own graph node by node (the nodes
Keras recorded when the model was built), so nothing is rebuilt or renamed and "Graph
disconnected" cannot happen. Receptive fields are tracked through that same graph: for
each image-shaped tensor, the interval of input pixels that one output position sees, per
axis, so branches (Add, Concatenate) are exact: the union of their inputs' intervals.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field

from cnnviz.errors import UsageError
from cnnviz.runtime import import_tensorflow

import_tensorflow()  # quietly, before Keras

import keras

L = keras.layers
CONVOLUTIONS = (L.Conv2D, L.DepthwiseConv2D, L.SeparableConv2D)
POOLS = (L.MaxPooling2D, L.AveragePooling2D)
ACTIVATIONS = (L.Activation, L.ReLU, L.LeakyReLU, L.ELU, L.PReLU, L.Softmax)
# Layers whose output at a position depends only on their inputs at that same position.
POINTWISE = (L.BatchNormalization, L.LayerNormalization, L.Dropout, L.SpatialDropout2D,
             L.GaussianNoise, L.GaussianDropout, L.Rescaling, L.Normalization, L.Add, L.Subtract,
             L.Multiply, L.Average, L.Maximum, L.Minimum, L.Concatenate, L.Identity,
             L.UnitNormalization, L.ActivityRegularization) + ACTIVATIONS
INPUT_CONVERSIONS = (L.Rescaling, L.Normalization)
# Pass values on unchanged (at inference), only reshape, pad or crop them: nothing to look at.
PASS_THROUGH = (L.InputLayer, L.Flatten, L.Reshape, L.Dropout, L.SpatialDropout2D,
                L.GaussianNoise, L.GaussianDropout, L.Identity, L.ActivityRegularization,
                L.ZeroPadding2D, L.Cropping2D)


@dataclass(frozen=True)
class Window:
    """Where one output position looks on the input image, along one axis: position i sees
    input pixels jump·i + low … jump·i + high (low may be negative: padding)."""

    jump: int
    low: int
    high: int

    @property
    def size(self) -> int:
        return self.high - self.low + 1

    def through(self, kernel: int, stride: int, pad_before: int) -> Window:
        """After a kernel (dilated side), stride and leading padding."""
        return Window(self.jump * stride, self.low - self.jump * pad_before,
                      self.high + self.jump * (kernel - 1 - pad_before))

    def shifted(self, pixels: int) -> Window:
        return Window(self.jump, self.low + self.jump * pixels, self.high + self.jump * pixels)


def union(windows: list[Window]) -> Window | None:
    """The window of a merge of branches: exact when they move by the same jump."""
    if len({w.jump for w in windows}) != 1:
        return None
    return Window(windows[0].jump, min(w.low for w in windows), max(w.high for w in windows))


@dataclass
class Step:
    """One layer call of the flat graph (a nested model's own call is kept for the table)."""

    address: str
    layer: keras.layers.Layer
    node: object                        # the keras Node of this call
    shape: tuple                        # output shape (None for the batch)
    nested: bool = False                # the call of a nested model (its layers follow)
    depth: int = 0                      # how deeply nested
    sources: tuple[str, ...] = ()       # addresses of the steps feeding it ("" = the input)
    window: tuple | None = None         # (Window along height, along width); None: whole image
    known: bool = True                  # False: a layer whose geometry cnnviz does not know


@dataclass
class Graph:
    """The flat graph of a model (see the module docstring)."""

    model: keras.Model
    entry: object = None               # the symbolic input the recorded nodes start from
    output_address: str = ""           # the layer whose value is the network's output
    steps: list[Step] = field(default_factory=list)
    _plan: list = field(default_factory=list)  # ("call", step) / ("alias", from ids, to ids)
    _index: dict = field(default_factory=dict)  # address → step, filled on first use

    @property
    def addresses(self) -> list[str]:
        """Every layer's address in model order (not nested models themselves)."""
        return [s.address for s in self.steps if not s.nested]

    @property
    def input_shape(self) -> tuple:
        return tuple(self.entry.shape)

    def step(self, address: str) -> Step:
        if not self._index:
            self._index.update((s.address, s) for s in self.steps if not s.nested)
        if address in self._index:
            return self._index[address]
        raise UsageError(f"unknown layer {address!r}; valid: {', '.join(self.addresses)}", "layers")

    def layer(self, address: str) -> keras.layers.Layer:
        return self.step(address).layer

    def shape(self, address: str) -> tuple:
        return self.step(address).shape

    def field_box(self, address: str, i: int, j: int) -> tuple[int, int, int, int] | None:
        """The input pixels position (i, j) of a layer sees, clipped to the image:
        (top, left, bottom, right), bottom and right exclusive; None where the layer's
        geometry is unknown or it sees the whole image."""
        window = self.step(address).window
        if window is None or not self.step(address).known:
            return None
        height, width = self.input_shape[1:3]
        rows, cols = window[0].shifted(i), window[1].shifted(j)
        return (max(0, rows.low), max(0, cols.low), min(height, rows.high + 1),
                min(width, cols.high + 1))

    def source(self, address: str) -> Step | None:
        """The step feeding `address` when it has exactly one (else None)."""
        sources = self.step(address).sources
        if len(sources) != 1 or not sources[0]:
            return None
        return self.step(sources[0])

    def followers(self, address: str) -> list[Step]:
        """The steps fed by `address`."""
        return [s for s in self.steps if address in s.sources and not s.nested]

    def run(self, x, wanted: list[str], inputs_of: tuple[str, ...] = ()) -> list:
        """Values of the `wanted` layers (then the inputs of the layers in `inputs_of`) for
        input x, at inference. Only the steps up to the last one needed run."""
        def call(step, args, kwargs):
            if getattr(step.layer, "_call_has_training_arg", False):
                kwargs["training"] = False
            return step.layer(*args, **kwargs)

        return self.walk(x, call, wanted, inputs_of)

    def walk(self, x, call, wanted: list[str], inputs_of: tuple[str, ...] = ()) -> list:
        """As `run`, with each layer call made by call(step, args, kwargs) (an independent
        implementation of the layers, e.g. cnnviz.probes.forward64)."""
        need = set(wanted) | set(inputs_of)
        last = max(i for i, (kind, *rest) in enumerate(self._plan)
                   if kind == "call" and rest[0].address in need and not rest[0].nested)
        values = {id(self.entry): x}
        found, feeds = {}, {}
        for kind, *rest in self._plan[:last + 1]:
            if kind == "alias":
                for a, b in zip(*rest):
                    values[b] = values[a]
                continue
            step = rest[0]
            if step.nested:
                continue
            args, kwargs = step.node.arguments.fill_in(values)
            if step.address in inputs_of:
                feeds[step.address] = args[0]
            out = call(step, list(args), dict(kwargs))
            for ref, value in zip(step.node.outputs, keras.tree.flatten(out)):
                values[id(ref)] = value
            if step.address in wanted:
                found[step.address] = out
        return [found[a] for a in wanted] + [feeds[a] for a in inputs_of]


_GRAPHS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def graph_of(model: keras.Model) -> Graph:
    """The flat graph of a functional or Sequential model (built once per model object)."""
    try:
        return _GRAPHS[model]
    except (KeyError, TypeError):
        pass
    check_model(model)
    functional = _functional(model)
    graph = Graph(model, functional.inputs[0])
    owner: dict[int, str] = {id(graph.entry): ""}
    windows: dict[int, tuple | None] = {id(graph.entry): (Window(1, 0, 0), Window(1, 0, 0))}
    _flatten(functional, "", 0, graph, owner, windows)
    graph.output_address = owner[id(functional.outputs[0])]
    try:
        _GRAPHS[model] = graph
    except TypeError:
        pass
    return graph


def check_model(model: keras.Model) -> None:
    """Refuse (one line) a model cnnviz cannot open: subclassed, several inputs, not images,
    channels first."""
    if not isinstance(model, keras.Model):
        raise UsageError(f"model must be a bundle name, a .keras path or a keras.Model, got "
                         f"{type(model).__name__}", "model")
    if _functional(model) is None:
        raise UsageError(f"{model.name}: a subclassed model has no graph to look inside; "
                         "cnnviz opens functional and Sequential models", "model")
    if len(model.inputs) != 1:
        raise UsageError(f"{model.name} has {len(model.inputs)} inputs; cnnviz opens models of "
                         "one image input", "model")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or None in shape[1:]:
        raise UsageError(f"{model.name}: input shape {shape}; cnnviz needs images of a fixed "
                         "size (batch, height, width, channels)", "model")
    h, w, c = shape[1:]
    if c > 4 and h <= 4:
        raise UsageError(f"{model.name}: input shape {shape} looks channels-first; cnnviz "
                         "needs channels-last images (batch, height, width, channels)", "model")
    if min(h, w) < 8:
        raise UsageError(f"{model.name}: input {h}x{w} is too small; cnnviz needs images of at "
                         "least 8x8 pixels", "model")
    if len(model.outputs) != 1:
        raise UsageError(f"{model.name} has {len(model.outputs)} outputs; cnnviz opens "
                         "classifiers with one output", "model")


def _functional(model):
    """The functional graph of a model: itself, a Sequential's inner one, or None."""
    if isinstance(model, keras.Sequential):
        inner = getattr(model, "_functional", None)
        if inner is None and model.built and model.inputs:
            inner = model._functional
        return inner
    return model if hasattr(model, "_nodes_by_depth") and getattr(model, "_is_graph_network", True) \
        and model.inputs else None


def _flatten(model, prefix: str, depth: int, graph: Graph, owner: dict, windows: dict) -> None:
    nodes = model._nodes_by_depth
    for key in sorted(nodes, reverse=True):
        for node in nodes[key]:
            if not node.operation or node.is_input:
                continue
            layer = node.operation
            address = prefix + layer.name
            calls = sum(1 for s in graph.steps if s.layer is layer)
            if calls:  # a shared layer: its second call is `name#2`, and so on
                address = f"{address}#{calls + 1}"
            sources = tuple(dict.fromkeys(owner.get(id(t), "?") for t in node.input_tensors))
            out = node.outputs[0]
            step = Step(address, layer, node, tuple(out.shape), depth=depth, sources=sources)
            inner = _functional(layer) if isinstance(layer, keras.Model) else None
            if inner is not None:
                step.nested = True
                graph.steps.append(step)
                graph._plan.append(("call", step))
                graph._plan.append(("alias", [id(t) for t in node.input_tensors],
                                    [id(t) for t in inner.inputs]))
                for t, inside in zip(node.input_tensors, inner.inputs):
                    owner[id(inside)] = owner.get(id(t), "?")
                    windows[id(inside)] = windows.get(id(t))
                _flatten(inner, address + "/", depth + 1, graph, owner, windows)
                graph._plan.append(("alias", [id(t) for t in inner.outputs],
                                    [id(t) for t in node.outputs]))
                for t, inside in zip(node.outputs, inner.outputs):
                    owner[id(t)] = owner.get(id(inside), address)
                    windows[id(t)] = windows.get(id(inside))
                step.window = windows.get(id(out))
                continue
            step.window, step.known = _window_after(layer, [windows.get(id(t)) for t in node.input_tensors],
                                                    [tuple(t.shape) for t in node.input_tensors],
                                                    step.shape)
            graph.steps.append(step)
            graph._plan.append(("call", step))
            for t in node.outputs:
                owner[id(t)] = address
                windows[id(t)] = step.window


def _window_after(layer, before: list, shapes: list, shape: tuple) -> tuple[tuple | None, bool]:
    """(windows of the output, whether the geometry is known) for one layer call."""
    if len(shape) != 4:
        return None, True                 # a vector: every unit sees the whole image
    if any(w is None for w in before) or not before:
        return None, False
    if isinstance(layer, POINTWISE):
        merged = tuple(union([w[axis] for w in before]) for axis in (0, 1))
        return (None, False) if None in merged else (merged, True)
    (h, w), inside = shapes[0][1:3], before[0]
    if isinstance(layer, CONVOLUTIONS + POOLS):
        kernel = layer.kernel_size if isinstance(layer, CONVOLUTIONS) else layer.pool_size
        dilation = getattr(layer, "dilation_rate", (1, 1))
        sides = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
        pads = [_pad_before(layer.padding, n, k, s) for n, k, s in zip((h, w), sides, layer.strides)]
        return tuple(inside[a].through(sides[a], layer.strides[a], pads[a]) for a in (0, 1)), True
    if isinstance(layer, L.ZeroPadding2D):
        (top, _), (left, _) = layer.padding
        return (inside[0].shifted(-top), inside[1].shifted(-left)), True
    if isinstance(layer, L.Cropping2D):
        (top, _), (left, _) = layer.cropping
        return (inside[0].shifted(top), inside[1].shifted(left)), True
    return None, False


def _pad_before(padding: str, size: int, kernel: int, stride: int) -> int:
    """Leading padding of a `same` window (as TensorFlow pads: the smaller half first)."""
    if padding != "same":
        return 0
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2
