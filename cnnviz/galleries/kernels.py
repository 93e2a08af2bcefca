"""`cnnviz kernels`: the kernels of conv layers as mosaics and arrays."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from cnnviz.render.style import figure_name
from cnnviz.atomic import atomic_path
from cnnviz.layout import KERNELS, KERNELS_KEY, kernels_arrays
from cnnviz.graph import INPUT_CONVERSIONS, graph_of
from cnnviz.manifest import entry
from cnnviz.layers import choose_layers
from cnnviz.model import LoadedModel
from cnnviz.names import slug
from cnnviz.probes.kernels import conv_kernels
from cnnviz.render.kernels import strongest_inputs, strongest_inputs_figure
from cnnviz.render.patterns import kernel_gallery


DRAWN_MAPS = 64  # a big layer's figure: the first 64 maps (every one is in the array)
STRONGEST = 4    # input channels drawn per map of a deep layer


FOLDER = KERNELS


@dataclass(frozen=True)
class KernelOptions:
    layers: tuple[str, ...]


def request(m, layers=None) -> list[KernelOptions]:
    """The part of `m.gallery("kernels", ...)`: conv layers (default: every one)."""
    return [KernelOptions(tuple(choose_layers(m.model, layers, "kernels")))]


def run(loaded: LoadedModel, options: KernelOptions, out: Path,
        report: Callable[[str], None] | None = None,
        progress: Callable[[int], None] | None = None) -> list[dict]:
    """The recipe: a kernel mosaic and array per conv layer."""
    return [e for layer in options.layers for e in write_kernels(loaded, layer, out)]


def write_kernels(loaded: LoadedModel, layer: str, out: Path) -> list[dict]:
    """One kernel mosaic for a conv layer."""
    kernels = conv_kernels(loaded.model, layer)
    place = slug(layer)
    rel = figure_name(f"{KERNELS}/{place}/kernels-{place}")
    (out / KERNELS / place).mkdir(parents=True, exist_ok=True)
    graph = graph_of(loaded.model)
    source = graph.source(layer)
    on_image = source is None or isinstance(source.layer, INPUT_CONVERSIONS)
    colour = on_image and graph.step(layer).sources != ("?",) and kernels.shape[2] == 3
    order, norms, share = strongest_inputs(kernels, STRONGEST)
    if kernels.shape[2] == 1 or colour:  # a first layer: the kernels are images
        drawn = kernels[:, :, :, :DRAWN_MAPS]
        kernel_gallery(drawn, layer, out / rel, colour=colour)
        part = "" if drawn.shape == kernels.shape else f" (drawn: the first {DRAWN_MAPS} maps)"
    else:
        drawn = kernels[..., :DRAWN_MAPS]
        strongest_inputs_figure(drawn, order[:DRAWN_MAPS], share[:DRAWN_MAPS], layer, out / rel)
        part = (f"; drawn: each map's {order.shape[1]} strongest input channels"
                + ("" if drawn.shape == kernels.shape else f", the first {DRAWN_MAPS} maps"))
    caption = (f"{layer}: {kernels.shape[3]} kernels of {kernels.shape[0]}x{kernels.shape[1]} "
               f"over {kernels.shape[2]} input channel(s), red positive, blue negative{part}")
    maps = np.arange(kernels.shape[3])
    arrays = kernels_arrays(layer)
    with atomic_path(out / arrays) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **{KERNELS_KEY: kernels, "channel_norms": norms,
                            "strongest_inputs": order, "strongest_share": share})
    return [_entry(rel, caption, "kernels", layer, maps, "kernels"),
            _entry(arrays, f"{layer}: kernel array (kh, kw, in, out)", "arrays", layer, maps, "kernels")]


def _entry(path: str, caption: str, kind: str, layer: str, maps, command: str = "kernels") -> dict:
    return entry(path, caption, kind, command, layer, maps=[int(m) for m in maps])
