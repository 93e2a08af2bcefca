"""What a network looks like at one moment of its training, cheap enough to take every epoch:

    recorder = SnapshotRecorder(model, preprocessing, plan, x_probe, x_subset)
    arrays = recorder.record()   # {"weight/0000": …, "probe/conv2": …, "top/conv2": …, …}

- `weight/NNNN`: every weight of the model (model.get_weights() order: a model rebuilt with
  them is the model as it was);
- `probe/LAYER`: every layer's output for the probe images (one test image per class),
  float16;
- `top/LAYER` (maps, TOP): indices (into the training split) of the subset images on which
  each map's strongest value is largest; `dead/LAYER`: maps that never exceed 0 on the
  subset; `mean/LAYER`: the layer's mean output over the subset;
- `pattern/LAYER` (maps, H, W[, C]) 0–255: for the first PATTERN_MAPS maps of each
  convolution, a plain gradient ascent of the map's mean from one fixed start (STEPS steps,
  normalised gradients, kept within what real pixels give; a map silent everywhere climbs
  its pre-activation until it wakes) — the same start every snapshot, so the columns of an
  "over training" figure differ only by the weights.

The functions are compiled once per recorder: the model's variables are read when called.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from cnnviz.graph import graph_of
from cnnviz.inputs import Preprocessing
from cnnviz.layers import has_activation
from cnnviz.probes.responses import linear_part

SUBSET = 512        # training images a snapshot's statistics and top examples are read on
TOP = 4             # top examples per map
PATTERN_MAPS = 4    # maps per convolution whose pattern is climbed
STEPS = 24          # ascent steps
STEP_SIZE = 0.05    # of the input's range, per step (normalised gradient)


@dataclass(frozen=True)
class SnapshotPlan:
    """What every snapshot of a run looks at (fixed for the run, stored once)."""

    layers: tuple[str, ...]        # every layer whose output is kept
    conv_layers: tuple[str, ...]   # the convolutions whose patterns are climbed
    probe_index: np.ndarray        # test images: the first of each class
    subset_index: np.ndarray       # training images of the statistics and top examples

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "SnapshotPlan":
        """The plan a snapshot was recorded under (the inverse of `arrays`)."""
        return cls(tuple(map(str, arrays["plan/layers"])),
                   tuple(map(str, arrays["plan/conv_layers"])), arrays["plan/probe_index"],
                   arrays["plan/subset_index"])

    def arrays(self) -> dict[str, np.ndarray]:
        return {"plan/probe_index": self.probe_index, "plan/subset_index": self.subset_index,
                "plan/layers": np.array(self.layers), "plan/conv_layers": np.array(self.conv_layers)}


def plan_for(layers, conv_layers, y_test: np.ndarray, train_images: int,
             seed: int = 0) -> SnapshotPlan:
    """The first test image of each class; SUBSET training images drawn once (seeded)."""
    classes = np.unique(y_test)
    probe = np.array([int(np.flatnonzero(y_test == c)[0]) for c in classes], np.int64)
    subset = np.sort(np.random.default_rng(seed).permutation(train_images)[:SUBSET])
    return SnapshotPlan(tuple(layers), tuple(conv_layers), probe, subset.astype(np.int64))


class SnapshotRecorder:
    """Records snapshots of one model under one plan (see the module docstring)."""

    def __init__(self, model, preprocessing: Preprocessing, plan: SnapshotPlan,
                 x_probe: np.ndarray, x_subset: np.ndarray):
        self.model, self.plan, self.prep = model, plan, preprocessing
        self.graph = graph_of(model)
        self.probe = tf.constant(preprocessing.apply(np.asarray(x_probe, np.float32)))
        self.subset = tf.constant(preprocessing.apply(np.asarray(x_subset, np.float32)))
        shape = self.probe.shape[1:]
        low = preprocessing.apply(np.zeros((1, *x_probe.shape[1:]), np.float32))[0]
        high = preprocessing.apply(np.full((1, *x_probe.shape[1:]), 255, np.float32))[0]
        self.low, self.high = np.minimum(low, high), np.maximum(low, high)
        self.rows = [(layer, m) for layer in plan.conv_layers
                     for m in range(min(PATTERN_MAPS, self.graph.shape(layer)[-1]))]
        noise = np.random.default_rng(0).normal(0, 0.05, (len(self.rows), *shape))
        self.start = tf.constant(((self.low + self.high) / 2 + noise * (self.high - self.low))
                                 .astype(np.float32))
        self._forward = tf.function(self._outputs)
        self.masks = []  # which rows climb which map of each convolution
        for layer in plan.conv_layers:
            mask = np.zeros((len(self.rows), self.graph.shape(layer)[-1]), np.float32)
            for r, (name, m) in enumerate(self.rows):
                if name == layer:
                    mask[r, m] = 1.0
            self.masks.append(tf.constant(mask))
        self.step_size = STEP_SIZE * float(np.max(self.high - self.low))
        self.low, self.high = tf.constant(self.low), tf.constant(self.high)
        self._stepped = tf.function(self._step)

    def _outputs(self, probe, subset):
        count = tf.shape(probe)[0]
        found = self.graph.run(tf.concat([probe, subset], axis=0), list(self.plan.layers))
        kept, stats = [], []
        for out in found:  # one pass: the probe images first, then the subset
            kept.append(out[:count])
            rest = out[count:]
            flat = tf.reshape(rest, [tf.shape(rest)[0], -1, rest.shape[-1]])  # (N, positions, maps)
            stats.append((tf.reduce_max(flat, axis=1), tf.reduce_mean(rest)))
        return kept, stats

    def _responses(self, x) -> list[tuple]:
        """(pre-activation, output) of every convolution of the plan, from one pass."""
        layers = list(self.plan.conv_layers)
        own = [has_activation(self.graph.layer(n)) for n in layers]
        plain = [n for n, a in zip(layers, own) if not a]
        found = self.graph.run(x, plain, inputs_of=tuple(n for n, a in zip(layers, own) if a))
        outputs, inputs = iter(found[:len(plain)]), iter(found[len(plain):])
        pairs = []
        for name, activated in zip(layers, own):
            if activated:
                layer = self.graph.layer(name)
                pre = linear_part(layer, next(inputs))
                pairs.append((pre, layer.activation(pre)))
            else:
                value = next(outputs)
                pairs.append((value, value))
        return pairs

    def _step(self, x):
        """One step of every row's ascent (a silent ReLU map climbs its pre-activation)."""
        with tf.GradientTape() as tape:
            tape.watch(x)
            terms = []
            for (pre, post), mask in zip(self._responses(x), self.masks):
                silent = tf.cast(tf.reduce_max(post, axis=[1, 2]) <= 0, post.dtype)
                value = (1 - silent) * tf.reduce_mean(post, axis=[1, 2]) \
                    + silent * tf.reduce_mean(pre, axis=[1, 2])
                terms.append(tf.reduce_sum(value * mask))
            total = tf.add_n(terms)
        g = tape.gradient(total, x)
        scale = tf.math.reduce_std(g, axis=list(range(1, len(x.shape))), keepdims=True)
        return tf.clip_by_value(x + self.step_size * g / (scale + 1e-8), self.low, self.high)

    def _climb(self, x):
        for _ in range(STEPS):
            x = self._stepped(x)
        return x

    def record(self) -> dict[str, np.ndarray]:
        """One snapshot's arrays."""
        arrays = {f"weight/{i:04d}": w for i, w in enumerate(self.model.get_weights())}
        kept, stats = self._forward(self.probe, self.subset)
        for name, value, (maxima, mean) in zip(self.plan.layers, kept, stats):
            maxima = maxima.numpy()
            arrays[f"probe/{name}"] = value.numpy().astype(np.float16)
            order = np.argsort(-maxima, axis=0, kind="stable")[:TOP].T  # (maps, TOP)
            arrays[f"top/{name}"] = self.plan.subset_index[order]
            arrays[f"dead/{name}"] = np.array(int(np.sum(maxima.max(axis=0) <= 0)))
            arrays[f"mean/{name}"] = np.array(float(mean))
        if self.rows:
            found = self.prep.invert(self._climb(self.start).numpy())
            for layer in self.plan.conv_layers:
                rows = [r for r, (name, _) in enumerate(self.rows) if name == layer]
                arrays[f"pattern/{layer}"] = np.clip(found[rows], 0, 255).astype(np.uint8)
        return arrays
