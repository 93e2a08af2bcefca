"""Streaming layer statistics over a dataset, weight statistics, and top-k example images.

One pass over the split in batches, shared out over the replicas of a tf.distribute strategy
(cnnviz.distributed); per batch the reductions over positions run in one compiled step on
the replica's device, and each replica keeps only per-map sums, counts, running top-k lists
and a bounded sample of values (for histograms), so memory does not grow with the split.
The replicas' shares are merged at the end in a fixed order: the result does not depend on
the batch size or the number of replicas (to float rounding; top-k exactly).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from cnnviz import distributed
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
    """One replica's share of one layer's sums."""

    total: np.ndarray
    squares: np.ndarray
    maximum: np.ndarray
    active: np.ndarray
    image_active: np.ndarray
    class_sum: np.ndarray
    top_index: np.ndarray
    top_score: np.ndarray
    samples: list
    values_per_image: int

    @classmethod
    def empty(cls, shape: tuple, classes: int) -> "_Accumulator":
        maps = shape[-1]
        return cls(np.zeros(maps), np.zeros(maps), np.full(maps, -np.inf), np.zeros(maps),
                   np.zeros(maps), np.zeros((classes, maps)), np.zeros((maps, 0), np.int64),
                   np.zeros((maps, 0)), [], int(np.prod(shape[:-1])))

    def add(self, parts: tuple, index: np.ndarray, labels: np.ndarray, top: int,
            classes: int) -> None:
        """A batch's per-image parts (only the first len(index) rows are real images)."""
        total, squares, maximum, active, sample = parts
        count = len(index)
        total, squares, maximum, active = (p[:count] for p in (total, squares, maximum, active))
        self.total += total.sum(0)
        self.squares += squares.sum(0)
        self.maximum = np.maximum(self.maximum, maximum.max(0, initial=-np.inf))
        self.active += active.sum(0)
        self.image_active += (active > 0).sum(0)
        per_image = total / self.values_per_image
        self.class_sum += np.eye(classes)[labels].T @ per_image
        self.top_index, self.top_score = _merge_top(self.top_index, self.top_score, per_image,
                                                    index, top)
        if count:
            self.samples.append(sample)


def layer_stats(model: keras.Model, layers: list[str], images: np.ndarray, labels: np.ndarray,
                preprocessing: Preprocessing, top: int = 9, batch_size: int = 500,
                sample_size: int = 100_000, seed: int = 0,
                classes: int = NUM_CLASSES,
                progress: Callable[[int], None] | None = None,
                strategy=None) -> dict[str, LayerStats]:
    """Statistics of every layer in `layers` over the images, streamed in batches of
    `batch_size` per replica and shared out over `strategy` (default: the active one, see
    cnnviz.distributed); progress(n) after each batch of n images."""
    strategy = distributed.resolve(strategy)
    probe = layer_outputs(model, layers, with_predictions=False)
    n = len(images)
    batch_size = bounded_batch(model, layers, batch_size)
    shapes = [tuple(graph_of(model).shape(name)[1:]) for name in layers]
    sizes = [int(np.prod(s)) for s in shapes]
    plan = distributed.shards(strategy, n, batch_size)
    per_pick = -(-sample_size // (len(plan) * distributed.replicas(strategy)))

    def step(x, *picks):
        outputs = probe(x, training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        result = []
        for out, pick in zip(outputs, picks):
            flat = tf.reshape(out, [tf.shape(out)[0], -1, out.shape[-1]])  # (B, P, C)
            wide = tf.cast(flat, tf.float64)
            result.append((tf.reduce_sum(wide, axis=1), tf.reduce_sum(wide * wide, axis=1),
                           tf.cast(tf.reduce_max(flat, axis=1), tf.float64),
                           tf.reduce_sum(tf.cast(flat > 0, tf.float64), axis=1),
                           tf.gather(tf.reshape(out, [-1]), pick)))
        return result

    def load(shard):
        x = preprocessing.apply(images[shard.start:shard.start + shard.count])
        rng = np.random.default_rng([seed, shard.replica, shard.start])
        picks = [rng.integers(0, max(shard.count, 1) * size, size=per_pick) for size in sizes]
        return (distributed.padded(x, batch_size), *picks)

    local = distributed.local_replicas(strategy)
    first = distributed.worker_index(strategy) * local
    acc = [[_Accumulator.empty(s, classes) for s in shapes] for _ in range(local)]
    labels = np.asarray(labels, np.int64)
    for shard, found in distributed.sharded_pass(strategy, n, batch_size, load, step):
        index = np.arange(shard.start, shard.start + shard.count)
        for a, parts in zip(acc[shard.replica - first], found):
            a.add(parts, index, labels[index], top, classes)
        if progress and shard.count:
            progress(shard.count)
    counts = np.bincount(labels, minlength=classes)
    return {name: _layer_result(strategy, name, shape, n, [r[i] for r in acc], counts, top,
                                sample_size)
            for i, (name, shape) in enumerate(zip(layers, shapes))}


def _layer_result(strategy, name: str, shape: tuple, n: int, parts: list[_Accumulator],
                  counts: np.ndarray, top: int, sample_size: int) -> LayerStats:
    """Every replica's share merged (the same numbers in the same order on every worker)."""
    def gathered(field, transform=lambda v: v):
        return [transform(v) for v in distributed.everyone(
            strategy, [transform(getattr(p, field)) for p in parts])]

    total = np.sum(gathered("total"), axis=0)
    squares = np.sum(gathered("squares"), axis=0)
    maximum = np.max(gathered("maximum"), axis=0)
    active = np.sum(gathered("active"), axis=0)
    image_active = np.sum(gathered("image_active"), axis=0)
    class_sum = np.sum(gathered("class_sum"), axis=0)
    top_index = np.zeros((len(total), 0), np.int64)
    top_score = np.zeros((len(total), 0))
    # (maps, k) lists: k may differ between replicas, so they travel as (k, maps)
    for index, score in zip(gathered("top_index", np.transpose), gathered("top_score", np.transpose)):
        top_index, top_score = _merge_top(top_index, top_score, score, index.astype(np.int64),
                                          top, per_map=True)
    samples = [np.concatenate(p.samples) if p.samples else np.zeros(0, np.float32) for p in parts]
    sample = np.concatenate(distributed.everyone(strategy, samples))
    values = n * int(np.prod(shape[:-1]))
    mean = total / values
    return LayerStats(
        name=name, shape=shape, images=n, mean=mean,
        std=np.sqrt(np.maximum(squares / values - mean ** 2, 0)),
        max=maximum.astype(np.float32), active_fraction=active / values,
        image_active_fraction=image_active / n,
        class_mean=class_sum / np.maximum(counts, 1)[:, None], class_counts=counts,
        top_index=top_index, top_score=top_score, sample=sample[:sample_size])


def strongest_positions(model: keras.Model, tops: dict[str, np.ndarray], images: np.ndarray,
                        preprocessing: Preprocessing, batch_size: int = 256
                        ) -> dict[str, tuple[np.ndarray, np.ndarray] | None]:
    """Where each map fires hardest on each of its top images, and what input that sees.

    tops: per layer, (maps, k) rows of `images` (N, H, W[, C]: pixels) — map m's top images.
    One streamed pass of the images through every layer at once (each image once, however
    many maps and layers it tops). Per layer: (positions (maps, k, 2): the (row, column) of
    the map's largest value on that image; boxes (maps, k, 4): the input pixels that position
    sees, (top, left, bottom, right) exclusive), or None for a layer without positions or
    whose field is the whole image."""
    graph = graph_of(model)
    spatial = [name for name in tops if len(graph.shape(name)) == 4
               and graph.field_box(name, 0, 0) is not None]
    found: dict[str, tuple[np.ndarray, np.ndarray] | None] = {name: None for name in tops}
    if not spatial:
        return found
    used = {name: tops[name].shape[0] for name in spatial}  # the maps that have top images
    best = {name: np.zeros((len(images), used[name]), np.int32) for name in spatial}
    probe = compiled(model, ("activations", tuple(spatial)),
                     lambda: tf.function(layer_outputs(model, spatial), reduce_retracing=True))
    size = bounded_batch(model, spatial, batch_size)
    for start in range(0, len(images), size):
        outs = probe(preprocessing.apply(np.asarray(images[start:start + size])))
        for name, out in zip(spatial, outs):
            values = out.numpy()[..., :used[name]]  # (b, h, w, maps)
            best[name][start:start + len(values)] = values.reshape(
                len(values), -1, used[name]).argmax(axis=1)
    for name in spatial:
        flat = best[name][tops[name], np.arange(used[name])[:, None]]  # (maps, k)
        positions = np.stack(np.unravel_index(flat, graph.shape(name)[1:3]), -1).astype(np.int64)
        boxes = {}  # one field box per distinct position
        for i, j in {(int(i), int(j)) for i, j in positions.reshape(-1, 2)}:
            boxes[i, j] = graph.field_box(name, i, j)
        found[name] = (positions, np.array([[boxes[int(i), int(j)] for i, j in row]
                                            for row in positions], np.int64))
    return found


def _merge_top(index: np.ndarray, score: np.ndarray, batch_scores: np.ndarray,
               batch_index: np.ndarray, k: int, per_map: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Keep the k best (highest score; ties: lowest dataset index) per map. batch_scores
    (images, maps) of the images batch_index (images,); per_map: both (maps, images)."""
    if not per_map:
        batch_index = np.broadcast_to(batch_index, (len(index), len(batch_index)))
        batch_scores = batch_scores.T
    all_index = np.concatenate([index, batch_index], 1)
    all_score = np.concatenate([score, batch_scores], axis=1)
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
