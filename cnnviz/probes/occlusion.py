"""Occlusion: the drop of the target logit when a square of the image is blacked out,
averaged per pixel over the squares that cover it (Zeiler & Fergus, 2014)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import tensorflow as tf

def occlusion(run: Callable, x: np.ndarray, targets: np.ndarray, patch: int, stride: int,
              fill: np.ndarray, size: int) -> np.ndarray:
    """Per pixel: the mean drop of the target logit over the patches that cover it."""
    h, w = x.shape[1:3]
    corners = [(r, c) for r in _starts(h, patch, stride) for c in _starts(w, patch, stride)]
    base = np.concatenate([run(tf.constant(x[i:i + size]))[1].numpy()
                           for i in range(0, len(x), size)])[np.arange(len(x)), targets]
    drop = np.zeros(x.shape[:3], np.float64)
    cover = np.zeros((h, w), np.float64)
    for r, c in corners:
        cover[r:r + patch, c:c + patch] += 1
    for first in range(0, len(x) * len(corners), size):
        chunk = np.arange(first, min(first + size, len(x) * len(corners)))
        image, k = chunk // len(corners), chunk % len(corners)
        batch = x[image].copy()
        for i, j in enumerate(k):
            r, c = corners[j]
            batch[i, r:r + patch, c:c + patch] = fill[r:r + patch, c:c + patch]
        score = run(tf.constant(batch))[1].numpy()[np.arange(len(chunk)), targets[image]]
        for i, j in enumerate(k):
            r, c = corners[j]
            drop[image[i], r:r + patch, c:c + patch] += base[image[i]] - score[i]
    return (drop / np.maximum(cover, 1)).astype(np.float32)


def _starts(side: int, patch: int, stride: int) -> list[int]:
    """Patch corners along one side every `stride` pixels, plus one flush with the far edge
    so that every pixel is covered."""
    starts = list(range(0, max(1, side - patch + 1), stride))
    if starts[-1] + patch < side:
        starts.append(side - patch)
    return starts
