"""Which images a request means: dataset indices, raw pixels, a drawing, a sample of a class.
Read once here for the library's methods and the live page."""

from __future__ import annotations

import numpy as np

from cnnviz.checks import brief, indices
from cnnviz.errors import CnnvizError, UsageError

MAX_DRAWING = 1024  # a drawing's largest side


def images_of(m, images, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(pixels (N, H, W[, C]), dataset indices or -1, labels or None)."""
    try:
        array = np.asarray(images)
    except ValueError:  # ragged nesting
        array = np.asarray(None)
    if array.dtype.kind not in "iuf" or array.size == 0:
        raise UsageError(f"images must be dataset indices (an int or a list) or raw images "
                         f"(N, H, W[, C]) with N ≥ 1, got {brief(images)}", "images")
    shape = m.loaded.image_shape
    if array.ndim >= 2:  # raw images
        if array.ndim == len(shape) + 2 and array.shape[-1] == 1:
            array = array[..., 0]
        if array.ndim == len(shape):
            array = array[np.newaxis]
        if array.shape[1:] != shape:
            side = "x".join(map(str, shape))
            raise UsageError(f"images: raw images must be (N, {', '.join(map(str, shape))})"
                             f" for this model's {side} input, got {np.asarray(images).shape}",
                             "images")
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 255:
            raise UsageError("images: raw pixels must be finite and within 0–255", "images")
        return array.astype(np.float32), np.full(len(array), -1), None
    index = indices(array, "images")
    x, y = m.data().split(split)
    bad = [int(i) for i in index if not 0 <= i < len(x)]
    if bad or len(index) == 0:
        raise UsageError(f"images: index {bad[0] if bad else 'none'} out of range; the "
                         f"{split} split has images 0–{len(x) - 1}", "images")
    return np.asarray(x[index]), index, y[index]


def one_image(m, pixels) -> np.ndarray:
    """One raw image (H, W[, C]) checked against the model's input (a trailing 1 channel
    may be left out): float32 pixels of the input's shape."""
    shape = tuple(m.loaded.image_shape)
    try:
        array = np.asarray(pixels, np.float32)
    except (TypeError, ValueError):
        array = np.zeros(0, np.float32)
    if array.ndim == len(shape) + 1 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.shape != shape:
        raise UsageError(f"pixels: shape {'×'.join(map(str, array.shape)) or 'scalar'}; this "
                         f"model takes {'×'.join(map(str, shape))}", "pixels")
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 255:
        raise UsageError("pixels: values must be finite and within 0–255", "pixels")
    return array


def sample(m, index: int | None = None, label: int | None = None,
           split: str = "test") -> tuple[np.ndarray, int, int]:
    """A dataset image by index, or the first (index: the index-th) of class `label`."""
    if split not in ("test", "train"):
        raise UsageError(f"split {split!r}: use test or train", "split")
    try:
        x, y = m.data().split(split)
    except CnnvizError as exc:
        raise CnnvizError(f"no dataset images: {exc}") from None
    if label is not None:
        classes = len(m.classes)
        if not 0 <= label < classes:
            raise UsageError(f"class {label} out of range; valid: 0–{classes - 1}", "class")
        found = np.flatnonzero(np.asarray(y) == label)
        if len(found) == 0:
            raise UsageError(f"the {split} split has no image of class {label}", "class")
        index = int(found[0] if index is None else found[index % len(found)])
    if index is None or not 0 <= index < len(x):
        raise UsageError(f"index {index} out of range; the {split} split has images "
                         f"0–{len(x) - 1}", "index")
    return np.asarray(x[index:index + 1])[0].astype(np.float32), int(index), int(y[index])


def from_drawing(m, drawing) -> np.ndarray:
    """A drawing (white ink on black, 0–255, gray) → the model's input pixels: prepared as
    MNIST's digits were for a digit model, else resized."""
    from cnnviz.digits import prepare_digit
    from cnnviz.images import convert
    from cnnviz.model import digit_input

    array = np.asarray(drawing, np.float32)
    if array.ndim != 2 or not 2 <= min(array.shape) <= max(array.shape) <= MAX_DRAWING:
        raise UsageError(f"drawing: give rows of gray levels, 2–{MAX_DRAWING} a side; got "
                         f"shape {'×'.join(map(str, array.shape)) or 'scalar'}", "drawing")
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 255:
        raise UsageError("drawing: values must be finite and within 0–255", "drawing")
    if digit_input(m.loaded):
        prepared = prepare_digit(array)
        if prepared is None:
            raise UsageError("drawing: no ink; draw something", "drawing")
        return prepared.astype(np.float32)
    gray = np.rint(array).astype(np.uint8)[np.newaxis]  # convert makes RGB of it if need be
    return convert(gray, m.loaded.image_shape)[0].astype(np.float32)
