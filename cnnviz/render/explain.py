"""Explanation figures: one per image (the input, the prediction, every method's map alone
and over the image), and the sanity-check figure. Never TensorFlow."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from cnnviz.explain_methods import signed as is_signed
from cnnviz.render.style import DIVERGING as SIGNED
from cnnviz.render.style import PIXELS
from cnnviz.render.style import SEQUENTIAL as MAPS
from cnnviz.render.figures import new_axes, save_figure



def explanation_figure(pixels: np.ndarray, maps: dict[str, np.ndarray], lines: Sequence[str],
                       title: str, notes: dict[str, str] | None = None,
                       path: str | os.PathLike | None = None):
    """pixels (H, W[, C]) 0–255; maps: method → (H, W). Signed methods on a red/blue scale
    centred at 0 (red: raises the target logit); unsigned ones on a sequential scale."""
    notes = notes or {}
    columns = 1 + len(maps)
    fig, axes = new_axes(2, columns, figsize=(1.9 * columns, 4.3), squeeze=False)
    if pixels.ndim == 3:
        axes[0, 0].imshow(np.clip(pixels / 255.0, 0, 1))
    else:
        axes[0, 0].imshow(pixels, cmap=PIXELS, vmin=0, vmax=255)
    axes[0, 0].set_title("input", fontsize=8)
    axes[1, 0].text(0.0, 0.95, "\n".join(lines), fontsize=7, va="top", transform=axes[1, 0].transAxes)
    grey = pixels.mean(axis=-1) if pixels.ndim == 3 else pixels
    for k, (method, values) in enumerate(maps.items(), start=1):
        signed = is_signed(method)
        limit = float(np.abs(values).max()) or 1.0
        low = -limit if signed else 0.0
        cmap = SIGNED if signed else MAPS
        shown = axes[0, k].imshow(values, cmap=cmap, vmin=low, vmax=limit)
        fig.colorbar(shown, ax=axes[0, k], fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
        axes[0, k].set_title(method + (f"\n{notes[method]}" if method in notes else ""), fontsize=7)
        axes[1, k].imshow(grey, cmap=PIXELS, vmin=0, vmax=255)
        axes[1, k].imshow(values, cmap=cmap, vmin=low, vmax=limit, alpha=0.55)
        axes[1, k].set_title("over the image", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    axes[1, 0].axis("off")
    fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0.02, right=0.98, top=0.8, bottom=0.03, wspace=0.35, hspace=0.35)
    return save_figure(fig, path)


def sanity_figure(report: dict, path: str | os.PathLike | None = None):
    """Left: each method's correlation with the trained maps as layers are randomised from
    the top; right: the deletion curves against a random order."""
    fig, (left, right) = new_axes(1, 2, figsize=(10, 3.8))
    layers = report["layers_randomised"]
    for method, row in report["methods"].items():
        left.plot(range(1, len(layers) + 1), row["randomisation"], marker="o", label=method)
        right.plot(row["shares"], row["deletion_curve"], label=method)
    first = next(iter(report["methods"].values()), None)
    if first is not None:
        right.plot(first["shares"], first["random_deletion_curve"], "k--", label="random order")
    left.axhline(0.5, color="grey", lw=0.8, ls=":")
    left.set_xticks(range(1, len(layers) + 1), [f"+{name}" for name in layers], rotation=45,
                    fontsize=7, ha="right")
    left.set_ylabel("Spearman with the trained maps")
    left.set_title("cascading randomisation (from the top)", fontsize=9)
    right.set_xlabel("share of pixels deleted (most important first)")
    right.set_ylabel("target score")
    right.set_title("deletion", fontsize=9)
    left.legend(fontsize=6)
    right.legend(fontsize=6)
    fig.tight_layout()
    return save_figure(fig, path)
