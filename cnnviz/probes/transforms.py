"""Regularisers, random transforms and the Fourier parameterisation of the pattern ascent.

Patterns are `u`, pixels / 255 in the model's channel order, (B, H, W, C) in [0, 1].
- A regulariser is a penalty per item that the ascent lowers: it climbs
  objective − |objective| · Σ weight · penalty, so weights mean the same on every model.
- Transforms move the input at random at every step (jitter, zoom, rotation, sized relative
  to the image): the pattern has to work anywhere nearby, which removes pixel-grid artefacts.
- `FourierPixels`: the pattern as a spectrum scaled by 1/frequency (and, for colour, mixed
  by the data's colour correlation), squashed into 0–1 by a sigmoid: steps favour smooth,
  natural-looking images over high-frequency noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from cnnviz.errors import UsageError


def total_variation(u: tf.Tensor) -> tf.Tensor:
    """Mean absolute difference between neighbouring pixels, per item."""
    dy = tf.reduce_mean(tf.abs(u[:, 1:] - u[:, :-1]), axis=[1, 2, 3])
    dx = tf.reduce_mean(tf.abs(u[:, :, 1:] - u[:, :, :-1]), axis=[1, 2, 3])
    return dy + dx


def l1(u: tf.Tensor) -> tf.Tensor:
    """Mean absolute distance from mid-grey, per item."""
    return tf.reduce_mean(tf.abs(u - 0.5), axis=[1, 2, 3])


def l2(u: tf.Tensor) -> tf.Tensor:
    """Mean squared distance from mid-grey, per item."""
    return tf.reduce_mean(tf.square(u - 0.5), axis=[1, 2, 3])


def blur(u: tf.Tensor) -> tf.Tensor:
    """Mean squared distance from the pattern's own 3×3 blur, per item (high frequencies)."""
    kernel = np.outer([1, 2, 1], [1, 2, 1]).astype(np.float32) / 16.0
    channels = u.shape[-1]
    weights = tf.constant(np.tile(kernel[:, :, None, None], (1, 1, channels, 1)))
    smooth = tf.nn.depthwise_conv2d(tf.pad(u, [[0, 0], [1, 1], [1, 1], [0, 0]], "SYMMETRIC"),
                                    weights, [1, 1, 1, 1], "VALID")
    return tf.reduce_mean(tf.square(u - smooth), axis=[1, 2, 3])


REGULARISERS = {"tv": total_variation, "l1": l1, "l2": l2, "blur": blur}
TRANSFORMS = ("jitter", "scale", "rotate")


def parse_weights(text: str | None, known, what: str) -> dict[str, float]:
    """'tv=0.1,l2=0.05' → {'tv': 0.1, 'l2': 0.05}; names must be among `known`, values ≥ 0."""
    if text is None or not text.strip() or text.strip() == "none":
        return {}
    found = {}
    for part in text.split(","):
        name, _, value = part.strip().partition("=")
        try:
            number = float(value)
            if name not in known or not 0 <= number < float("inf"):
                raise ValueError
        except ValueError:
            raise UsageError(f"{what} {part.strip()!r}: use NAME=VALUE with NAME one of "
                             f"{', '.join(known)} and VALUE ≥ 0, e.g. "
                             f"{known[0]}={'0.1' if what == 'regularise' else '2'}", what) from None
        found[name] = number
    return found


@dataclass(frozen=True)
class Transforms:
    """Random moves at every step: jitter (pixels), zoom (relative, 0.1 → ×0.9–1.1),
    rotation (degrees). All zero: no transform."""

    jitter: float = 0.0
    scale: float = 0.0
    rotate: float = 0.0

    @property
    def active(self) -> bool:
        return bool(self.jitter or self.scale or self.rotate)

    def apply(self, u: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """Each item moved by its own random affine transform (reflected at the borders)."""
        n, h, w = tf.shape(u)[0], u.shape[1], u.shape[2]
        draw = tf.random.stateless_uniform([n, 4], seed=seed, minval=-1.0, maxval=1.0)
        angle = draw[:, 0] * self.rotate * math.pi / 180.0
        zoom = 1.0 + draw[:, 1] * self.scale
        shift_y, shift_x = draw[:, 2] * self.jitter, draw[:, 3] * self.jitter
        cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
        cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
        # output pixel (x, y) samples the input at A·(x − c) + c − shift
        a0, a1, b0, b1 = cos, -sin, sin, cos
        a2 = cx - a0 * cx - a1 * cy - shift_x
        b2 = cy - b0 * cx - b1 * cy - shift_y
        zeros = tf.zeros_like(a0)
        matrix = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=u, transforms=matrix, output_shape=tf.constant([h, w]),
            interpolation="BILINEAR", fill_mode="REFLECT", fill_value=0.0)


def relative_transforms(image_shape: tuple[int, ...]) -> Transforms:
    """The regularised recipe's transforms for an image: jitter side/16, zoom ±5 %, ±5°."""
    return Transforms(jitter=max(image_shape[:2]) / 16.0, scale=0.05, rotate=5.0)


class PixelsDirect:
    """The pattern is its pixels (clipped to 0–1 after every step)."""

    clipped = True
    step_scale = 1.0

    def to_pixels(self, theta: tf.Tensor) -> tf.Tensor:
        return theta

    def from_pixels(self, u: np.ndarray) -> np.ndarray:
        return u.astype(np.float32)


class FourierPixels:
    """u = sigmoid(colour-mixed inverse FFT of spectrum · 1/frequency)."""

    clipped = False
    step_scale = 3.0  # measured (benchmarks/bench_patterns.py): 3× the pixel step climbs best

    def __init__(self, shape: tuple[int, int, int], colour: np.ndarray | None = None):
        h, w, c = shape
        fy = np.fft.fftfreq(h)[:, None]
        fx = np.fft.rfftfreq(w)[None, :]
        scale = 1.0 / np.maximum(np.sqrt(fx ** 2 + fy ** 2), 1.0 / max(h, w))
        self.scale = tf.constant((scale / scale.max() * math.sqrt(h * w)).astype(np.float32))
        self.colour = np.eye(c, dtype=np.float32) if colour is None else colour.astype(np.float32)
        self.shape = shape

    def to_pixels(self, theta: tf.Tensor) -> tf.Tensor:
        spectrum = tf.complex(theta[..., 0] * self.scale, theta[..., 1] * self.scale)
        h, w, _ = self.shape
        z = tf.transpose(tf.signal.irfft2d(spectrum, [h, w]), [0, 2, 3, 1])  # (B, H, W, C)
        return tf.sigmoid(tf.tensordot(z, tf.constant(self.colour.T), axes=1))

    def from_pixels(self, u: np.ndarray) -> np.ndarray:
        """The spectrum whose pixels are `u` (clipped to 1–99 % so the sigmoid can reach it)."""
        p = np.clip(u, 0.01, 0.99).astype(np.float64)
        z = np.log(p / (1 - p)) @ np.linalg.inv(self.colour.T)
        h, w, _ = self.shape
        spectrum = np.fft.rfft2(np.moveaxis(z, -1, 1), s=(h, w)) / self.scale.numpy()
        return np.stack([spectrum.real, spectrum.imag], axis=-1).astype(np.float32)


def colour_correlation(pixels: np.ndarray) -> np.ndarray | None:
    """The square root of the colour covariance of some images (N, H, W, C) in 0–255, scaled
    so its largest column has norm 1: mixes independent noise into the data's colours."""
    if pixels.ndim != 4 or pixels.shape[-1] == 1 or len(pixels) == 0:
        return None
    flat = pixels.reshape(-1, pixels.shape[-1]).astype(np.float64) / 255.0
    values, vectors = np.linalg.eigh(np.cov(flat, rowvar=False))
    root = vectors @ np.diag(np.sqrt(np.maximum(values, 1e-6))) @ vectors.T
    return root / np.linalg.norm(root, axis=0).max()
