"""One look for every figure: font sizes, colour maps, the smallest tile, and the resolution
and file format figures are written in.

Colour maps: sequential (viridis) for activations, which run from low to high; diverging
(RdBu_r), always centred at 0, for weights and signed values, where the sign means
something; grey for images and patterns (0–255). NaN, the gaps between mosaic tiles, is
white in each.

    with figure_output(dpi=200, format="svg"):   # what the dpi and format parameters set
        ...                                      # every figure written inside is SVG at 200 dpi
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass

import matplotlib
import numpy as np

from cnnviz.errors import UsageError

SEQUENTIAL = matplotlib.colormaps["viridis"].with_extremes(bad="white")   # activations: low dark, high yellow
DIVERGING = matplotlib.colormaps["RdBu_r"].with_extremes(bad="white")     # weights, signed: red +, blue −
PIXELS = matplotlib.colormaps["gray"].with_extremes(bad="white")          # images and patterns, 0–255

TITLE = 10       # points: a figure's or panel's title
LABEL = 9        # axis labels, text under an image
TICK = 7         # tick labels, tile numbers
MIN_TILE_PX = 24  # the smallest a map's tile is drawn, in pixels of the written image

FORMATS = ("png", "svg", "pdf")
DEFAULT_DPI = 110


@dataclass(frozen=True)
class FigureOutput:
    """How figures are written: dots per inch and file format."""

    dpi: int = DEFAULT_DPI
    format: str = "png"


_OUTPUT = contextvars.ContextVar("cnnviz_figure_output", default=FigureOutput())


def figure_output_now() -> FigureOutput:
    return _OUTPUT.get()


@contextlib.contextmanager
def figure_output(dpi: int | None = None, format: str | None = None):  # noqa: A002 (the flag's name)
    """Write every figure inside the block at `dpi` in `format` (png, svg or pdf)."""
    now = _OUTPUT.get()
    if dpi is not None and not 30 <= dpi <= 1200:
        raise UsageError(f"dpi must be within 30–1200, got {dpi}", "dpi")
    if format is not None and format not in FORMATS:
        raise UsageError(f"format must be one of {', '.join(FORMATS)}, got {format!r}", "format")
    token = _OUTPUT.set(FigureOutput(dpi or now.dpi, format or now.format))
    try:
        yield
    finally:
        _OUTPUT.reset(token)


def figure_name(stem: str) -> str:
    """STEM.png (or .svg, .pdf: the format in force)."""
    return f"{stem}.{_OUTPUT.get().format}"


def centred(values: np.ndarray) -> tuple[float, float]:
    """(−m, m) with m the largest |value|: a diverging scale centred at 0."""
    m = float(np.nanmax(np.abs(values))) if np.size(values) else 0.0
    return (-m, m) if m > 0 else (-1.0, 1.0)


def enlarge(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling of an (h, w[, c]) image by an integer factor."""
    if factor <= 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def tile_factor(side: int, least: int = MIN_TILE_PX) -> int:
    """The integer upscaling that makes a tile of `side` pixels at least `least` pixels."""
    return max(1, -(-least // max(1, side)))
