"""Kernels of deep layers in a form that carries information: for each map, its strongest
input channels (by the norm of their kernel slice), drawn large on one diverging scale.

A layer with 32 input channels × 64 maps of 3×3 has 2,048 small kernels; drawn all at
once they are colour specks. Which inputs a map listens to most, and with what spatial
pattern, is what a reader can take in; the full grid stays in the .npz.
"""

from __future__ import annotations

import os

import numpy as np
from matplotlib import colors
from matplotlib.cm import ScalarMappable

from cnnviz.render import style
from cnnviz.render.figures import new_figure, save_figure

CELL_GAP, LABEL_H, COLUMNS_PX = 14, 16, 1100


def strongest_inputs(kernels: np.ndarray, k: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each map, its input channels ordered by the L2 norm of their kernel slice.

    Returns (order (maps, k): the k strongest input channels, strongest first; norms (in,
    maps); share (maps,): the part of the map's squared weight norm those k carry)."""
    norms = np.sqrt((np.asarray(kernels, np.float64) ** 2).sum(axis=(0, 1)))  # (in, maps)
    k = min(k, norms.shape[0])
    order = np.argsort(-norms, axis=0, kind="stable")[:k].T
    total = (norms ** 2).sum(axis=0)
    top = np.take_along_axis(norms ** 2, order.T, axis=0).sum(axis=0)
    share = np.divide(top, total, out=np.zeros_like(total), where=total > 0)
    return order, norms.astype(np.float32), share.astype(np.float32)


def strongest_inputs_figure(kernels: np.ndarray, order: np.ndarray, share: np.ndarray,
                            layer: str, path: str | os.PathLike | None = None):
    """kernels (kh, kw, in, maps); order (maps, k) the channels to draw per map, strongest
    first; share (maps,) the part of each map's squared norm they carry."""
    kh, kw, n_in, maps = kernels.shape
    k = order.shape[1]
    factor = style.tile_factor(max(kh, kw))
    tile_h, tile_w = kh * factor, kw * factor
    cell_w = k * (tile_w + 2) - 2
    cols = max(1, min(maps, (COLUMNS_PX + CELL_GAP) // (cell_w + CELL_GAP)))
    rows = -(-maps // cols)
    cell_h = LABEL_H + tile_h + LABEL_H
    canvas = np.ones((rows * (cell_h + CELL_GAP), cols * (cell_w + CELL_GAP), 3), np.float32)
    low, high = style.centred(kernels)
    norm = colors.Normalize(low, high)
    spots = []
    for m in range(maps):
        top = (m // cols) * (cell_h + CELL_GAP) + LABEL_H
        left = (m % cols) * (cell_w + CELL_GAP)
        for j, c in enumerate(order[m]):
            tile = style.DIVERGING(norm(kernels[:, :, c, m]))[..., :3]
            x = left + j * (tile_w + 2)
            canvas[top:top + tile_h, x:x + tile_w] = style.enlarge(tile, factor)
            spots.append((x + tile_w / 2, top + tile_h + 2, str(int(c))))
        spots.append((left, top - 3, f"map {m} ({share[m]:.0%})"))
    dpi = style.DEFAULT_DPI  # the design size: one canvas pixel a pixel at the default resolution
    width_px, height_px = canvas.shape[1] + 130, canvas.shape[0] + 60
    fig = new_figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    ax = fig.add_axes([10 / width_px, 10 / height_px, canvas.shape[1] / width_px,
                       canvas.shape[0] / height_px])
    ax.imshow(canvas, interpolation="nearest")
    ax.set_axis_off()
    for x, y, text in spots:
        label = text.startswith("map")
        ax.text(x, y, text, fontsize=style.TICK, ha="left" if label else "center",
                va="bottom" if label else "top", color="black" if label else "0.35")
    fig.text(0.01, 1 - 6 / height_px,
             f"{layer}: each map's {k} strongest of {n_in} input channels (numbers below), by "
             f"the norm of their {kh}x{kw} kernel", fontsize=style.TITLE, va="top")
    fig.text(0.01, 1 - 24 / height_px, "in brackets: their share of the map's squared norm; red "
             f"positive, blue negative, ±{high:.3g} for the layer; all kernels in kernels-*.npz",
             fontsize=style.LABEL, va="top", color="0.3")
    cax = fig.add_axes([(canvas.shape[1] + 30) / width_px, 10 / height_px, 12 / width_px,
                        min(canvas.shape[0], 300) / height_px])
    bar = fig.colorbar(ScalarMappable(norm, style.DIVERGING), cax=cax)
    bar.ax.tick_params(labelsize=style.TICK)
    bar.set_label("weight", fontsize=style.LABEL)
    return save_figure(fig, path)
