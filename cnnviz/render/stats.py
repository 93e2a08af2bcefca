"""Figures of layer statistics: histograms, per-map means, overview, two-model comparison."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from cnnviz.render.figures import new_axes, save_figure, set_margins


def histograms(activations: np.ndarray, weights: np.ndarray | None, layer: str,
               path: str | os.PathLike | None = None):
    """Histogram of a sample of the layer's activations, and of all its weights."""
    fig, axes = new_axes(1, 2 if weights is not None else 1, figsize=(10, 3.4), squeeze=False)
    ax = axes[0, 0]
    zero = float(np.mean(activations == 0))
    counts, edges = np.histogram(activations[activations != 0], bins=80)
    ax.stairs(counts, edges, fill=True, color="tab:blue")
    ax.set_yscale("log")
    ax.set_title(f"{layer}: activations ≠ 0 ({zero:.0%} of a {len(activations):,}-value sample "
                 "are exactly 0)", fontsize=9)
    ax.set_xlabel("activation")
    if weights is not None:
        ax = axes[0, 1]
        counts, edges = np.histogram(weights, bins=80)
        ax.stairs(counts, edges, fill=True, color="tab:orange")
        ax.set_title(f"{layer}: all {len(weights):,} weights", fontsize=9)
        ax.set_xlabel("weight")
    set_margins(fig, left=0.95)
    return save_figure(fig, path)


MAX_BARS = 128  # maps drawn as separate bars; more are drawn as one filled step line


def map_means(mean: np.ndarray, dead: np.ndarray, always_on: np.ndarray, layer: str,
              path: str | os.PathLike, unit: str = "map") -> Path:
    """Mean activation per map as bars; dead maps marked with a red ×, always-on with a dot."""
    fig, ax = new_axes(figsize=(float(np.clip(len(mean) * 0.14, 6, 16)), 3.2))
    index = np.arange(len(mean))
    if len(mean) <= MAX_BARS:
        ax.bar(index, mean, width=0.8, color="tab:blue")
    else:  # one artist, not a rectangle per map (1,280 bars took 0.3 s to draw)
        ax.stairs(mean, np.arange(len(mean) + 1) - 0.5, fill=True, color="tab:blue")
    top = float(mean.max()) if len(mean) and mean.max() > 0 else 1.0
    ax.plot(index[dead], np.zeros(dead.sum()), "x", color="red", markersize=7,
            label=f"dead ({int(dead.sum())})")
    ax.plot(index[always_on], np.full(always_on.sum(), top * 1.03), ".", color="black",
            label=f"always on ({int(always_on.sum())})")
    ax.set_xlim(-0.8, len(mean) - 0.2)
    ax.set_xlabel(unit)
    ax.set_ylabel("mean activation")
    ax.set_title(f"{layer}: mean activation per {unit}", fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    set_margins(fig, left=0.8)
    return save_figure(fig, path)


def overview(layers: Sequence[str], active: Sequence[float], dead: Sequence[int],
             sizes: Sequence[int], path: str | os.PathLike | None = None):
    """All layers: share of activations above zero, and dead maps out of all maps."""
    fig, (left, right) = new_axes(1, 2, figsize=(11, 3.6))
    x = np.arange(len(layers))
    left.bar(x, active, color="tab:blue")
    left.set_xticks(x, layers, rotation=30)
    left.set_ylim(0, 1)
    left.set_ylabel("share of values > 0")
    left.set_title("activity (1 − sparsity)")
    right.bar(x, sizes, color="lightgray", label="maps / units")
    right.bar(x, dead, color="tab:red", label="dead")
    right.set_xticks(x, layers, rotation=30)
    right.set_title("dead maps and units")
    right.legend(fontsize=8)
    set_margins(fig, bottom=0.85)
    return save_figure(fig, path)


def comparison(layers: Sequence[str], names: tuple[str, str], active: tuple[list, list],
               dead_share: tuple[list, list], path: str | os.PathLike | None = None):
    """Two models side by side per layer: activity and share of dead maps."""
    fig, axes = new_axes(1, 2, figsize=(11, 3.6))
    x, width = np.arange(len(layers)), 0.38
    for ax, values, title in ((axes[0], active, "share of values > 0"),
                              (axes[1], dead_share, "share of dead maps / units")):
        for i, (name, v) in enumerate(zip(names, values)):
            ax.bar(x + (i - 0.5) * width, v, width, label=name)
        ax.set_xticks(x, layers, rotation=30)
        ax.set_title(title)
        ax.legend(fontsize=8)
    set_margins(fig, bottom=0.85)
    return save_figure(fig, path)
