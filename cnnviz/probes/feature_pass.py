"""One streamed pass of a model over images, as the geometry probes read it: every layer's
features (cnnviz.probes.geometry.features_of) in dataset order, cut into fixed batches.

    for start, stop, features, scores in feature_batches(model, layers, x, preprocessing):
        ...   # features: one (stop − start, d) float64 array per layer

The forward passes run in batches the memory bound allows (`bounded_batch`), shared out over
the replicas of a tf.distribute strategy (the active one by default); the features are then
regrouped on the host into the same batches whatever the strategy, so every estimate made
batch by batch (the minibatch CKA) is the same on one device and on many.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import tensorflow as tf

from cnnviz import distributed
from cnnviz.graph import graph_of
from cnnviz.inputs import Preprocessing
from cnnviz.probes.activations import bounded_batch
from cnnviz.probes.compiled import compiled


def batch_bounds(n: int, batch: int) -> list[tuple[int, int]]:
    """[start, stop) of each batch of `batch` images; the remainder joins the last one (no
    batch is smaller than `batch` unless all of them are)."""
    bounds, start = [], 0
    while start < n:
        stop = n if n - start < 2 * batch else start + batch
        bounds.append((start, stop))
        start = stop
    return bounds


def in_graph_reduction(model, layers: list[str], max_features: int) -> list[bool]:
    """Per layer: whether its output is a map stack too big to flatten (its features are then
    each map's spatial mean, taken in the graph so only those travel to the host)."""
    graph = graph_of(model)
    shapes = [tuple(graph.shape(name)[1:]) for name in layers]
    return [len(s) == 3 and int(np.prod(s)) > max_features for s in shapes]


def feature_batches(model, layers: list[str], x, preprocessing: Preprocessing,
                    features: Callable[[np.ndarray], np.ndarray], batch: int,
                    max_features: int, with_scores: bool = False,
                    strategy=None) -> Iterator[tuple[int, int, list[np.ndarray], np.ndarray | None]]:
    """(start, stop, one feature array per layer, the network's output rows or None) for each
    of `batch_bounds(len(x), batch)`. features(values) makes a layer's features from its
    (possibly already spatially averaged) output."""
    strategy = distributed.resolve(strategy)
    graph = graph_of(model)
    wanted = list(layers) + ([graph.output_address] if with_scores else [])
    reduce = in_graph_reduction(model, layers, max_features) + [False] * with_scores
    forward = bounded_batch(model, list(layers), batch)

    def step(images):
        values = graph.run(images, wanted)
        return [tf.reduce_mean(v, axis=(1, 2)) if r else v for v, r in zip(values, reduce)]

    run = compiled(model, ("features", tuple(wanted), max_features, id(strategy)),
                   lambda: distributed.replicated(strategy, step))

    def load(shard):
        part = np.asarray(x[shard.start:shard.start + shard.count], np.float32)
        return (distributed.padded(preprocessing.apply(part), forward),)

    pending: list[list[np.ndarray]] = [[] for _ in wanted]
    held = done = 0
    bounds = batch_bounds(len(x), batch)
    for rows in _steps(strategy, len(x), forward, load, run):
        for store, part in zip(pending, rows):
            store.append(part)
        held += len(rows[0])
        while bounds and done + held >= bounds[0][1]:
            start, stop = bounds.pop(0)
            joined = [np.concatenate(s) for s in pending]
            size = stop - start
            made = [features(v[:size]) for v in joined[:len(layers)]]
            yield start, stop, made, joined[-1][:size] if with_scores else None
            pending = [[v[size:]] for v in joined]
            held -= size
            done = stop


def _steps(strategy, n: int, forward: int, load, run) -> Iterator[list[np.ndarray]]:
    """Each step's real rows, one array per output, in dataset order (gathered from every
    worker when there are several)."""
    parts = []
    for shard, found in distributed.sharded_pass(strategy, n, forward, load, run=run):
        parts.append([np.asarray(v)[:shard.count] for v in found])
        if len(parts) == distributed.local_replicas(strategy):  # the step's last local replica
            yield _joined(strategy, parts)
            parts = []


def _joined(strategy, parts: list[list[np.ndarray]]) -> list[np.ndarray]:
    """This step's replicas' rows (in replica order, which is dataset order) per output."""
    return [np.concatenate(distributed.everyone(strategy, [p[i] for p in parts]))
            for i in range(len(parts[0]))]
