"""A drawing or a photo of a digit prepared the way MNIST's digits were (LeCun et al.): the
ink cropped, scaled to fit a 20 × 20 box (aspect kept, anti-aliased, which gives the soft
grey edges of the originals), then placed in the 28 × 28 frame with its centre of mass at
the centre. A network trained on MNIST has only ever seen digits like that: a digit drawn
small in a corner of a canvas, or with a thin pen, is not one.

    prepared = prepare_digit(gray)   # gray: (H, W), white ink on black, 0–255; None: no ink
"""

from __future__ import annotations

import numpy as np

FRAME = 28     # MNIST's image side
BOX = 20       # the side of the box each digit was scaled into
INK = 0.2      # a pixel is ink above this share of the brightest pixel
MIN_INK = 24   # grey level below which an image holds no ink at all
STROKE = 2.2   # MNIST's typical stroke width in pixels, which strokes are thickened towards


def prepare_digit(gray: np.ndarray) -> np.ndarray | None:
    """(H, W) white-on-black 0–255 → (28, 28) uint8 as MNIST prepared its digits; None when
    the image holds no ink."""
    from scipy import ndimage
    from skimage.transform import resize

    x = np.asarray(gray, np.float64)
    if x.ndim != 2 or x.size == 0 or x.max() < MIN_INK:
        return None
    ink = x > INK * x.max()
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = x[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    scale = BOX / max(crop.shape)
    size = tuple(max(1, round(side * scale)) for side in crop.shape)
    small = resize(crop, size, order=1, anti_aliasing=scale < 1, preserve_range=True)
    small = _thicken(small, stroke_width(crop > INK * crop.max()) * scale)
    small *= 255.0 / max(small.max(), 1e-9)
    frame = np.zeros((FRAME, FRAME))
    cy, cx = ndimage.center_of_mass(small)
    top = int(np.clip(round((FRAME - 1) / 2 - cy), 0, FRAME - size[0]))
    left = int(np.clip(round((FRAME - 1) / 2 - cx), 0, FRAME - size[1]))
    frame[top:top + size[0], left:left + size[1]] = small
    return np.rint(np.clip(frame, 0, 255)).astype(np.uint8)


def stroke_width(ink: np.ndarray) -> float:
    """The mean width of the strokes of a boolean ink mask: its area over its skeleton's
    length."""
    from skimage.morphology import skeletonize

    length = int(skeletonize(ink).sum())
    return float(ink.sum()) / max(length, 1)


def _thicken(small: np.ndarray, width: float) -> np.ndarray:
    """Strokes thinner than MNIST's made as wide (a grey dilation), then softened."""
    from scipy import ndimage

    if width >= STROKE:
        return small
    grow = int(round((STROKE - width) / 2))
    if grow >= 1:
        small = ndimage.grey_dilation(small, footprint=_disk(grow))
    return ndimage.gaussian_filter(small, 0.5)


def _disk(radius: int) -> np.ndarray:
    y, x = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return x * x + y * y <= radius * radius + radius
