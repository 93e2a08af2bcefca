"""Which layers qualify for which probe: the one place that decides.

Layers are addressed as in cnnviz.graph (`conv2`, or `features/conv2` inside a nested model).

    activations, stats   every layer whose output is image-shaped (h, w, c) or a vector (n),
                         except those that only pass values on (Input, Flatten, Reshape,
                         Dropout and other inference no-ops)
    patterns             the same, less the input conversions (Rescaling, Normalization:
                         their pattern would be the input itself)
    kernels              convolutions: Conv2D, DepthwiseConv2D, SeparableConv2D
    compare              convolutions and hidden dense layers (the output layer's order is
                         fixed by the classes, so matching it means nothing)
"""

from __future__ import annotations

from cnnviz.errors import UsageError
from cnnviz.graph import (
    ACTIVATIONS,
    CONVOLUTIONS,
    INPUT_CONVERSIONS,
    PASS_THROUGH,
    graph_of,
)
from cnnviz.runtime import import_tensorflow

import_tensorflow()  # quietly, before Keras

import keras

PROBES = ("activations", "stats", "patterns", "kernels", "compare")


def layers_for(model: keras.Model, probe: str) -> list[str]:
    """The addresses of the layers `probe` works on, in model order."""
    steps = [s for s in graph_of(model).steps if not s.nested]
    if probe in ("activations", "stats"):
        return [s.address for s in steps if len(s.shape) in (2, 4)
                and not isinstance(s.layer, PASS_THROUGH)]
    if probe == "patterns":
        return [a for a in layers_for(model, "activations")
                if not isinstance(graph_of(model).layer(a), INPUT_CONVERSIONS)]
    if probe == "kernels":
        return [s.address for s in steps if isinstance(s.layer, CONVOLUTIONS)]
    if probe == "compare":
        dense = [s.address for s in steps if isinstance(s.layer, keras.layers.Dense)]
        return layers_for(model, "kernels") + dense[:-1]
    raise ValueError(f"unknown probe {probe!r}; valid: {', '.join(PROBES)}")


def resolve_layers(model: keras.Model, spec: str) -> list[str]:
    """`conv2`, `conv1,pool1`, `features/conv2` or `all` → layer addresses, in model order;
    unknown names list the valid ones."""
    valid = layers_for(model, "activations")
    if spec.strip().lower() == "all":
        return valid
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in valid]
    if unknown or not names:
        raise UsageError(f"unknown layer {', '.join(unknown) or repr(spec)}; "
                         f"valid: {', '.join(valid)}, all", "layers")
    return [n for n in valid if n in names]


def choose_layers(model: keras.Model, spec, probe: str = "activations",
                  default: str | None = "all") -> list[str]:
    """The one reading of a layer request: a name, a comma list, a list of names or "all"
    (None: `default`) → addresses in model order. "all" means every layer `probe` takes; a
    named layer it cannot take is refused (UsageError naming `layers`) before any work."""
    import numpy as np

    given = [default] if spec is None else [spec] if isinstance(spec, str) else \
        list(spec) if np.iterable(spec) else None
    if not given or not all(isinstance(name, str) and name.strip() for name in given):
        raise UsageError(f"layers must be a layer's name, a list of names or \"all\", got "
                         f"{spec!r}; valid: {', '.join(layers_for(model, probe))}", "layers")
    text = ",".join(given)
    try:
        layers = resolve_layers(model, text)
    except UsageError as exc:
        raise UsageError(f"layers: {exc}", "layers") from None
    if text.strip().lower() == "all":
        qualifying = set(layers_for(model, probe))
        return [name for name in layers if name in qualifying]
    check_layers(model, layers, probe)
    return layers


def check_layers(model: keras.Model, names: list[str], probe: str) -> None:
    """Refuse (UsageError naming the layers that do qualify) any name `probe` cannot use."""
    valid = layers_for(model, probe)
    bad = [name for name in names if name not in valid]
    if not bad:
        return
    if bad[0] not in graph_of(model).addresses:
        raise UsageError(f"unknown layer {bad[0]}; valid: {', '.join(valid) or 'none in this model'}",
                         "layers")
    why = {"patterns": "has nothing to optimise (it only passes values on, or converts the "
                       "input); patterns need one of",
           "kernels": "is not a convolution; kernels exist for",
           "compare": "cannot be compared; comparable layers"}.get(probe, "cannot be probed; valid")
    raise UsageError(f"{bad[0]} {why}: {', '.join(valid) or 'none in this model'}", "layers")


def activation_after(model: keras.Model, address: str) -> str | None:
    """For a convolution or dense layer with no activation of its own that feeds a
    normalisation and then an activation layer: that activation layer's address (where its
    maps are what the network uses), else None."""
    graph = graph_of(model)
    layer = graph.layer(address)
    if not isinstance(layer, CONVOLUTIONS + (keras.layers.Dense,)) or has_activation(layer):
        return None
    current = address
    for _ in range(3):
        after = graph.followers(current)
        if len(after) != 1:
            return None
        step = after[0]
        if has_activation(step.layer) or isinstance(step.layer, ACTIVATIONS):
            return step.address
        if not isinstance(step.layer, (keras.layers.BatchNormalization,
                                       keras.layers.LayerNormalization)):
            return None
        current = step.address
    return None


def has_activation(layer) -> bool:
    """A convolution or dense layer with an activation of its own (not linear)."""
    activation = getattr(layer, "activation", None)
    return isinstance(layer, CONVOLUTIONS + (keras.layers.Dense,)) and activation is not None \
        and getattr(activation, "__name__", "") != "linear"
