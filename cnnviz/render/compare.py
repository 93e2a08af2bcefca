"""Figures of a two-model comparison: similarity matrices, matched pairs, per-layer summary."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from cnnviz.render import style  # noqa: E402
from cnnviz.render.figures import new_axes, save_figure, set_margins
from cnnviz.render.patterns import KERNEL_CMAP
from cnnviz.render.mosaic import mosaic


def similarity_figure(similarity: np.ndarray, partner: np.ndarray, names: tuple[str, str],
                      layer: str, path: str | os.PathLike) -> Path:
    """The matrix as computed, and with B's maps reordered to their matched partners."""
    fig, axes = new_axes(1, 2, figsize=(11, 5.2))
    for ax, matrix, title in ((axes[0], similarity, "as trained"),
                              (axes[1], similarity[:, partner], f"{names[1]} reordered by the matching")):
        shown = ax.imshow(matrix, cmap=style.DIVERGING, vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(f"{layer}: {title}", fontsize=10)
        ax.set_xlabel(f"{names[1]} map" + (" (matched order)" if matrix is not similarity else ""))
        ax.set_ylabel(f"{names[0]} map")
    set_margins(fig, left=0.7, right=1.1, top=0.45, bottom=0.6, wspace=0.3)
    fig.colorbar(shown, ax=list(axes), fraction=0.025, pad=0.02, label="correlation")
    return save_figure(fig, path)


def kernel_pairs(first: np.ndarray, second: np.ndarray, partner: np.ndarray,
                 matched: np.ndarray, names: tuple[str, str], layer: str,
                 path: str | os.PathLike) -> Path:
    """Single-channel kernels of A (top row) above their matched kernels of B, best pairs first."""
    order = np.argsort(-matched)
    a = np.moveaxis(first[:, :, 0, :], -1, 0)[order]
    b = np.moveaxis(second[:, :, 0, :], -1, 0)[partner[order]]
    limit = float(max(np.abs(a).max(), np.abs(b).max())) or 1.0
    tiles = mosaic(np.concatenate([a, b]), cols=len(a), pad=1, scale="layer", low=-limit, high=limit)
    fig, ax = new_axes(figsize=(max(6.0, len(a) * 0.32), 2.4))
    ax.imshow(tiles.image, cmap=KERNEL_CMAP, vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks([1, 5], list(names), fontsize=8)
    h, w = tiles.tile_shape
    ax.set_xticks([c * (w + 1) + w / 2 - 0.5 for c in range(len(a))],
                  [f"{m}\n{partner[m]}" for m in order], fontsize=5)
    ax.tick_params(length=0)
    ax.set_title(f"{layer}: kernel pairs, most similar first (labels: map in {names[0]} / in "
                 f"{names[1]})", fontsize=9)
    set_margins(fig, left=0.8, right=0.2, top=0.4, bottom=0.45)
    return save_figure(fig, path)


def pattern_pairs(first: np.ndarray, second: np.ndarray, partner: np.ndarray,
                  matched: np.ndarray, names: tuple[str, str], layer: str,
                  path: str | os.PathLike) -> Path:
    """Best input patterns (pixel space) of A's maps next to their matched maps of B."""
    from cnnviz.render.patterns import image_grid

    order = np.argsort(-matched)
    frames = np.stack([first[order], second[partner[order]]], axis=1)
    rows = [f"{m} ↔ {partner[m]} ({matched[m]:.2f})" for m in order]
    return image_grid(frames, rows, list(names), f"{layer}: best patterns of matched maps", path)


def class_profile_pairs(first: np.ndarray, second: np.ndarray, partner: np.ndarray,
                        names: tuple[str, str], class_names: Sequence[str], layer: str,
                        path: str | os.PathLike) -> Path:
    """Mean output per class (maps × classes) of A, and of B's matched maps in the same rows;
    each map scaled to its own maximum so the profiles' shapes compare."""
    def scaled(values):
        top = np.abs(values).max(axis=0, keepdims=True)
        return (values / np.where(top > 0, top, 1)).T

    a, b = scaled(first), scaled(second[:, partner])
    fig, axes = new_axes(1, 2, figsize=(8, float(np.clip(len(partner) * 0.12 + 1.5, 3, 14))))
    for ax, values, name in ((axes[0], a, names[0]), (axes[1], b, f"{names[1]} (matched)")):
        ax.imshow(values, cmap=style.SEQUENTIAL, aspect="auto", interpolation="nearest", vmin=0, vmax=1)
        ax.set_xticks(range(len(class_names)), list(class_names), fontsize=7,
                      rotation=45 if len(class_names[0]) > 2 else 0)
        ax.set_title(name, fontsize=9)
        ax.set_ylabel(f"{names[0]} map")
    fig.suptitle(f"{layer}: mean output per class, each map scaled to its maximum", fontsize=10)
    set_margins(fig, left=0.6, right=0.2, top=0.6, bottom=0.8, wspace=0.3)
    return save_figure(fig, path)


def summary_chart(layers: Sequence[str], numbers: dict[str, dict[str, float]],
                  names: tuple[str, str], path: str | os.PathLike) -> Path:
    """Per layer: mean matched similarity against the untrained baseline, and the fractions."""
    keys = (("mean_similarity", f"mean matched similarity, {names[0]} vs {names[1]}"),
            ("baseline_mean_similarity", f"the same, {names[0]} vs untrained"),
            ("above_0_8", "share of maps matched above 0.8"),
            ("above_0_5", "share matched above 0.5"), ("same_index", "share matched to the same index"))
    fig, ax = new_axes(figsize=(max(7.0, len(layers) * 1.9), 4))
    x, width = np.arange(len(layers)), 0.16
    for i, (key, label) in enumerate(keys):
        ax.bar(x + (i - 2) * width, [numbers[layer][key] for layer in layers], width, label=label)
    ax.set_xticks(x, list(layers))
    ax.set_ylim(min(0.0, min(numbers[layer]["baseline_mean_similarity"] for layer in layers)), 1.0)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_title(f"Do {names[0]} and {names[1]} learn the same maps?", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    set_margins(fig, left=0.6, right=2.9, top=0.4, bottom=0.5)
    return save_figure(fig, path)
