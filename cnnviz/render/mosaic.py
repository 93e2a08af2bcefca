"""Tile many small arrays into one image, assembled in NumPy (no matplotlib axes per tile)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SCALES = ("map", "layer")


@dataclass(frozen=True)
class Mosaic:
    """A tiled image with NaN gaps, values scaled to [0, 1], and where each tile sits."""

    image: np.ndarray  # (rows·(h+pad)-pad, cols·(w+pad)-pad[, 3]) float32, NaN between tiles
    rows: int
    cols: int
    tile_shape: tuple[int, int]
    pad: int
    low: float   # the value drawn as 0 (for a shared scale; per-tile scales vary)
    high: float  # the value drawn as 1

    def origin(self, index: int) -> tuple[int, int]:
        """(row, column) pixel of the top-left corner of tile `index` (row-major)."""
        h, w = self.tile_shape
        return (index // self.cols) * (h + self.pad), (index % self.cols) * (w + self.pad)


def grid_shape(n: int) -> tuple[int, int]:
    """A near-square (rows, cols) grid for n tiles, wider than tall."""
    cols = max(1, math.ceil(math.sqrt(n)))
    return math.ceil(n / cols), cols


def scale_tiles(tiles: np.ndarray, scale: str = "map", low: float | None = None,
                high: float | None = None) -> tuple[np.ndarray, float, float]:
    """Scale tiles (N, h, w) or colour tiles (N, h, w, 3) to [0, 1]: each on its own range
    (`map`) or one shared range (`layer`; `low`/`high` override it, e.g. to share it
    between images)."""
    tiles = np.asarray(tiles, dtype=np.float32)
    if scale == "map":
        axes = tuple(range(1, tiles.ndim))
        lo = tiles.min(axis=axes, keepdims=True)
        span = tiles.max(axis=axes, keepdims=True) - lo
        out = np.where(span > 0, (tiles - lo) / np.where(span > 0, span, 1), 0)
        return out.astype(np.float32), float(tiles.min()), float(tiles.max())
    if scale != "layer":
        raise ValueError(f"scale must be one of {SCALES}")
    lo = float(tiles.min()) if low is None else float(low)
    hi = float(tiles.max()) if high is None else float(high)
    span = hi - lo if hi > lo else 1.0
    return np.clip((tiles - lo) / span, 0, 1).astype(np.float32), lo, hi


def mosaic(tiles: np.ndarray, cols: int | None = None, pad: int = 1, scale: str = "map",
           low: float | None = None, high: float | None = None) -> Mosaic:
    """Tile (N, h, w) arrays, or colour tiles (N, h, w, 3), row-major into one image,
    scaled per tile or on a shared range."""
    tiles = np.asarray(tiles)
    n, h, w = tiles.shape[:3]
    colour = tiles.shape[3:]
    rows, cols = grid_shape(n) if cols is None else (math.ceil(n / cols), cols)
    scaled, lo, hi = scale_tiles(tiles, scale, low, high)
    canvas = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad, *colour), np.nan, np.float32)
    padded = np.full((rows * cols, h + pad, w + pad, *colour), np.nan, np.float32)
    padded[:n, :h, :w] = scaled
    grid = padded.reshape(rows, cols, h + pad, w + pad, *colour).swapaxes(1, 2)
    canvas[:] = grid.reshape(rows * (h + pad), cols * (w + pad), *colour)[:canvas.shape[0], :canvas.shape[1]]
    return Mosaic(canvas, rows, cols, (h, w), pad, lo, hi)


def as_tiles(images: np.ndarray) -> np.ndarray:
    """Images (N, H, W) gray or (N, H, W, C) → drawable tiles: gray and RGB as they are,
    one channel squeezed, any other channel count side by side as gray (N, H, W·C)."""
    images = np.asarray(images)
    if images.ndim == 3 or images.shape[-1] == 3:
        return images
    if images.shape[-1] == 1:
        return images[..., 0]
    n, h, w, c = images.shape
    return np.moveaxis(images, -1, 2).reshape(n, h, w * c)


def maps_to_tiles(activation: np.ndarray) -> np.ndarray:
    """One image's spatial layer output (h, w, C) → tiles (C, h, w)."""
    return np.moveaxis(np.asarray(activation), -1, 0)
