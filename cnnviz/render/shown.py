"""What every result shares: Jupyter shows it as the figure of `.show()`, and `.save(folder,
dpi=, format=)` writes its figures at that resolution and format. Never TensorFlow."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from cnnviz.atomic import atomic_path
from cnnviz.render.style import figure_name, figure_output


def figure_output_of(save):
    """`save(folder, dpi=None, format=None)`: the figures at that resolution and format
    (png, svg or pdf); the arrays are the same."""

    @functools.wraps(save)
    def wrapped(self, folder, dpi: int | None = None, format: str | None = None):  # noqa: A002
        with figure_output(dpi, format):
            return save(self, folder)

    return wrapped


class Shown:
    """Jupyter shows a result as the figure of `.show()`."""

    def show(self):  # pragma: no cover - every result defines it
        raise NotImplementedError

    def _repr_png_(self) -> bytes:
        from cnnviz.render.figures import png_bytes

        return png_bytes(self.show())


def save_arrays(path: Path, **arrays) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    return path


__all__ = ["Shown", "figure_name", "figure_output_of", "save_arrays"]
