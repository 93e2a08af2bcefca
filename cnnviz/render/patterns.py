"""Figures of optimal input patterns (pixel space, grey) and conv kernels (diverging, zero-centred)."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from matplotlib import colors
from matplotlib.cm import ScalarMappable
from matplotlib.collections import PatchCollection
from matplotlib.patches import Rectangle

from cnnviz.render.activations import draw_mosaic
from cnnviz.render.style import DIVERGING as SIGNED
from cnnviz.render.style import PIXELS
from cnnviz.render.figures import new_axes, save_figure, set_margins
from cnnviz.render.mosaic import as_tiles, mosaic

PATTERN_CMAP, KERNEL_CMAP = PIXELS, SIGNED


def _figure_for(image_shape: tuple[int, int], screen_px_per_pixel: float = 3.0, dpi: int = 110):
    """A figure sized so each mosaic pixel takes about `screen_px_per_pixel` pixels."""
    width = max(4.0, image_shape[1] * screen_px_per_pixel / dpi)
    height = width * image_shape[0] / image_shape[1]
    return new_axes(figsize=(width + 0.6, height + 0.7))


def pattern_gallery(pixels: np.ndarray, labels: Sequence[str], title: str,
                    path: str | os.PathLike | None = None):
    """Patterns (N, H, W[, C]) in pixel space on one fixed 0–255 scale (grey, or colour for
    RGB), labelled tiles."""
    h, w = np.asarray(as_tiles(pixels)).shape[1:3]
    band = max(5, round(h * 0.3))  # room above each tile for its label, never on the pattern
    tiles = mosaic(as_tiles(pixels), pad=band, scale="layer", low=0, high=255)
    fig, ax = _figure_for((tiles.image.shape[0] + band, tiles.image.shape[1]), 3.6)
    draw_mosaic(ax, tiles, cmap=PATTERN_CMAP)
    ax.set_ylim(tiles.image.shape[0] - 0.5, -band - 0.5)
    frames = []
    for index, label in enumerate(labels):
        row, col = tiles.origin(index)
        frames.append(Rectangle((col - 0.5, row - 0.5), w, h))  # a white pattern stays visible
        ax.text(col + w / 2 - 0.5, row - 1.2, label, fontsize=max(5.0, min(8.0, w * 0.28)),
                ha="center", va="bottom", color="#1d232b")
    ax.add_collection(PatchCollection(frames, facecolor="none", edgecolor="#8a94a3", linewidth=0.6))
    ax.set_title(title, fontsize=10)
    return save_figure(fig, path, tight=True)


def image_grid(frames: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str],
               title: str, path: str | os.PathLike | None = None):
    """Images (R, T, H, W[, C]) in pixel space on one 0–255 scale, rows and columns labelled
    (pattern evolution: maps × steps; top examples: maps × ranks)."""
    m, t = frames.shape[:2]
    tiles = mosaic(as_tiles(frames.reshape(m * t, *frames.shape[2:])), cols=t, pad=2,
                   scale="layer", low=0, high=255)
    fig, ax = _figure_for(tiles.image.shape, 2.0)
    draw_mosaic(ax, tiles, cmap=PATTERN_CMAP)
    ax.set_axis_on()
    h, w = tiles.tile_shape
    ax.set_xticks([c * (w + 2) + w / 2 for c in range(t)], list(col_labels), fontsize=8)
    ax.set_yticks([r * (h + 2) + h / 2 for r in range(m)], list(row_labels), fontsize=7)
    ax.tick_params(length=0)
    ax.set_title(title, fontsize=10)
    for side in ax.spines.values():
        side.set_visible(False)
    set_margins(fig, left=0.75, right=0.1, top=0.35, bottom=0.3)
    return save_figure(fig, path)


def kernel_gallery(kernels: np.ndarray, layer: str, path: str | os.PathLike | None = None,
                   colour: bool = False):
    """Conv kernels (kh, kw, in, out) on a diverging map centred on zero.

    One input channel: one tile per output map. Three (an RGB image's first layer, with
    `colour`): one colour tile per map, grey = 0, each channel's weight added to or taken
    from it. Several: an in × out grid (rows: input channels, columns: output maps).
    """
    kh, kw, n_in, n_out = kernels.shape
    limit = float(np.abs(kernels).max()) or 1.0
    colour = colour and n_in == 3
    if colour:
        tiles = mosaic(np.transpose(kernels, (3, 0, 1, 2)), pad=1, scale="layer", low=-limit,
                       high=limit)
    else:
        tiles_array = np.transpose(kernels, (2, 3, 0, 1)).reshape(n_in * n_out, kh, kw)
        tiles = mosaic(tiles_array, cols=None if n_in == 1 else n_out, pad=1, scale="layer",
                       low=-limit, high=limit)
    one_row = n_in == 1 or colour
    fig, ax = _figure_for(tiles.image.shape, 24.0 if one_row else 5.0)
    draw_mosaic(ax, tiles, [str(i) for i in range(n_out)] if one_row else None,
                cmap=KERNEL_CMAP)
    layout = (f"{n_out} RGB kernels of {kh}x{kw} (grey = 0, ±{limit:.2g} to black/full)" if colour else
              f"{n_out} kernels of {kh}x{kw}" if n_in == 1 else
              f"{n_in} input channels (rows) × {n_out} maps (columns), {kh}x{kw} each")
    ax.set_title(f"{layer}: {layout}", fontsize=10)
    if not colour:  # a colour tile's channels are its own scale: ±limit around grey
        fig.colorbar(ScalarMappable(colors.Normalize(-limit, limit), KERNEL_CMAP), ax=ax,
                     fraction=0.03, pad=0.02, label="weight")
    return save_figure(fig, path, tight=True)
