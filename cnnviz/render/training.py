"""Figures of a network over its training (from its snapshots): a Zeiler & Fergus–style grid
(rows: what a few maps show, columns: the epochs), one frame per epoch for the page's
slider (every map's kernel and output), and each layer's dead maps and mean activation per
epoch. Never TensorFlow."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from cnnviz.render.figures import new_axes, save_figure
from cnnviz.render.mosaic import mosaic

CELL = 28  # pixels of one cell of the grid


def _cell(image: np.ndarray) -> np.ndarray:
    """A 2-D array (or H×W×3) scaled to its own range, resized (nearest) to CELL × CELL."""
    image = np.asarray(image, np.float32)
    low, high = float(image.min()), float(image.max())
    scaled = (image - low) / (high - low) if high > low else np.zeros_like(image)
    rows = np.linspace(0, image.shape[0] - 1e-6, CELL).astype(int)
    cols = np.linspace(0, image.shape[1] - 1e-6, CELL).astype(int)
    return scaled[rows][:, cols]


def evolution_grid(epochs: Sequence[int], rows: list[tuple[str, list[np.ndarray]]], title: str,
                   path: str | os.PathLike | None = None):
    """rows: (label, one image per epoch); each cell on its own scale (dark: low)."""
    gap = 3
    grey = all(np.asarray(image).ndim == 2 for _, images in rows for image in images)
    shape = (len(rows) * (CELL + gap) - gap, len(epochs) * (CELL + gap) - gap) + (() if grey else (3,))
    canvas = np.full(shape, np.nan, np.float32)  # the gaps: drawn white
    for r, (_, images) in enumerate(rows):
        for c, image in enumerate(images):
            cell = _cell(image)
            if not grey and cell.ndim == 2:
                cell = np.repeat(cell[..., None], 3, axis=2)
            canvas[r * (CELL + gap):r * (CELL + gap) + CELL, c * (CELL + gap):c * (CELL + gap) + CELL] = cell
    width = 2.2 + 0.42 * len(epochs)
    fig, ax = new_axes(figsize=(width, 0.6 + 0.42 * len(rows)))
    import matplotlib

    colours = matplotlib.colormaps["viridis"].with_extremes(bad="white")
    ax.imshow(np.ma.masked_invalid(canvas) if grey else np.nan_to_num(canvas, nan=1.0),
              cmap=colours if grey else None, interpolation="nearest", vmin=0, vmax=1)
    ax.set_xticks([c * (CELL + gap) + CELL / 2 for c in range(len(epochs))],
                  [str(e) for e in epochs], fontsize=7)
    ax.set_yticks([r * (CELL + gap) + CELL / 2 for r in range(len(rows))],
                  [label for label, _ in rows], fontsize=7)
    ax.xaxis.set_ticks_position("top")
    ax.set_xlabel("epoch", fontsize=8)
    ax.xaxis.set_label_position("top")
    for side in ax.spines.values():
        side.set_visible(False)
    ax.tick_params(length=0)
    ax.set_title(title, fontsize=9, pad=22)
    fig.tight_layout()
    return save_figure(fig, path)


def epoch_frame(kernels: np.ndarray | None, outputs: np.ndarray, title: str,
                output_caption: str, path: str | os.PathLike | None = None):
    """One epoch: every map's kernel (maps, kh, kw; averaged over the input channels) and
    every map's output for one image (h, w, maps), each tile on its own scale."""
    panels = ([("kernels (mean over input channels)", mosaic(kernels))] if kernels is not None
              else []) + [(output_caption, mosaic(np.moveaxis(outputs, -1, 0)))]
    fig, axes = new_axes(1, len(panels), figsize=(4.2 * len(panels), 4.4), squeeze=False)
    for ax, (caption, tiled) in zip(axes[0], panels):
        ax.imshow(np.ma.masked_invalid(tiled.image), cmap="viridis", interpolation="nearest")
        ax.set_title(caption, fontsize=8)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def activity_curves(epochs: Sequence[int], dead: Sequence[int], mean: Sequence[float],
                    maps: int, title: str, path: str | os.PathLike | None = None):
    """Dead maps (never above 0 on the training subset) and the mean output, per epoch."""
    fig, (left, right) = new_axes(1, 2, figsize=(7.0, 2.6))
    left.plot(epochs, dead, "o-", markersize=3, color="tab:red")
    left.set_ylim(-0.5, maps + 0.5)
    left.set_ylabel(f"dead maps (of {maps})", fontsize=8)
    right.plot(epochs, mean, "o-", markersize=3, color="tab:blue")
    right.set_ylabel("mean output", fontsize=8)
    for ax in (left, right):
        ax.set_xlabel("epoch", fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
