"""Optimal input patterns: gradient ascent on the input until a map (or unit) responds most.

All maps × all length scales × all starts of a layer form ONE batch, optimised by ONE
compiled step function (batch item i maximises map m(i)). The objective is the chosen
layer's output as the network computes it (any layer of cnnviz.graph, nested ones too).
A map whose output is exactly zero for a start (a ReLU that is off everywhere) has zero
gradient; in `auto` mode such an item climbs the pre-activation (before the ReLU: the
layer's linear part, an activation layer's input, or a pool of either) until the map wakes
up. A layer with no such pre-activation (BatchNorm, Add, a linear conv) is never switched,
so a negative output is climbed as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from cnnviz.errors import UsageError
from cnnviz.graph import graph_of
from cnnviz.inputs import Preprocessing
from cnnviz.probes.objectives import response  # noqa: F401 (part of this module's API)

PRE_ACTIVATION = ("auto", "on", "off")
OBJECTIVES = ("mean", "center")


@dataclass(frozen=True)
class PatternSettings:
    """How the ascent runs. The defaults work for the article networks (see README)."""

    steps: int = 100
    step_size: float = 0.1     # per step, RMS change of the input (standardised units)
    scales: tuple[int, ...] = (3, 7, 14, 28)  # for 28 pixels; see default_scales
    starts: int = 2            # random starts per scale
    pre_activation: str = "auto"
    objective: str = "mean"    # mean over positions, or the central position only
    snapshots: tuple[int, ...] = ()
    seed: int = 0
    start_contrast: float = 40.0  # grey levels of the start fluctuations around mid-grey

    def __post_init__(self):
        object.__setattr__(self, "scales", tuple(dict.fromkeys(self.scales)))  # no repeats
        object.__setattr__(self, "snapshots", tuple(sorted(set(self.snapshots))))
        if self.steps < 1:
            raise UsageError(f"steps must be ≥ 1, got {self.steps}", "steps")
        if not 0 < self.step_size < float("inf"):
            raise UsageError(f"step_size must be a finite number > 0, got {self.step_size}",
                             "step_size")
        bad = [s for s in self.scales if not 1 <= s <= MAX_SCALE]
        if bad or not self.scales:
            raise UsageError(f"scales: each length scale must be 1–{MAX_SCALE} pixels (at "
                             f"most the input side), got {bad[0] if bad else 'none'}", "scales")
        if self.starts < 1:
            raise UsageError(f"starts must be ≥ 1, got {self.starts}", "starts")
        if self.pre_activation not in PRE_ACTIVATION:
            raise UsageError(f"pre_activation must be one of {', '.join(PRE_ACTIVATION)}",
                             "pre_activation")
        if self.objective not in OBJECTIVES:
            raise UsageError(f"objective must be one of {', '.join(OBJECTIVES)}", "objective")
        late = [s for s in self.snapshots if not 0 <= s <= self.steps]
        if late:
            raise UsageError(f"snapshots: step {late[0]} is outside 0–{self.steps} (steps)",
                             "snapshots")


    def check_scales(self, image_side: int) -> None:
        """Refuse a length scale larger than the image."""
        bad = [s for s in self.scales if s > image_side]
        if bad:
            raise UsageError(f"scales: each length scale must be at most the input side "
                             f"({image_side} pixels), got {bad[0]}", "scales")


MAX_SCALE = 4096
DEFAULT_SCALES = (3, 7, 14, 28)


def default_scales(image_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The default length scales for an image: 3, 7, 14, 28 pixels on 28, in proportion."""
    side = max(image_shape[:2])
    return tuple(sorted({max(1, round(s * side / 28)) for s in DEFAULT_SCALES}))


@dataclass
class Patterns:
    """Result for one layer: every start's objective, and each map's best pattern (overall,
    per length scale, and at the snapshot steps). Only the best patterns are kept, so memory
    does not grow with the number of starts."""

    layer: str
    maps: np.ndarray            # (M,) map (or unit) indices
    scales: tuple[int, ...]
    objective: np.ndarray       # (M, S, K) post-activation objective of each final pattern
    start_objective: np.ndarray  # (M, S, K) the same for the starting images
    best_inputs: np.ndarray     # (M, H, W, C) each map's best final pattern, as fed
    scale_inputs: np.ndarray    # (M, S, H, W, C) each map's best final pattern per scale
    snapshots: dict[int, np.ndarray] = field(default_factory=dict)  # step → (M, H, W, C),
    #                                                         each map's best start at that step
    seconds: float = 0.0

    @property
    def best(self) -> np.ndarray:
        """(M,) flat index into (S, K) of each map's best start."""
        return self.objective.reshape(len(self.maps), -1).argmax(axis=1)

    @property
    def best_objective(self) -> np.ndarray:
        flat = self.objective.reshape(len(self.maps), -1)
        return flat[np.arange(len(self.maps)), self.best]


GRADIENT_CHUNK = 64  # items per gradient computation inside one step (measured: 64 beats 32 and 128)
# Chunks of the gradient run one after another: run side by side (parallel_iterations > 1)
# they crashed oneDNN (segfault, "could not execute a primitive") on branched models in
# about one run of three. Each chunk still uses every core. benchmarks/bench_patterns.py
# measures both.
PARALLEL_CHUNKS = 1


def starting_images(maps: np.ndarray, settings: PatternSettings, scale_index: np.ndarray,
                    start_index: np.ndarray, image_shape: tuple[int, ...] = (28, 28)) -> np.ndarray:
    """(N, *image_shape) start images in pixel space for N items (map, scale index, start
    index): noise drawn on an s×s grid (one per channel), upsampled.

    Each item's noise depends only on (seed, map, scale, start), so a map gets the same
    starts whether it is optimised alone or with others.
    """
    from skimage.transform import resize

    out = np.empty((len(maps), *image_shape), np.float32)
    channels = image_shape[2:]
    for i, (m, j, k) in enumerate(zip(maps, scale_index, start_index)):
        scale = settings.scales[j]
        rng = np.random.default_rng([settings.seed, int(m), scale, int(k)])
        coarse = rng.normal(size=(scale, scale, *channels))
        fine = resize(coarse, image_shape, order=3, mode="reflect", anti_aliasing=False)
        fine = (fine - fine.mean()) / (fine.std() + 1e-8)
        out[i] = np.clip(127.5 + settings.start_contrast * fine, 0, 255)
    return out


PIECE_BYTES = 192 * 2**20  # arrays of one piece of the ascent (inputs, gradient, snapshots)
OBJECTIVE_BATCH = 256     # items per forward pass when scoring


def piece_size(item_shape: tuple[int, ...], snapshots: int) -> int:
    """Items per piece of the ascent so that a piece's arrays fit PIECE_BYTES: memory is
    bounded whatever the number of maps, scales and starts (a multiple of GRADIENT_CHUNK)."""
    per_item = 4 * int(np.prod(item_shape)) * (4 + snapshots)
    return max(GRADIENT_CHUNK, PIECE_BYTES // per_item // GRADIENT_CHUNK * GRADIENT_CHUNK)


def _piece_items(total: int, settings: PatternSettings, input_shape: tuple[int, ...]) -> int:
    size = min(total, piece_size(input_shape, len(settings.snapshots)))
    if total > size:
        size = -(-total // -(-total // size))  # equal pieces: less padding in the last one
        size = -(-size // GRADIENT_CHUNK) * GRADIENT_CHUNK
    return size


def ascent_steps(maps: int, settings: PatternSettings, input_shape: tuple[int, ...] = (28, 28, 1)) -> int:
    """How many compiled steps `optimal_patterns` runs (what its progress counts up to)."""
    total = maps * len(settings.scales) * settings.starts
    return settings.steps * -(-total // _piece_items(total, settings, input_shape))


def optimal_patterns(model: keras.Model, layer: str, maps: np.ndarray,
                     preprocessing: Preprocessing, settings: PatternSettings,
                     progress: Callable[[int], None] | None = None) -> Patterns:
    """Gradient ascent for every map in `maps` × every scale × every start.

    All items run as one batch, or, when they would not fit the memory budget, as
    consecutive pieces of equal size (the last one padded); each map keeps its best.
    `progress(n)` is called with the number of steps done, summed over the pieces."""
    import time

    begin = time.perf_counter()
    maps = np.asarray(maps, dtype=np.int32)
    m, s, k = len(maps), len(settings.scales), settings.starts
    total = m * s * k
    input_shape = tuple(graph_of(model).input_shape[1:])
    image_shape = input_shape[:2] if input_shape[2] == 1 else input_shape
    settings.check_scales(max(input_shape[:2]))
    respond = response(model, layer)
    step = _compiled_step(respond, settings.objective, settings.pre_activation)
    objective = _compiled_objective(respond, settings.objective)
    lo, hi = (tf.constant(b) for b in preprocessing.bounds(input_shape))
    rate = tf.constant(settings.step_size, tf.float32)
    size = _piece_items(total, settings, input_shape)
    best = _Best(m, s, k, settings.snapshots, input_shape)
    x = None
    for first in range(0, total, size):
        items = np.arange(first, min(first + size, total))
        padded = np.resize(items, size)  # the last piece repeats its items; extra ones dropped
        map_of, scale_of, start_of = padded // (s * k), (padded // k) % s, padded % k
        starts = starting_images(maps[map_of], settings, scale_of, start_of, image_shape)
        targets = tf.constant(maps[map_of])
        if x is None:
            x = tf.Variable(preprocessing.apply(starts))
        else:
            x.assign(preprocessing.apply(starts))
        start_value = _score(objective, x, targets)
        snaps = {}
        for i in range(settings.steps + 1):
            if i in settings.snapshots:
                snaps[i] = x.numpy()
            if i == settings.steps:
                break
            step(x, targets, lo, hi, rate)
            if progress:
                progress(1)
        n = len(items)
        best.add(items, _score(objective, x, targets)[:n], start_value[:n], x.numpy()[:n],
                 {i: v[:n] for i, v in snaps.items()})
    return Patterns(layer, maps, tuple(settings.scales), best.objective, best.start_objective,
                    best.inputs, best.scale_inputs, best.snapshots, time.perf_counter() - begin)


def _score(objective: Callable, x: tf.Variable, targets: tf.Tensor) -> np.ndarray:
    """The objective of every item, in forward passes of OBJECTIVE_BATCH items."""
    values = tf.convert_to_tensor(x)
    return np.concatenate([objective(values[i:i + OBJECTIVE_BATCH], targets[i:i + OBJECTIVE_BATCH]).numpy()
                           for i in range(0, int(values.shape[0]), OBJECTIVE_BATCH)])


class _Best:
    """Each map's best pattern (overall and per scale) over the pieces seen so far."""

    def __init__(self, m: int, s: int, k: int, snapshots: tuple[int, ...],
                 shape: tuple[int, ...]):
        self.s, self.k = s, k
        self.objective = np.full((m, s, k), -np.inf, np.float32)
        self.start_objective = np.zeros((m, s, k), np.float32)
        self.inputs = np.zeros((m, *shape), np.float32)
        self.scale_inputs = np.zeros((m, s, *shape), np.float32)
        self.snapshots = {i: np.zeros((m, *shape), np.float32) for i in snapshots}

    def add(self, items: np.ndarray, final: np.ndarray, start: np.ndarray, x: np.ndarray,
            snaps: dict[int, np.ndarray]) -> None:
        """Record a piece's items (flat indices into M × S × K, increasing): a pattern is
        kept where it beats every earlier one; among equals the first wins, as argmax picks."""
        maps, scales, starts = items // (self.s * self.k), (items // self.k) % self.s, items % self.k
        best_map = np.fmax.reduce(self.objective.reshape(len(self.objective), -1), axis=1)
        best_scale = np.fmax.reduce(self.objective, axis=2)  # (fmax: a NaN never wins)
        self.objective[maps, scales, starts] = final
        self.start_objective[maps, scales, starts] = start
        rows = _first_best(final, maps)
        rows = rows[final[rows] > best_map[maps[rows]]]
        self.inputs[maps[rows]] = x[rows]
        for i, frames in snaps.items():
            self.snapshots[i][maps[rows]] = frames[rows]
        rows = _first_best(final, maps * self.s + scales)
        rows = rows[final[rows] > best_scale[maps[rows], scales[rows]]]
        self.scale_inputs[maps[rows], scales[rows]] = x[rows]


def _first_best(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per group, the row of the highest value (the first among equals; NaN last)."""
    order = np.lexsort((np.arange(len(values)), -values, groups))
    first = np.r_[True, groups[order][1:] != groups[order][:-1]]
    return order[first]


def _select(values: tf.Tensor, targets: tf.Tensor, objective: str) -> tf.Tensor:
    """Per item i: the objective of map targets[i] (mean over positions, the centre, or the
    maximum: the quickest way to wake a silent map, used by the pre-activation fallback)."""
    if values.shape.rank == 2:  # dense units
        return tf.gather(values, targets, axis=1, batch_dims=1)
    chosen = tf.gather(values, targets, axis=3, batch_dims=1)  # (B, h, w)
    if objective == "center":
        h, w = chosen.shape[1], chosen.shape[2]
        return chosen[:, h // 2, w // 2]
    if objective == "max":
        return tf.reduce_max(chosen, axis=[1, 2])
    return tf.reduce_mean(chosen, axis=[1, 2])


def _compiled_objective(respond: Callable, objective: str) -> Callable:
    @tf.function
    def value(x, targets):
        return _select(respond(x)[1], targets, objective)

    return value


def _compiled_step(respond: Callable, objective: str, mode: str, chunk: int | None = None) -> Callable:
    """One ascent step for the whole batch, compiled once.

    The gradient is computed in independent chunks of `chunk` items, the iterations of one
    loop (one traced body, so tracing stays ≈ 0.5 s): each item's gradient depends only on
    itself, so this is exact; the chunks' smaller tensors stay in cache, and the memory of
    the backward pass is that of one chunk. The iterations run one at a time
    (PARALLEL_CHUNKS): side by side they crashed oneDNN on branched models.
    """
    chunk = chunk or GRADIENT_CHUNK

    def goal_of(x, targets):
        pre, post = respond(x)
        post_value = _select(post, targets, objective)
        wake = "max" if objective == "mean" else objective
        if mode == "off":
            return post_value
        if mode == "on":
            return _select(pre, targets, objective)
        # auto: while the map is silent (exactly zero: a ReLU off everywhere), raise its
        # strongest pre-activation; any other value, negative too, is climbed as it is
        return tf.where(tf.not_equal(post_value, 0.0), post_value, _select(pre, targets, wake))

    def chunk_gradient(args):
        part, part_targets = args
        with tf.GradientTape() as tape:
            tape.watch(part)
            total = tf.reduce_sum(goal_of(part, part_targets))
        return tape.gradient(total, part)

    @tf.function
    def step(x, targets, lo, hi, rate):
        size = x.shape[0]
        if size <= chunk:
            grad = chunk_gradient((x, targets))
        else:  # chunks as the iterations of one loop
            pad = -size % chunk
            padded = tf.pad(tf.convert_to_tensor(x), [[0, pad], [0, 0], [0, 0], [0, 0]])
            padded_targets = tf.pad(targets, [[0, pad]])
            grad = tf.map_fn(chunk_gradient,
                             (tf.reshape(padded, [-1, chunk, *x.shape[1:]]),
                              tf.reshape(padded_targets, [-1, chunk])),
                             fn_output_signature=tf.float32,
                             parallel_iterations=PARALLEL_CHUNKS)
            grad = tf.reshape(grad, [-1, *x.shape[1:]])[:size]
        rms = tf.sqrt(tf.reduce_mean(tf.square(grad), axis=[1, 2, 3], keepdims=True)) + 1e-12
        x.assign(tf.clip_by_value(x + rate * grad / rms, lo, hi))

    return step

def parse_maps(text: str | None, count: int) -> np.ndarray:
    """'0-15,31' → [0, …, 15, 31]; None → all `count` maps. Errors name the valid range."""
    if text is None or text.strip().lower() == "all":
        return np.arange(count)
    chosen = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part[1:]:
                first, last = (int(v) for v in part.split("-", 1))
                if last < first:
                    raise ValueError
                chosen.extend(range(first, last + 1))
            else:
                chosen.append(int(part))
        except ValueError:
            raise UsageError(f"maps {text!r}: use indices and ranges like 0-15,31", "maps") from None
    bad = [c for c in chosen if not 0 <= c < count]
    if bad:
        raise UsageError(f"maps: map {bad[0]} out of range; this layer has maps 0–{count - 1}",
                         "maps")
    return np.array(sorted(set(chosen)), dtype=np.int32)
