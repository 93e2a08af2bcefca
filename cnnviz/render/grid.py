"""Images (rows) × maps (columns), drawn so a reader can find map 37's answer to a 4.

The figure is assembled pixel by pixel in NumPy and shown at one image pixel per screen
pixel (at the figure's dpi), so nothing is squashed: every input keeps its aspect ratio,
every map tile is at least MIN_TILE_PX pixels (small maps are upscaled nearest-neighbour),
and a long layer wraps into blocks of columns instead of one strip. The colour scale is
per map by default — each map (column) on its own range, shared by all rows so the rows
compare — or one range for the layer with a colour bar.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from matplotlib import colors
from matplotlib.cm import ScalarMappable

from cnnviz.render import style
from cnnviz.render.figures import new_figure, save_figure
from cnnviz.render.mosaic import as_tiles

MAX_WIDTH_PX = 1200  # a block of columns wraps before this width
GAP, BLOCK_GAP = 2, 18  # pixels between tiles, between blocks (room for the map numbers)
LABEL_PX = 150          # the row labels' column
MIN_WIDTH_PX = 640      # room for the title and the scale's note
FLAT = 1e-3             # a map varying less than this share of the layer's range is flat


@dataclass
class Grid:
    """The grid's pixels and where things sit on them (for the drawing and for tests)."""

    canvas: np.ndarray                       # (height, width, 3) RGB in [0, 1], white gaps
    tile: tuple[int, int]                    # a map tile's (height, width) in pixels
    input_tile: tuple[int, int] | None       # an input image's (height, width) in pixels
    corners: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)  # (row, map) → (y, x)
    inputs_at: list[tuple[int, int]] = field(default_factory=list)  # (y, x) of each drawn input
    tops: list[int] = field(default_factory=list)  # each block's first row, y
    row_h: int = 0
    low: np.ndarray | None = None            # per map: the value drawn darkest
    high: np.ndarray | None = None           # … and brightest
    scale: str = "map"


def grid_canvas(values: np.ndarray, images: np.ndarray | None = None, scale: str = "map") -> Grid:
    """values (rows, h, w, maps) or (rows, units) → the grid's pixels."""
    values = np.asarray(values, np.float32)
    if values.ndim == 2:  # units: one number each, compared on the layer's scale
        values, scale = values[:, None, None, :], "layer"
    rows, h, w, maps = values.shape
    factor = style.tile_factor(max(h, w))
    tile_h, tile_w = h * factor, w * factor
    inputs = None if images is None else as_tiles(np.asarray(images))
    in_factor = 0 if inputs is None else max(1, round(tile_h / inputs.shape[1]))
    in_w = 0 if inputs is None else inputs.shape[2] * in_factor
    row_h = max(tile_h, 0 if inputs is None else inputs.shape[1] * in_factor)
    fits = max(1, (MAX_WIDTH_PX - in_w) // (tile_w + GAP))
    per_block = fits if fits < 8 or maps <= fits else fits // 8 * 8  # blocks of 8, 16, 32 …
    blocks = [range(s, min(maps, s + per_block)) for s in range(0, maps, per_block)]
    first_x = in_w + (GAP * 3 if inputs is not None else 0)
    width = first_x + min(maps, per_block) * (tile_w + GAP)
    height = len(blocks) * (rows * (row_h + GAP) + BLOCK_GAP)
    low, high = _ranges(values, scale)
    grid = Grid(np.ones((height, width, 3), np.float32), (tile_h, tile_w),
                None if inputs is None else (inputs.shape[1] * in_factor, in_w), row_h=row_h,
                low=low, high=high, scale=scale)
    grid.tops = [b * (rows * (row_h + GAP) + BLOCK_GAP) + BLOCK_GAP for b in range(len(blocks))]
    for top, block in zip(grid.tops, blocks):
        for r in range(rows):
            y = top + r * (row_h + GAP)
            if inputs is not None:
                image = style.enlarge(inputs[r] / 255.0, in_factor)
                image = np.repeat(image[..., None], 3, -1) if image.ndim == 2 else image
                grid.canvas[y:y + image.shape[0], :image.shape[1]] = np.clip(image, 0, 1)
                grid.inputs_at.append((y, 0))
            for c, m in enumerate(block):
                x = first_x + c * (tile_w + GAP)
                span = high[m] - low[m]
                scaled = (values[r, :, :, m] - low[m]) / span if span > 0 else np.zeros((h, w))
                tile = style.SEQUENTIAL(np.clip(scaled, 0, 1))[..., :3]
                grid.canvas[y:y + tile_h, x:x + tile_w] = style.enlarge(tile, factor)
                grid.corners[(r, m)] = (y, x)
    return grid


def grid_figure(values: np.ndarray, row_labels: Sequence[str], layer: str, title: str,
                scale: str = "map", path: str | os.PathLike | None = None,
                images: np.ndarray | None = None):
    """values (rows, h, w, maps) or (rows, units); images: optional (rows, H, W[, C]) inputs
    in 0–255, drawn as the first column of every block."""
    grid = grid_canvas(values, images, scale)
    units = np.asarray(values).ndim == 2
    return _draw(grid, row_labels, title, layer, units, path)


def _ranges(values: np.ndarray, scale: str) -> tuple[np.ndarray, np.ndarray]:
    """Per map (shared by the rows) or one range for the whole layer. A map whose range is
    under FLAT of the layer's is drawn flat (dark): stretching it would show rounding noise."""
    maps = values.shape[-1]
    if scale == "layer":
        return np.full(maps, values.min()), np.full(maps, values.max())
    flat = values.reshape(-1, maps)
    low, high = flat.min(axis=0), flat.max(axis=0)
    layer_span = float(values.max() - values.min())
    tiny = (high - low) <= FLAT * layer_span
    return low, np.where(tiny, low, high)


def _draw(grid: Grid, row_labels, title, layer, units: bool, path):
    canvas, scale, tile_w = grid.canvas, grid.scale, grid.tile[1]
    layer_range = (float(grid.low.min()), float(grid.high.max()))
    dpi = style.DEFAULT_DPI  # the design size: one canvas pixel a pixel at the default resolution
    bar_px = 90 if scale == "layer" else 0
    height_px = canvas.shape[0] + 56
    width_px = max(MIN_WIDTH_PX, canvas.shape[1] + LABEL_PX + bar_px + 10)
    fig = new_figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    ax = fig.add_axes([LABEL_PX / width_px, 10 / height_px, canvas.shape[1] / width_px,
                       canvas.shape[0] / height_px])
    ax.imshow(canvas, interpolation="nearest", aspect="equal")
    ax.set_axis_off()
    unit = "unit" if units else "map"
    for (r, m), (y, x) in grid.corners.items():
        if r == 0:
            ax.text(x + tile_w / 2, y - 3, str(m), ha="center", va="bottom", fontsize=style.TICK)
    for top in grid.tops:
        for r, label in enumerate(row_labels):
            ax.text(-6, top + r * (grid.row_h + GAP) + grid.row_h / 2, label, ha="right",
                    va="center", fontsize=style.TICK)
    note = (f"one scale for the layer, {layer_range[0]:.3g} to {layer_range[1]:.3g}"
            if scale == "layer" else f"each {unit} on its own scale, shared by the rows "
            "(near-constant maps drawn flat)")
    fig.text(0.01, 1 - 8 / height_px, f"{title}", fontsize=style.TITLE, va="top")
    fig.text(0.01, 1 - 26 / height_px, f"colour: {note}; dark low, yellow high", fontsize=style.LABEL,
             va="top", color="0.3")
    if scale == "layer":
        cax = fig.add_axes([(LABEL_PX + canvas.shape[1] + 30) / width_px, 10 / height_px,
                            12 / width_px, min(canvas.shape[0], 300) / height_px])
        bar = fig.colorbar(ScalarMappable(colors.Normalize(*layer_range), style.SEQUENTIAL), cax=cax)
        bar.ax.tick_params(labelsize=style.TICK)
        bar.set_label(layer, fontsize=style.LABEL)
    return save_figure(fig, path)

