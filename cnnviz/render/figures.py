"""Matplotlib figures (Agg backend, written atomically)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cnnviz.atomic import atomic_path  # noqa: E402
from cnnviz.render.style import figure_output_now  # noqa: E402


def save_figure(fig, path: str | os.PathLike | None, dpi: int | None = None, tight: bool = False):
    """Save and close a figure atomically, in the format of the path's suffix, at `dpi`
    (default: the resolution in force, see cnnviz.render.style); returns the path. With no
    path, the figure itself is returned, open (what a notebook shows: `result.show()`).

    `tight` crops the margins at the price of drawing the figure twice: used by figures
    whose size follows their content (mosaics with outer labels); the others lay
    themselves out with `tight_layout` or explicit margins.
    """
    if path is None:
        return fig
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi or figure_output_now().dpi, format=path.suffix.lstrip(".") or "png",
                    bbox_inches="tight" if tight else None)
    plt.close(fig)
    return path


def set_margins(fig, left: float = 0.7, right: float = 0.2, top: float = 0.45,
                bottom: float = 0.55, wspace: float = 0.25) -> None:
    """Fixed margins in inches: a layout that costs nothing (tight_layout measures every
    text, ≈ 0.2 s a figure)."""
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=left / width, right=1 - right / width, top=1 - top / height,
                        bottom=bottom / height, wspace=wspace)


def training_curves(history: dict[str, list[float]], path: str | os.PathLike,
                    title: str = "") -> Path:
    """Accuracy and loss per epoch, train vs validation (test split), side by side."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric in zip(axes, ("accuracy", "loss")):
        for key, label, style in ((metric, "train", "o-"), (f"val_{metric}", "test", "s--")):
            values = history.get(key, [])
            if values:
                ax.plot(range(1, len(values) + 1), values, style, label=label, markersize=4)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
        epochs = len(history.get(metric, []))
        if epochs:
            ax.set_xticks(range(1, epochs + 1, max(1, epochs // 10)))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def png_bytes(fig, dpi: int = 90) -> bytes:
    """A figure as PNG bytes (for Jupyter's _repr_png_); the figure is closed."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()
