"""`cnnviz trace`: the arithmetic of one activation, written as a figure and its numbers
into outputs/NAME/trace/ (trace-LAYER-MAP-ROW-COL-IMAGE.png and .json)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from cnnviz.checks import whole
from cnnviz.errors import CheckFailed, UsageError
from cnnviz.galleries.activations import choose_images
from cnnviz.layers import choose_layers, layers_for
from cnnviz.layout import TRACE
from cnnviz.manifest import entry
from cnnviz.model import LoadedModel
from cnnviz.probes.trace import check_position, trace_value
from cnnviz.render.style import figure_name
from cnnviz.trace_results import TraceResult

FOLDER = TRACE


@dataclass(frozen=True)
class TraceOptions:
    """Which value (layer, map, position) of which image (pixels 0–255 as fed, its name)."""

    layer: str
    map: int
    at: tuple[int, int] | None
    pixels: np.ndarray
    image: str


def trace_request(m, image=0, layer: str | None = None, map: int = 0,  # noqa: A002
                  at=None, split: str = "test", input=None) -> TraceOptions:  # noqa: A002
    """image: a dataset index of `split` or one raw image (H, W[, C]); input: an image file
    instead; layer: default the last convolution; at: (row, column) or "3,4"."""
    default = (layers_for(m.model, "kernels") or m.layers)[-1]
    names = choose_layers(m.model, layer if layer is not None else default)
    if len(names) != 1:
        raise UsageError(f"layer: give one layer name, got {layer!r}", "layer")
    name = names[0]
    if isinstance(at, str):
        try:
            at = tuple(int(v) for v in at.split(","))
        except ValueError:
            raise UsageError(f"at {at!r}: give a row and a column, e.g. 3,4", "at") from None
    at = None if at is None else tuple(whole(v, "at") for v in np.ravel(at))
    check_position(m.model, name, whole(map, "map"), at)
    if input is not None:
        selection = choose_images(m, input=input)
        return TraceOptions(name, int(map), at, selection.pixels[0], selection.name)
    if np.ndim(image) == 0:
        selection = choose_images(m, images=[image], split=split)
        return TraceOptions(name, int(map), at, selection.pixels[0], selection.stem(0))
    return TraceOptions(name, int(map), at, m.one_image(image), "your-image")


def request(m, image=0, layer=None, map=0, at=None, split="test",  # noqa: A002
            input=None) -> list[TraceOptions]:  # noqa: A002
    """The part of `m.gallery("trace", ...)`."""
    return [trace_request(m, image, layer, map, at, split, input)]


def traced(loaded: LoadedModel, options: TraceOptions) -> TraceResult:
    inputs = loaded.preprocessing.apply(np.asarray(options.pixels, np.float32)[np.newaxis])
    found = trace_value(loaded.model, inputs, options.layer, options.map, options.at)
    return TraceResult(found, np.asarray(options.pixels), options.image)


def run(loaded: LoadedModel, options: TraceOptions, out: Path,
        report: Callable[[str], None] | None = None,
        progress: Callable[[int], None] | None = None) -> list[dict]:
    """The recipe: the figure and the numbers; every step's line and the check to `report`;
    a traced value that differs from the network's raises CheckFailed after writing."""
    say = report or (lambda line: None)
    result = traced(loaded, options)
    result.save(out / FOLDER)
    for step in result.steps:
        say(f"{step.layer}: {step.text}")
    say(result.summary)
    entries = [entry(figure_name(f"{FOLDER}/{result.stem}"), result.summary, "trace", "trace"),
               entry(f"{FOLDER}/{result.stem}.json", f"the numbers of {result.summary}",
                     "trace-numbers", "trace")]
    if not result.ok:
        raise CheckFailed(result.summary, entries)
    return entries
