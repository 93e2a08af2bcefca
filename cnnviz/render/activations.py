"""Figures of layer activations: one mosaic per image and layer, images × maps, class means."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib import colors
from matplotlib.cm import ScalarMappable

from cnnviz.render import style  # noqa: E402
from cnnviz.render.figures import new_axes, new_figure, save_figure, set_margins
from cnnviz.render.style import SEQUENTIAL as MAPS  # noqa: E402
from cnnviz.render.mosaic import Mosaic, as_tiles, maps_to_tiles, mosaic

def _cmap():
    return MAPS


def draw_mosaic(ax, tiles: Mosaic, labels: Sequence[str] | None = None, cmap=None) -> None:
    """Show a mosaic on one axes, each tile labelled at its top-left corner (colour mosaics
    as RGB, white between tiles)."""
    if tiles.image.ndim == 3:
        ax.imshow(np.nan_to_num(tiles.image, nan=1.0), interpolation="nearest")
    else:
        ax.imshow(tiles.image, cmap=cmap or _cmap(), vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if labels is None:
        return
    size = max(4.0, min(8.0, tiles.tile_shape[0] * 0.9))
    for index, label in enumerate(labels):
        row, col = tiles.origin(index)
        ax.text(col - 0.3, row - 0.3, label, color="white", fontsize=size, va="top", ha="left",
                bbox={"boxstyle": "square,pad=0.05", "facecolor": "black", "alpha": 0.55,
                      "linewidth": 0})


def _scale_note(ax, tiles: Mosaic, scale: str, fig) -> str:
    if scale == "layer":
        norm = colors.Normalize(tiles.low, tiles.high)
        fig.colorbar(ScalarMappable(norm, _cmap()), ax=ax, fraction=0.035, pad=0.02,
                     label="activation")
        return "one scale for the whole layer"
    return "each map scaled to its own min–max"


def _draw_input(ax, image: np.ndarray, title: str, lines: Sequence[str]) -> None:
    image = as_tiles(np.asarray(image)[np.newaxis])[0]
    if image.ndim == 3:
        ax.imshow(np.clip(image / 255.0, 0, 1), interpolation="nearest")
    else:
        ax.imshow(image, cmap=style.PIXELS, vmin=0, vmax=255, interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("\n".join(lines), fontsize=9)


def image_activation_figure(values: np.ndarray, image: np.ndarray, layer: str, title: str,
                            lines: Sequence[str], scale: str, path: str | os.PathLike | None = None):
    """The input image (with labels and top-3) beside all maps (or units) of one layer.

    Args:
        values: the layer's output for this image: (h, w, maps) or (units,).
        image: the input in pixel space, (H, W[, C]), 0–255.
        lines: text under the input image (true label, prediction, top-3).
        scale: `map` (each map on its own range) or `layer` (one range, with a colour bar).
    """
    if values.ndim == 1:
        fig, (ax_in, ax) = new_axes(1, 2, figsize=(11, 3.2),
                                    gridspec_kw={"width_ratios": [1, 4]})
        _draw_input(ax_in, image, title, lines)
        _unit_bars(ax, values, layer)
        fig.tight_layout()
        return save_figure(fig, path)
    tiles = mosaic(maps_to_tiles(values), scale=scale)
    side = 7.0 if tiles.cols > 6 else 5.0  # inches of mosaic width
    height = side * tiles.image.shape[0] / tiles.image.shape[1]
    bar = 1.0 if scale == "layer" else 0.0
    fig = new_figure(figsize=(side + 2.6 + bar, height + 0.6))
    grid = fig.add_gridspec(1, 2, width_ratios=[2.3, side], wspace=0.06, left=0.02,
                            right=1 - (0.1 + bar) / (side + 2.6 + bar), bottom=0.02,
                            top=1 - 0.45 / (height + 0.6))
    _draw_input(fig.add_subplot(grid[0]), image, title, lines)
    ax = fig.add_subplot(grid[1])
    draw_mosaic(ax, tiles, [str(i) for i in range(values.shape[-1])])
    note = _scale_note(ax, tiles, scale, fig)
    ax.set_title(f"{layer}: {values.shape[-1]} maps of {values.shape[0]}x{values.shape[1]} "
                 f"({note})", fontsize=10)
    return save_figure(fig, path, tight=False)


def _unit_bars(ax, values: np.ndarray, layer: str) -> None:
    units = np.arange(len(values))
    ax.bar(units, values, width=0.85, color=np.where(values > 0, "tab:blue", "tab:gray"))
    ax.set_xlim(-0.8, len(values) - 0.2)
    ax.set_xlabel("class" if layer == "output" else "unit")
    ax.set_ylabel("activation")
    ax.set_title(f"{layer}: {len(values)} units", fontsize=10)
    if len(values) <= 20:
        ax.set_xticks(units)
    ax.grid(axis="y", alpha=0.3)


def rows_figure(values: np.ndarray, row_labels: Sequence[str], layer: str, title: str,
                scale: str, path: str | os.PathLike, images: np.ndarray | None = None) -> Path:
    """Several images (or classes) as rows and the maps (or units) as columns.

    Args:
        values: (rows, h, w, maps) or (rows, units).
        images: optional (rows, H, W[, C]) inputs in pixel space, drawn as a first column.
        scale: `layer` shares one range across all rows (so common patterns show) or `map`.
    """
    n_rows = values.shape[0]
    if values.ndim == 2:
        tiles = mosaic(values[:, None, :], cols=1, pad=1, scale=scale)
        labels = None
    else:
        maps = values.shape[-1]
        tiles = mosaic(np.moveaxis(values, -1, 1).reshape(n_rows * maps, *values.shape[1:3]),
                       cols=maps, scale=scale)
        labels = [str(m) for m in range(maps)]
    aspect = tiles.image.shape[1] / tiles.image.shape[0]
    width = float(np.clip(2.2 * aspect, 6, 22))
    fig = new_figure(figsize=(width + 1.6, width / aspect + 1.2))
    grid = fig.add_gridspec(1, 2, width_ratios=[1.2 if images is not None else 0.01, width])
    if images is not None:
        ax_in = fig.add_subplot(grid[0])
        column = np.concatenate(list(as_tiles(images)), axis=0)
        if column.ndim == 3:
            ax_in.imshow(np.clip(column / 255.0, 0, 1), interpolation="nearest", aspect="auto")
        else:
            ax_in.imshow(column, cmap=style.PIXELS, vmin=0, vmax=255, interpolation="nearest",
                         aspect="auto")
        ax_in.set_axis_off()
    ax = fig.add_subplot(grid[1])
    ax.imshow(tiles.image, cmap=_cmap(), vmin=0, vmax=1, interpolation="nearest", aspect="auto")
    ax.set_yticks([(i + 0.5) * (tiles.image.shape[0] + tiles.pad) / n_rows - 0.5 - tiles.pad / 2
                   for i in range(n_rows)], list(row_labels), fontsize=8)
    if labels is not None:
        h, w = tiles.tile_shape
        step = max(1, values.shape[-1] // 32)
        ax.set_xticks([c * (w + tiles.pad) + w / 2 - 0.5 for c in range(0, values.shape[-1], step)],
                      labels[::step], fontsize=7)
        ax.set_xlabel("map")
    else:
        ax.set_xticks([])
        ax.set_xlabel(f"units 0–{values.shape[-1] - 1}")
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    note = _scale_note(ax, tiles, scale, fig)
    ax.set_title(f"{title} ({note})", fontsize=10)
    return save_figure(fig, path, tight=True)


def class_heatmap(per_map: np.ndarray, layer: str, path: str | os.PathLike,
                  class_names: Sequence[str], row_kind: str = "map") -> Path:
    """Mean activation of every map or unit (rows, `row_kind`) for every class (columns)."""
    maps, classes = per_map.shape[1], per_map.shape[0]
    fig, ax = new_axes(figsize=(6.5, float(np.clip(maps * 0.16 + 1.5, 3, 24))))
    shown = ax.imshow(per_map.T, cmap=style.SEQUENTIAL, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(classes), list(class_names), rotation=45 if len(class_names[0]) > 2 else 0,
                  ha="right" if len(class_names[0]) > 2 else "center")
    step = max(1, maps // 32)
    ax.set_yticks(range(0, maps, step))
    ax.set_ylabel(row_kind)
    ax.set_title(f"{layer}: mean activation per class")
    set_margins(fig, left=0.7, right=1.0, top=0.4, bottom=0.9)
    fig.colorbar(shown, ax=ax, fraction=0.05, pad=0.03, label="mean activation")
    return save_figure(fig, path)
