"""One piece of the pattern ascent: a batch of items, each climbing its own objective.

The pattern is `theta` (pixels / 255, or a spectrum: see probes/transforms.py). Each step:
the gradient of every item's objective (minus its penalties) in chunks of GRADIENT_CHUNK
items, normalised per item, then an Adam step whose size decays (cosine) from `step_size`
to a tenth of it; pixels are clipped to what 0–255 gives. Every CHECK steps each item's
exact objective (no transform) is measured: the best pattern seen is kept, the curve
recorded, and the piece stops once no item still improves (early stop). `BestPatterns`
keeps each objective's best pattern over the pieces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import tensorflow as tf

from cnnviz.probes.transforms import REGULARISERS, Transforms

GRADIENT_CHUNK = 64  # items per gradient computation inside one step (measured: 64 beats 32 and 128)
# Chunks of the gradient run one after another: run side by side (parallel_iterations > 1)
# they crashed oneDNN (segfault, "could not execute a primitive") on branched models in
# about one run of three. Each chunk still uses every core.
PARALLEL_CHUNKS = 1
CHECK = 10           # steps between exact measurements of every item
CONVERGED = 1e-3     # an item has converged when CHECK steps raised its best by less than this share
PATIENCE = 2         # … twice in a row
SCORE_BATCH = 256    # items per forward pass when measuring
FINAL_RATE = 0.1     # the step decays to this share of step_size


@dataclass
class Climb:
    """What the ascent needs besides the items: the objective, the pattern's form, the extras."""

    objective: Callable            # (input, which) → (goal, value) per item
    to_input: Callable             # pixels / 255 → what the model is fed
    param: object                  # PixelsDirect or FourierPixels
    regularisers: dict[str, float] = field(default_factory=dict)
    transforms: Transforms = field(default_factory=Transforms)
    diversity: float = 0.0         # weight of the similarity penalty within a group
    steps: int = 100
    step_size: float = 0.2
    snapshots: tuple[int, ...] = ()
    seed: int = 0
    early_stop: bool = True
    _compiled: tuple | None = field(default=None, repr=False)

    def compiled(self) -> tuple[Callable, Callable]:
        """The step and the exact measurement, traced once for all pieces."""
        if self._compiled is None:
            self._compiled = _compiled(self)
        return self._compiled


@dataclass
class PieceResult:
    best: np.ndarray        # (B, H, W, C) each item's best pixels / 255
    best_value: np.ndarray  # (B,)
    start_value: np.ndarray  # (B,)
    curve: np.ndarray       # (checks, B) each item's objective at steps 0, CHECK, … , steps
    snapshots: dict[int, np.ndarray]


def curve_steps(steps: int) -> np.ndarray:
    """The steps at which the curve is measured: 0, CHECK, 2·CHECK, …, and the last."""
    return np.unique(np.r_[np.arange(0, steps, CHECK), steps])


def climb_piece(climb: Climb, start: np.ndarray, which: np.ndarray, groups: np.ndarray,
                progress: Callable[[int], None] | None = None) -> PieceResult:
    """Run the ascent for one batch of items from `start` (pixels / 255)."""
    theta = tf.Variable(climb.param.from_pixels(start))
    first, second = tf.Variable(tf.zeros_like(theta)), tf.Variable(tf.zeros_like(theta))
    active = tf.Variable(tf.ones([len(start)], tf.float32))
    which_t, groups_t = tf.constant(which, tf.int32), tf.constant(groups, tf.int32)
    step, measure = climb.compiled()
    checks = curve_steps(climb.steps)
    best_value = np.full(len(start), -np.inf, np.float32)
    best = np.zeros_like(start, dtype=np.float32)
    curve = np.zeros((len(checks), len(start)), np.float32)
    snapshots: dict[int, np.ndarray] = {}
    quiet = np.zeros(len(start), np.int32)
    row, i = 0, 0
    for i in range(climb.steps + 1):
        if i in climb.snapshots:
            snapshots[i] = climb.param.to_pixels(theta).numpy()
        if i == checks[row]:
            pixels = climb.param.to_pixels(theta)
            value = _measure(measure, pixels, which_t)
            if row:
                gain = np.maximum(value, best_value) - best_value
                # a start still at exactly 0 is waking up (its pre-activation rises): never done
                done = (gain <= CONVERGED * np.abs(best_value)) & (best_value != 0)
                quiet = np.where(done, quiet + 1, 0)
            better = value > best_value
            best[better] = pixels.numpy()[better]
            best_value = np.where(better, value, best_value)
            curve[row] = value
            row += 1
            if climb.early_stop and row < len(checks) and (quiet >= PATIENCE).all():
                break
            if climb.early_stop:
                active.assign((quiet < PATIENCE).astype(np.float32))
        if i == climb.steps:
            break
        rate = climb.step_size * climb.param.step_scale * (FINAL_RATE + (1 - FINAL_RATE) * 0.5 * (1 + math.cos(math.pi * i / climb.steps)))
        step(theta, first, second, active, which_t, groups_t, tf.constant(rate, tf.float32),
             tf.constant(i + 1, tf.int32))
        if progress:
            progress(1)
    if progress and i < climb.steps:
        progress(climb.steps - i)  # stopped early: the steps not needed
    curve[row:] = curve[row - 1]  # frozen after the stop
    final = climb.param.to_pixels(theta).numpy()
    for s in climb.snapshots:
        snapshots.setdefault(s, final)
    return PieceResult(best, best_value, curve[0].copy(), curve, snapshots)


def _measure(measure: Callable, pixels: tf.Tensor, which: tf.Tensor) -> np.ndarray:
    return np.concatenate([measure(pixels[k:k + SCORE_BATCH], which[k:k + SCORE_BATCH]).numpy()
                           for k in range(0, int(pixels.shape[0]), SCORE_BATCH)])


def _compiled(climb: Climb):
    """The step and the exact measurement, each compiled once."""
    chunk = GRADIENT_CHUNK
    penalties = [(REGULARISERS[name], weight) for name, weight in climb.regularisers.items() if weight]

    def chunk_gradient(args):
        part, part_which, seed = args
        with tf.GradientTape() as tape:
            tape.watch(part)
            pixels = climb.param.to_pixels(part)
            moved = climb.transforms.apply(pixels, seed) if climb.transforms.active else pixels
            goal, value = climb.objective(climb.to_input(moved), part_which)
            if penalties:
                size = tf.stop_gradient(tf.abs(value))
                goal -= size * tf.add_n([w * penalty(pixels) for penalty, w in penalties])
            total = tf.reduce_sum(goal)
        return tape.gradient(total, part), value

    def diversity_gradient(theta, groups, value):
        """Lower the mean cosine similarity of the (centred) patterns within each group."""
        with tf.GradientTape() as tape:
            tape.watch(theta)
            pixels = climb.param.to_pixels(theta)
            flat = tf.reshape(pixels, [tf.shape(pixels)[0], -1])
            flat = flat - tf.reduce_mean(flat, axis=1, keepdims=True)
            unit = flat / (tf.norm(flat, axis=1, keepdims=True) + 1e-6)
            count = tf.reduce_max(groups) + 2
            ids = tf.where(groups < 0, count - 1, groups)  # padding: a group of its own
            sums = tf.math.unsorted_segment_sum(unit, ids, count)
            sizes = tf.math.unsorted_segment_sum(tf.ones_like(unit[:, 0]), ids, count)
            pairs = (tf.reduce_sum(tf.square(sums), axis=1) - sizes) / tf.maximum(sizes * (sizes - 1), 1.0)
            similarity = tf.gather(pairs, ids) * tf.cast(groups >= 0, tf.float32)
            total = tf.reduce_sum(tf.stop_gradient(tf.abs(value)) * similarity)
        return tape.gradient(total, theta)

    @tf.function
    def step(theta, first, second, active, which, groups, rate, count):
        size = theta.shape[0]
        seed = tf.stack([tf.constant(climb.seed, tf.int32), count])
        if size <= chunk:
            grad, value = chunk_gradient((tf.convert_to_tensor(theta), which, seed))
        else:  # chunks as the iterations of one loop
            pad = -size % chunk
            shape = theta.shape[1:]
            padded = tf.pad(tf.convert_to_tensor(theta), [[0, pad]] + [[0, 0]] * len(shape))
            pieces = (tf.reshape(padded, [-1, chunk, *shape]),
                      tf.reshape(tf.pad(which, [[0, pad]]), [-1, chunk]),
                      tf.stack([tf.fill([(size + pad) // chunk], climb.seed),
                                count * 1000 + tf.range((size + pad) // chunk)], axis=1))
            grad, value = tf.map_fn(chunk_gradient, pieces,
                                    fn_output_signature=(tf.float32, tf.float32),
                                    parallel_iterations=PARALLEL_CHUNKS)
            grad = tf.reshape(grad, [-1, *shape])[:size]
            value = tf.reshape(value, [-1])[:size]
        if climb.diversity:
            grad -= climb.diversity * diversity_gradient(theta, groups, value)
        axes = list(range(1, len(theta.shape)))
        grad /= tf.sqrt(tf.reduce_mean(tf.square(grad), axis=axes, keepdims=True)) + 1e-12
        first.assign(0.9 * first + 0.1 * grad)
        second.assign(0.999 * second + 0.001 * tf.square(grad))
        t = tf.cast(count, tf.float32)
        move = (first / (1 - 0.9 ** t)) / (tf.sqrt(second / (1 - 0.999 ** t)) + 1e-8)
        mask = tf.reshape(active, [-1] + [1] * len(axes))
        theta.assign_add(rate * mask * move)
        if climb.param.clipped:
            theta.assign(tf.clip_by_value(theta, 0.0, 1.0))

    @tf.function
    def measure(pixels, which):
        return climb.objective(climb.to_input(pixels), which)[1]

    return step, measure


class BestPatterns:
    """Each objective's best pattern (overall and per kind of start) over the pieces."""

    def __init__(self, m: int, per: int, group_of: np.ndarray, groups: int,
                 snapshots: tuple[int, ...], shape: tuple[int, ...], checks: int, keep_all: bool):
        self.per, self.group_of = per, group_of
        self.objective = np.full((m, per), -np.inf, np.float32)
        self.start_objective = np.zeros((m, per), np.float32)
        self.inputs = np.zeros((m, *shape), np.float32)
        self.group_inputs = np.zeros((m, groups, *shape), np.float32)
        self.group_best = np.full((m, groups), -np.inf, np.float32)
        self.curve = np.zeros((m, checks), np.float32)
        self.snapshots = {i: np.zeros((m, *shape), np.float32) for i in snapshots}
        self.diverse = np.zeros((m, per, *shape), np.float32) if keep_all else None

    def add(self, items: np.ndarray, piece, n: int, to_input: Callable) -> None:
        """Record a piece's first n items (flat indices objective × start, increasing): a
        pattern is kept where it beats every earlier one; among equals the first wins."""
        which, start = items // self.per, items % self.per
        value = np.where(np.isnan(piece.best_value[:n]), -np.inf, piece.best_value[:n])
        best_so_far = self.objective.max(axis=1)
        self.objective[which, start] = value
        self.start_objective[which, start] = piece.start_value[:n]
        inputs = to_input(piece.best[:n])
        if self.diverse is not None:
            self.diverse[which, start] = inputs
        rows = _first_best(value, which)
        rows = rows[value[rows] > best_so_far[which[rows]]]
        self.inputs[which[rows]] = inputs[rows]
        self.curve[which[rows]] = piece.curve[:, rows].T
        for i, frames in piece.snapshots.items():
            self.snapshots[i][which[rows]] = to_input(frames[rows])
        group = self.group_of[start]
        rows = _first_best(value, which * len(self.group_best[0]) + group)
        rows = rows[value[rows] > self.group_best[which[rows], group[rows]]]
        self.group_best[which[rows], group[rows]] = value[rows]
        self.group_inputs[which[rows], group[rows]] = inputs[rows]


def _first_best(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per group, the row of the highest value (the first among equals)."""
    order = np.lexsort((np.arange(len(values)), -values, groups))
    first = np.r_[True, groups[order][1:] != groups[order][:-1]]
    return order[first]
