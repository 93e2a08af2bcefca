"""Top dataset examples that show *where*: each map's top images with the receptive field
of its strongest position outlined, and that field cropped and enlarged beside it (as
OpenAI Microscope and lucid's dataset examples do). A map of conv1 sees 3×3 pixels: the
whole digit alone would not tell which stroke excited it.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from cnnviz.render import style
from cnnviz.render.figures import new_figure, save_figure
from cnnviz.render.mosaic import as_tiles

OUTLINE = np.array([1.0, 0.15, 0.1], np.float32)  # the field's frame: red
GAP, ROW_GAP, LABEL_PX, MIN_WIDTH_PX = 4, 16, 70, 480


def outlined(image: np.ndarray, box: Sequence[int] | None, factor: int) -> np.ndarray:
    """An image (h, w) or (h, w, 3) in 0–255 → RGB in [0, 1], enlarged, the box framed."""
    rgb = np.asarray(image, np.float32) / 255.0
    rgb = np.repeat(rgb[..., None], 3, -1) if rgb.ndim == 2 else rgb
    big = style.enlarge(np.clip(rgb, 0, 1), factor).copy()
    if box is not None:
        top, left, bottom, right = (int(v) * factor for v in box)
        bottom, right = bottom - 1, right - 1
        big[top, left:right + 1] = big[bottom, left:right + 1] = OUTLINE
        big[top:bottom + 1, left] = big[top:bottom + 1, right] = OUTLINE
    return big


def crop(image: np.ndarray, box: Sequence[int], height: int) -> np.ndarray:
    """The box's pixels, enlarged (nearest) to about `height` pixels, RGB in [0, 1]."""
    top, left, bottom, right = (int(v) for v in box)
    part = np.asarray(image, np.float32)[top:bottom, left:right] / 255.0
    part = np.repeat(part[..., None], 3, -1) if part.ndim == 2 else part
    return style.enlarge(np.clip(part, 0, 1), max(1, height // max(part.shape[:2])))


def example_strip(pixels: np.ndarray, boxes: np.ndarray | None, least: int = 56) -> np.ndarray:
    """One map's top images (k, H, W[, C]) side by side, each framed with its crop beside
    it when boxes (k, 4) are known; RGB in [0, 1] with white gaps."""
    tiles = as_tiles(pixels)
    factor = style.tile_factor(max(tiles.shape[1:3]), least)
    parts = []
    for j, tile in enumerate(tiles):
        parts.append(outlined(tile, None if boxes is None else boxes[j], factor))
        if boxes is not None:
            parts.append(crop(tile, boxes[j], tiles.shape[1] * factor))
    height = max(p.shape[0] for p in parts)
    gaps = [GAP if (boxes is not None and i % 2 == 0) else 3 * GAP for i in range(len(parts))]
    canvas = np.ones((height, sum(p.shape[1] for p in parts) + sum(gaps[:-1]), 3), np.float32)
    x = 0
    for part, gap in zip(parts, gaps):
        canvas[:part.shape[0], x:x + part.shape[1]] = part
        x += part.shape[1] + gap
    return canvas


def top_examples_figure(pixels: np.ndarray, boxes: np.ndarray | None, scores: np.ndarray,
                        row_labels: Sequence[str], title: str,
                        path: str | os.PathLike | None = None):
    """pixels (maps, k, H, W[, C]) in 0–255; boxes (maps, k, 4) or None (the map sees the
    whole image); scores (maps, k) written under each image."""
    maps, k = pixels.shape[:2]
    tiles = [as_tiles(pixels[m]) for m in range(maps)]
    side = max(tiles[0].shape[1:3])
    factor = style.tile_factor(side, 56)
    cell_h = side * factor
    cells = []
    for m in range(maps):
        row = []
        for j in range(k):
            box = None if boxes is None else boxes[m, j]
            parts = [outlined(tiles[m][j], box, factor)]
            if box is not None:
                parts.append(crop(tiles[m][j], box, cell_h))
            row.append(parts)
        cells.append(row)
    cell_w = max(sum(p.shape[1] for p in parts) + GAP * (len(parts) - 1)
                 for row in cells for parts in row)
    width = k * (cell_w + 3 * GAP)
    height = maps * (cell_h + ROW_GAP)
    canvas = np.ones((height, width, 3), np.float32)
    for m, row in enumerate(cells):
        y = m * (cell_h + ROW_GAP)
        for j, parts in enumerate(row):
            x = j * (cell_w + 3 * GAP)
            for part in parts:
                canvas[y:y + part.shape[0], x:x + part.shape[1]] = part
                x += part.shape[1] + GAP
    dpi = style.DEFAULT_DPI  # the design size: one canvas pixel a pixel at the default resolution
    width_px, height_px = max(MIN_WIDTH_PX, width + LABEL_PX + 10), height + 50
    fig = new_figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    ax = fig.add_axes([LABEL_PX / width_px, 6 / height_px, width / width_px, height / height_px])
    ax.imshow(canvas, interpolation="nearest")
    ax.set_axis_off()
    for m in range(maps):
        y = m * (cell_h + ROW_GAP)
        ax.text(-6, y + cell_h / 2, row_labels[m], ha="right", va="center", fontsize=style.TICK)
        for j in range(k):
            ax.text(j * (cell_w + 3 * GAP), y + cell_h + 1, f"{float(scores[m, j]):.3g}",
                    ha="left", va="top", fontsize=style.TICK - 1, color="0.35")
    fig.text(0.01, 1 - 6 / height_px, title, fontsize=style.TITLE, va="top")
    fig.text(0.01, 1 - 22 / height_px, "red frame, enlarged beside it: what the strongest "
             "position sees; score under each" if boxes is not None else
             "each unit sees the whole image; score under each",
             fontsize=style.LABEL, va="top", color="0.3")
    return save_figure(fig, path)
