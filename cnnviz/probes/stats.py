"""Streaming layer statistics over a dataset, weight statistics, and top-k example images.

One pass over the split in batches; per batch the reductions run inside one compiled
function, and only per-map sums, counts, running top-k lists and a bounded sample of values
(for histograms) are kept, so memory does not grow with the split and the result does not
depend on the batch size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from cnnviz.data import NUM_CLASSES
from cnnviz.graph import graph_of
from cnnviz.inputs import Preprocessing
from cnnviz.probes.activations import bounded_batch, layer_outputs
from cnnviz.probes.compiled import compiled

NEAR_ZERO = 0.01  # a weight is "near zero" below this fraction of the layer's largest |weight|


@dataclass
class LayerStats:
    """Statistics of one layer's maps (or units) over N images."""

    name: str
    shape: tuple              # output shape without the batch axis
    images: int
    mean: np.ndarray          # (C,) mean over images and positions
    std: np.ndarray           # (C,) population std over images and positions
    max: np.ndarray           # (C,)
    active_fraction: np.ndarray        # (C,) share of (image, position) values > 0
    image_active_fraction: np.ndarray  # (C,) share of images with any value > 0
    class_mean: np.ndarray    # (classes, C) mean activation per class
    class_counts: np.ndarray  # (classes,)
    top_index: np.ndarray     # (C, K) dataset indices, highest mean activation first
    top_score: np.ndarray     # (C, K) their mean activation
    sample: np.ndarray        # a bounded random sample of all values (for histograms)

    @property
    def dead(self) -> np.ndarray:
        """Never above zero, in any image."""
        return self.image_active_fraction == 0

    @property
    def always_on(self) -> np.ndarray:
        """Above zero at every position of every image."""
        return self.active_fraction == 1

    @property
    def preferred_class(self) -> np.ndarray:
        return self.class_mean.argmax(axis=0)


@dataclass
class _Accumulator:
    total: np.ndarray
    squares: np.ndarray
    maximum: np.ndarray
    active: np.ndarray
    image_active: np.ndarray
    class_sum: np.ndarray
    top_index: np.ndarray
    top_score: np.ndarray
    samples: list


def layer_stats(model: keras.Model, layers: list[str], images: np.ndarray, labels: np.ndarray,
                preprocessing: Preprocessing, top: int = 9, batch_size: int = 500,
                sample_size: int = 100_000, seed: int = 0,
                classes: int = NUM_CLASSES,
                progress: Callable[[int], None] | None = None) -> dict[str, LayerStats]:
    """Statistics of every layer in `layers` over the images, streamed in batches;
    progress(n) after each batch of n images."""
    probe = layer_outputs(model, layers, with_predictions=False)

    @tf.function
    def reduce(x, picks):
        outputs = probe(x, training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        result = []
        for out, pick in zip(outputs, picks):
            flat = tf.reshape(out, [tf.shape(out)[0], -1, out.shape[-1]])  # (B, P, C)
            wide = tf.cast(flat, tf.float64)
            result.append((tf.reduce_sum(wide, axis=[0, 1]), tf.reduce_sum(wide * wide, axis=[0, 1]),
                           tf.reduce_max(flat, axis=[0, 1]),
                           tf.reduce_sum(tf.cast(flat > 0, tf.float64), axis=[0, 1]),
                           tf.reduce_any(flat > 0, axis=1),      # (B, C)
                           tf.reduce_mean(wide, axis=1),         # (B, C) per-image means
                           tf.gather(tf.reshape(out, [-1]), pick)))
        return result

    n = len(images)
    batch_size = bounded_batch(model, layers, batch_size)
    shapes = [tuple(graph_of(model).shape(name)[1:]) for name in layers]
    batches = max(1, -(-n // batch_size))
    rng = np.random.default_rng(seed)
    acc = [_Accumulator(np.zeros(s[-1]), np.zeros(s[-1]), np.full(s[-1], -np.inf, np.float32),
                        np.zeros(s[-1]), np.zeros(s[-1]), np.zeros((classes, s[-1])),
                        np.zeros((s[-1], 0), np.int64), np.zeros((s[-1], 0)), [])
           for s in shapes]
    for start in range(0, n, batch_size):
        x = preprocessing.apply(images[start:start + batch_size])
        y = np.asarray(labels[start:start + batch_size], np.int64)
        picks = [rng.integers(0, len(x) * int(np.prod(s)), size=-(-sample_size // batches))
                 for s in shapes]
        for a, parts in zip(acc, reduce(x, picks)):
            total, squares, maximum, active, any_active, per_image, sample = (p.numpy() for p in parts)
            a.total += total
            a.squares += squares
            a.maximum = np.maximum(a.maximum, maximum)
            a.active += active
            a.image_active += any_active.sum(axis=0)
            np.add.at(a.class_sum, y, per_image)
            a.top_index, a.top_score = _merge_top(a.top_index, a.top_score, per_image,
                                                  np.arange(start, start + len(x)), top)
            a.samples.append(sample)
        if progress:
            progress(len(x))
    counts = np.bincount(np.asarray(labels, np.int64), minlength=classes)
    out = {}
    for name, shape, a in zip(layers, shapes, acc):
        values = n * int(np.prod(shape[:-1]))
        mean = a.total / values
        out[name] = LayerStats(
            name=name, shape=shape, images=n, mean=mean,
            std=np.sqrt(np.maximum(a.squares / values - mean ** 2, 0)), max=a.maximum,
            active_fraction=a.active / values, image_active_fraction=a.image_active / n,
            class_mean=a.class_sum / np.maximum(counts, 1)[:, None], class_counts=counts,
            top_index=a.top_index, top_score=a.top_score,
            sample=np.concatenate(a.samples)[:sample_size])
    return out


def strongest_positions(model: keras.Model, layer: str, pixels: np.ndarray,
                        preprocessing: Preprocessing, batch_size: int = 256
                        ) -> tuple[np.ndarray, np.ndarray] | None:
    """Where each map fires hardest on each of its top images, and what input that sees.

    pixels (maps, k, H, W[, C]): map m's top images. Returns (positions (maps, k, 2): the
    (row, column) of the map's largest value on that image; boxes (maps, k, 4): the input
    pixels that position sees, (top, left, bottom, right) exclusive), or None for a layer
    without positions or whose field is the whole image."""
    graph = graph_of(model)
    shape = graph.shape(layer)
    if len(shape) != 4 or graph.field_box(layer, 0, 0) is None:
        return None
    maps, k = pixels.shape[:2]
    flat = pixels.reshape(maps * k, *pixels.shape[2:])
    wanted = np.repeat(np.arange(maps), k)
    probe = compiled(model, ("activations", (layer,)),
                     lambda: tf.function(layer_outputs(model, [layer]), reduce_retracing=True))
    positions = np.zeros((maps * k, 2), np.int64)
    for start in range(0, len(flat), batch_size):
        out = probe(preprocessing.apply(flat[start:start + batch_size]))[0].numpy()
        own = out[np.arange(len(out)), :, :, wanted[start:start + len(out)]]  # (b, h, w)
        best = own.reshape(len(out), -1).argmax(axis=1)
        positions[start:start + len(out)] = np.stack(np.unravel_index(best, own.shape[1:]), 1)
    boxes = np.array([graph.field_box(layer, int(i), int(j)) for i, j in positions], np.int64)
    return positions.reshape(maps, k, 2), boxes.reshape(maps, k, 4)


def _merge_top(index: np.ndarray, score: np.ndarray, batch_scores: np.ndarray,
               batch_index: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep the k best (highest score; ties: lowest dataset index) per map."""
    all_index = np.concatenate([index, np.broadcast_to(batch_index, (len(index), len(batch_index)))], 1)
    all_score = np.concatenate([score, batch_scores.T], axis=1)
    order = np.lexsort((all_index, -all_score), axis=1)[:, :k]
    return (np.take_along_axis(all_index, order, 1), np.take_along_axis(all_score, order, 1))


@dataclass
class WeightStats:
    """Statistics of a layer's kernel, per layer and per output filter (or unit)."""

    name: str
    values: np.ndarray   # all kernel weights, flattened
    per_filter: dict[str, np.ndarray]  # mean, std, min, max, l2, near_zero → (C,)
    layer: dict[str, float]


def weight_stats(model: keras.Model, name: str) -> WeightStats | None:
    """Kernel statistics of a conv or dense layer (None for layers without a kernel)."""
    layer = graph_of(model).layer(name)
    if not hasattr(layer, "kernel"):
        return None
    kernel = np.asarray(keras.ops.convert_to_numpy(layer.kernel), np.float64)
    if isinstance(layer, keras.layers.DepthwiseConv2D):  # one kernel per output map
        kernel = kernel.reshape(*kernel.shape[:2], 1, -1)
    per = kernel.reshape(-1, kernel.shape[-1])  # (fan_in, C)
    limit = NEAR_ZERO * np.abs(kernel).max()

    def summary(w, axis=None):
        return {"mean": w.mean(axis), "std": w.std(axis), "min": w.min(axis), "max": w.max(axis),
                "l2": np.sqrt((w ** 2).sum(axis)), "near_zero": (np.abs(w) < limit).mean(axis)}

    return WeightStats(name, kernel.ravel(), summary(per, 0),
                       {k: float(v) for k, v in summary(kernel).items()})
