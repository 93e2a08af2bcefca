"""Per-map outputs of any layers for chosen images, and class averages over a split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from cnnviz import distributed
from cnnviz.errors import warn_if_not_finite
from cnnviz.graph import graph_of
from cnnviz.probes.compiled import compiled
from cnnviz.inputs import Preprocessing


@dataclass(frozen=True)
class Activations:
    """Layer outputs (float32, N × …) and the network's output for N inputs: class
    probabilities when it ends in a softmax, raw scores (logits) otherwise."""

    layers: dict[str, np.ndarray]
    probabilities: np.ndarray  # (N, classes): the network's output, whatever it is
    softmax: bool = True       # False: the output is scores, never to be called probabilities

    @property
    def output_name(self) -> str:
        """What the output is: `probabilities` or `scores`."""
        return "probabilities" if self.softmax else "scores"

    def top(self, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
        """(classes, outputs) of the k highest-scoring classes per image, best first."""
        order = np.argsort(-self.probabilities, axis=1)[:, :k]
        return order, np.take_along_axis(self.probabilities, order, axis=1)


def layer_outputs(model: keras.Model, layers: list[str],
                  with_predictions: bool = True) -> Callable[..., list]:
    """x → the values of the layers (then the network's output), one pass through the
    model's flat graph (nested layers included; see cnnviz.graph)."""
    graph = graph_of(model)
    wanted = list(layers) + ([graph.output_address] if with_predictions else [])

    def outputs(x, training=False):
        return graph.run(x, wanted)

    return outputs


OUTPUT_BYTES = 256 * 2**20  # layer outputs of one forward batch


def bounded_batch(model: keras.Model, layers: list[str], batch_size: int) -> int:
    """The batch size, lowered where one batch of the layers' outputs (and of the model's
    largest layer) would pass OUTPUT_BYTES: memory bounded whatever the model's size."""
    graph = graph_of(model)
    size = [int(np.prod(graph.shape(n)[1:])) for n in layers]
    largest = max(int(np.prod(s.shape[1:])) for s in graph.steps)
    return max(1, min(batch_size, OUTPUT_BYTES // (4 * (sum(size) + largest))))


def ends_in_softmax(model: keras.Model) -> bool:
    """Whether the network's output is a softmax (probabilities) rather than raw scores."""
    from cnnviz.probes.responses import ends_in_softmax as layer_ends_in_softmax

    graph = graph_of(model)
    return layer_ends_in_softmax(graph.layer(graph.output_address))


def activations(model: keras.Model, layers: list[str], inputs: np.ndarray,
                batch_size: int = 1000) -> Activations:
    """All requested layers for all inputs from one forward pass of one intermediate model."""
    probe = compiled(model, ("activations", tuple(layers)),
                     lambda: tf.function(layer_outputs(model, layers), reduce_retracing=True))
    batch_size = bounded_batch(model, layers, batch_size)
    chunks = [[] for _ in range(len(layers) + 1)]
    for start in range(0, len(inputs), batch_size):
        for store, out in zip(chunks, probe(inputs[start:start + batch_size], training=False)):
            store.append(out.numpy())
    arrays = [np.concatenate(c).astype(np.float32) for c in chunks]
    warn_if_not_finite(arrays[-1], "the output")
    return Activations(dict(zip(layers, arrays[:-1])), arrays[-1], ends_in_softmax(model))


@dataclass(frozen=True)
class ClassMeans:
    """Mean activation per class: for each layer an array (classes, …) of the layer's shape."""

    layers: dict[str, np.ndarray]
    counts: np.ndarray  # images per class

    def per_map(self, layer: str) -> np.ndarray:
        """(classes, maps): the class means averaged over spatial positions."""
        means = self.layers[layer]
        return means.reshape(means.shape[0], -1, means.shape[-1]).mean(axis=1)


def class_means(model: keras.Model, layers: list[str], images: np.ndarray, labels: np.ndarray,
                preprocessing: Preprocessing, batch_size: int = 1000,
                classes: int = 10, strategy=None) -> ClassMeans:
    """Mean of every layer's output over the images of each class, streamed in batches of
    `batch_size` per replica, shared out over `strategy` (default: the active one, see
    cnnviz.distributed).

    Only one batch of preprocessed input and per-class sums are held, so memory does not
    grow with the number of images.
    """
    strategy = distributed.resolve(strategy)
    probe = layer_outputs(model, layers, with_predictions=False)
    batch_size = bounded_batch(model, layers, batch_size)
    labels = np.asarray(labels, np.int32)

    def class_sums(x, y):  # padding rows carry label -1: segment sums drop them
        outputs = probe(x, training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return [tf.math.unsorted_segment_sum(tf.cast(o, tf.float64), y, classes)
                for o in outputs]

    def load(shard):
        part = slice(shard.start, shard.start + shard.count)
        y = np.full(batch_size, -1, np.int32)
        y[:shard.count] = labels[part]
        return distributed.padded(preprocessing.apply(images[part]), batch_size), y

    local = distributed.local_replicas(strategy)
    first = distributed.worker_index(strategy) * local
    sums: list = [None] * local
    for shard, found in distributed.sharded_pass(strategy, len(images), batch_size, load,
                                                 class_sums):
        mine = shard.replica - first
        sums[mine] = found if sums[mine] is None else [a + b for a, b in zip(sums[mine], found)]
    counts = np.bincount(labels.astype(np.int64), minlength=classes)
    divisor = np.maximum(counts, 1).astype(np.float64)
    means = {}
    for i, name in enumerate(layers):
        total = np.sum(distributed.everyone(strategy, [part[i] for part in sums]), axis=0)
        means[name] = (total / divisor.reshape(-1, *[1] * (total.ndim - 1))).astype(np.float32)
    return ClassMeans(means, counts)
