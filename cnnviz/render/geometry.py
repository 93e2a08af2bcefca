"""Figures of how each layer sees a dataset: the probe curve across the layers, the PCA map
of the images per layer (small multiples, one colour per class everywhere) and the CKA
matrix between the layers. Never TensorFlow."""

from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np

from cnnviz.render.figures import new_axes, save_figure

CLASS_COLOURS = "tab10"


def probe_curve(layers: Sequence[str], accuracy: Sequence[float], chance: float,
                model_accuracy: float, title: str, path: str | os.PathLike | None = None):
    """Held-out accuracy of a linear classifier on each layer's features."""
    fig, ax = new_axes(figsize=(max(5.0, 0.55 * len(layers) + 2), 3.4))
    ax.plot(range(len(layers)), accuracy, marker="o", color="tab:blue",
            label="linear probe (held-out)")
    ax.axhline(model_accuracy, color="tab:green", linestyle="--",
               label=f"the network itself ({model_accuracy:.3f})")
    ax.axhline(chance, color="0.5", linestyle=":", label=f"chance ({chance:.3f})")
    ax.set_xticks(range(len(layers)), layers, rotation=45, ha="right", fontsize=7)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def embedding_panels(coords: dict[str, np.ndarray], labels: np.ndarray,
                     class_names: Sequence[str], shares: dict[str, tuple[float, float]],
                     notes: dict[str, str], title: str, embedding: str = "pca",
                     path: str | os.PathLike | None = None):
    """One panel per layer: each image a point in the layer's map (PCA: its first two
    principal axes, with their variance shares; t-SNE/UMAP: their two axes)."""
    from cnnviz.probes.embedding import axis_names

    first, second = axis_names(embedding)
    names = list(coords)
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = new_axes(rows, cols, figsize=(3.0 * cols, 3.0 * rows + 0.9), squeeze=False)
    import matplotlib

    colours = matplotlib.colormaps[CLASS_COLOURS]
    for ax in axes.ravel():
        ax.axis("off")
    for ax, name in zip(axes.ravel(), names):
        ax.axis("on")
        points = coords[name]
        for c in np.unique(labels):
            mine = labels == c
            ax.scatter(points[mine, 0], points[mine, 1], s=3, color=colours(int(c) % 10),
                       label=class_names[c] if c < len(class_names) else str(c), alpha=0.7,
                       linewidths=0)
        a, b = shares[name]
        ax.set_title(f"{name}\n{notes.get(name, '')}", fontsize=7)
        pca = embedding == "pca"
        ax.set_xlabel(f"{first} ({a:.0%})" if pca else first, fontsize=7)
        ax.set_ylabel(f"{second} ({b:.0%})" if pca else second, fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    handles, names_shown = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, names_shown, loc="lower center", ncol=min(10, len(names_shown)),
               fontsize=7, markerscale=3, frameon=False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    return save_figure(fig, path)


def cka_heatmap(cka: np.ndarray, rows: Sequence[str], columns: Sequence[str], title: str,
                path: str | os.PathLike | None = None):
    """Linear CKA between every pair of layers (0: unrelated, 1: the same up to a rotation
    and a scale)."""
    fig, ax = new_axes(figsize=(max(4.5, 0.5 * len(columns) + 2.5), max(4.0, 0.45 * len(rows) + 1.8)))
    shown = ax.imshow(cka, cmap="magma", vmin=0, vmax=1)
    ax.set_xticks(range(len(columns)), columns, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    if cka.size <= 400:
        for (i, j), value in np.ndenumerate(cka):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6,
                    color="black" if value > 0.6 else "white")
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def spread(points: np.ndarray, count: int, gap: float = 0.07, seed: int = 0) -> np.ndarray:
    """Indices of up to `count` points at least `gap` apart (in the panel's 0–1 box), taken
    in a seeded random order: thumbnails that do not cover each other."""
    span = np.ptp(points, axis=0)
    unit = (points - points.min(axis=0)) / np.where(span > 0, span, 1.0)
    kept: list[int] = []
    for i in np.random.default_rng(seed).permutation(len(points)):
        if len(kept) == count:
            break
        if not kept or np.min(np.abs(unit[kept] - unit[i]).max(axis=1)) >= gap:
            kept.append(int(i))
    return np.array(kept, int)


def thumbnail_panels(coords: dict[str, np.ndarray], labels: np.ndarray, pixels: np.ndarray,
                     class_names: Sequence[str], title: str, embedding: str = "pca",
                     count: int = 90, path: str | os.PathLike | None = None):
    """One panel per layer: images themselves at their places in the layer's map (up to
    `count`, spread so none covers another), each framed in its class's colour."""
    import matplotlib
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    from cnnviz.probes.embedding import axis_names

    names = list(coords)
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = new_axes(rows, cols, figsize=(4.6 * cols, 4.6 * rows + 0.8), squeeze=False)
    colours = matplotlib.colormaps[CLASS_COLOURS]
    grey = pixels.ndim == 3 or pixels.shape[-1] == 1
    zoom = 16.0 / max(pixels.shape[1:3])  # about 16 pixels on screen per thumbnail at 100 dpi
    for ax in axes.ravel():
        ax.axis("off")
    for ax, name in zip(axes.ravel(), names):
        points = coords[name]
        ax.axis("on")
        ax.scatter(points[:, 0], points[:, 1], s=1, color="0.85", linewidths=0)
        for i in spread(points, count):
            image = pixels[i][..., 0] if pixels[i].ndim == 3 and grey else pixels[i]
            box = OffsetImage(np.asarray(image, np.uint8), zoom=zoom,
                              cmap="gray_r" if grey else None)
            ax.add_artist(AnnotationBbox(box, points[i], frameon=True, pad=0.1,
                                         bboxprops={"edgecolor": colours(int(labels[i]) % 10),
                                                    "linewidth": 1.2}))
        first, second = axis_names(embedding)
        ax.set_title(name, fontsize=8)
        ax.set_xlabel(first, fontsize=7)
        ax.set_ylabel(second, fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [matplotlib.lines.Line2D([], [], marker="s", linestyle="", markerfacecolor="none",
                                       markeredgecolor=colours(c % 10), label=class_names[c])
               for c in np.unique(labels) if c < len(class_names)]
    fig.legend(handles=handles, loc="lower center", ncol=min(10, len(handles)), fontsize=7,
               frameon=False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.04, 1, 0.96))
    return save_figure(fig, path)
