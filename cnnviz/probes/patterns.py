"""Optimal input patterns: gradient ascent on the input until an objective (a map, a unit,
a class logit, or a sum of them: probes/objectives.py) responds most.

Every objective × every start forms one batch, climbed by one compiled step (probes/ascent.py).
The starts: smooth noise at several length scales, independent noise per pixel, and the
objective's top images of a dataset when one is given (which also gives each pattern a
reference: the best real image). The best pattern of each objective is kept, with every
start's result, the curve of its objective over the steps, and flags of what went wrong.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from cnnviz import distributed
from cnnviz.checks import check_fields, whole
from cnnviz.errors import UsageError
from cnnviz.graph import graph_of
from cnnviz.inputs import Preprocessing
from cnnviz.probes import ascent
from cnnviz.probes.ascent import BestPatterns, Climb, climb_piece, curve_steps
from cnnviz.probes.objectives import Objective, ObjectiveBatch, map_objectives
from cnnviz.probes.pattern_replicas import over_replicas
from cnnviz.probes.responses import response  # noqa: F401 (part of this module's API)
from cnnviz.probes.transforms import (FourierPixels, PixelsDirect, Transforms,
                                      colour_correlation, relative_transforms)

PRE_ACTIVATION = ("auto", "on", "off")
OBJECTIVES = ("mean", "center")
RECIPES = ("auto", "plain", "regularised")
PARAMETERISATIONS = ("pixels", "fourier")
MAX_SCALE = 4096
DEFAULT_SCALES = (3, 7, 14, 28)


@dataclass(frozen=True)
class PatternSettings:
    """How the ascent runs. The defaults were chosen by benchmarks/bench_patterns.py."""

    steps: int = 50
    step_size: float = 0.5     # Adam step at the start, in pixels / 255; decays to a tenth
    scales: tuple[int, ...] = DEFAULT_SCALES  # noise length scales for 28 pixels; see default_scales
    starts: int = 1            # smooth-noise starts per scale
    pixel_starts: int = 6      # starts of independent uniform noise per pixel
    data_starts: int = 4       # starts from the objective's top dataset images (with data)
    pre_activation: str = "auto"
    objective: str = "mean"    # a map's mean over positions, or its central position
    snapshots: tuple[int, ...] = ()
    seed: int = 0
    start_contrast: float = 40.0  # grey levels of the smooth start noise around mid-grey
    recipe: str = "auto"       # plain pixel ascent, or regularised (auto: by channels)
    regularisers: tuple[tuple[str, float], ...] | None = None  # None: the recipe's
    transforms: Transforms | None = None                       # None: the recipe's
    parameterisation: str | None = None                        # None: the recipe's
    diversity: int = 1         # K > 1: K patterns per objective that must differ
    diversity_weight: float = 1.0
    early_stop: bool = True

    def __post_init__(self):
        check_fields(self)
        for name in ("scales", "snapshots"):
            if isinstance(getattr(self, name), (str, bytes)) or not np.iterable(getattr(self, name)):
                raise UsageError(f"{name} must be a list of whole numbers, got "
                                 f"{getattr(self, name)!r}", name)
        object.__setattr__(self, "scales", tuple(dict.fromkeys(  # no repeats
            whole(s, "scales") for s in self.scales)))
        object.__setattr__(self, "snapshots", tuple(sorted({whole(s, "snapshots")
                                                            for s in self.snapshots})))
        if self.steps < 1:
            raise UsageError(f"steps must be ≥ 1, got {self.steps}", "steps")
        if not 0 < self.step_size < float("inf"):
            raise UsageError(f"step_size must be a finite number > 0, got {self.step_size}",
                             "step_size")
        bad = [s for s in self.scales if not 1 <= s <= MAX_SCALE]
        if bad or not self.scales:
            raise UsageError(f"scales: each length scale must be 1–{MAX_SCALE} pixels (at "
                             f"most the input side), got {bad[0] if bad else 'none'}", "scales")
        for name in ("starts", "pixel_starts", "data_starts"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} must be ≥ 0, got {getattr(self, name)}", name)
        if self.starts + self.pixel_starts + self.data_starts < 1:
            raise UsageError(f"starts must be ≥ 1, got {self.starts}", "starts")
        for name, valid in (("pre_activation", PRE_ACTIVATION), ("objective", OBJECTIVES),
                            ("recipe", RECIPES)):
            if getattr(self, name) not in valid:
                raise UsageError(f"{name} must be one of {', '.join(valid)}", name)
        if self.parameterisation not in (None, *PARAMETERISATIONS):
            raise UsageError(f"parameterisation must be one of {', '.join(PARAMETERISATIONS)}",
                             "parameterisation")
        if not 1 <= self.diversity <= 64:
            raise UsageError(f"diversity must be 1–64 patterns, got {self.diversity}", "diversity")
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

    def resolved(self, image_shape: tuple[int, ...]) -> tuple[dict[str, float], Transforms, str]:
        """The regularisers, transforms and parameterisation used on an image of this shape:
        plain pixel ascent for grey images, the regularised recipe for colour (measured:
        see the README), each overridden where given."""
        colour = len(image_shape) == 3 and image_shape[2] > 1
        regularised = self.recipe == "regularised" or (self.recipe == "auto" and colour)
        penalties = dict(self.regularisers) if self.regularisers is not None else {}
        moves = self.transforms if self.transforms is not None else (
            relative_transforms(image_shape) if regularised else Transforms())
        form = self.parameterisation or ("fourier" if regularised else "pixels")
        return penalties, moves, form

    def start_count(self, with_data: bool) -> int:
        """Starts per objective."""
        if self.diversity > 1:
            return self.diversity
        return len(self.scales) * self.starts + self.pixel_starts + (self.data_starts if with_data else 0)


def default_scales(image_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The default length scales for an image: 3, 7, 14, 28 pixels on 28, in proportion."""
    side = max(image_shape[:2])
    return tuple(sorted({max(1, round(s * side / 28)) for s in DEFAULT_SCALES}))


@dataclass
class Patterns:
    """Result for a set of objectives (a layer's maps, or any objectives): each one's best
    pattern, every start's objective, the curve over the steps, and the reference (its best
    dataset image) when data was given. Arrays are indexed by objective (M)."""

    layer: str
    maps: np.ndarray             # (M,) map indices (0…M−1 for general objectives)
    objectives: tuple[str, ...]  # (M,) each objective as text
    starts: tuple[str, ...]      # (P,) what each start was
    groups: tuple[str, ...]      # (G,) kinds of start: "noise 7 px", "pixel noise", …
    start_group: np.ndarray      # (P,) the group of each start
    objective: np.ndarray        # (M, P) best objective reached from each start
    start_objective: np.ndarray  # (M, P) the objective of each start image
    best_inputs: np.ndarray      # (M, H, W, C) each objective's best pattern, as fed
    group_inputs: np.ndarray     # (M, G, H, W, C) the best pattern per kind of start
    curve: np.ndarray            # (M, checks) the best start's objective over the steps
    curve_steps: np.ndarray      # (checks,)
    reference: np.ndarray | None = None        # (M,) the best dataset image's objective
    reference_index: np.ndarray | None = None  # (M,) its index in the data
    saturated: np.ndarray | None = None        # (M,) share of pixels at 0 or 255
    diverse: np.ndarray | None = None          # (M, K, H, W, C) with diversity K > 1
    snapshots: dict[int, np.ndarray] = field(default_factory=dict)  # step → (M, H, W, C)
    seconds: float = 0.0

    @property
    def best(self) -> np.ndarray:
        """(M,) index of each objective's best start."""
        return self.objective.argmax(axis=1)

    @property
    def best_objective(self) -> np.ndarray:
        return self.objective[np.arange(len(self.maps)), self.best]

    @property
    def ratio(self) -> np.ndarray | None:
        """(M,) best objective / best dataset image's (NaN where that is not positive)."""
        if self.reference is None:
            return None
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.reference > 0, self.best_objective / self.reference, np.nan)

    def flags(self) -> dict[str, np.ndarray]:
        """(M,) booleans: never woke (stayed exactly 0), below its best dataset image, and
        mostly saturated (over half the pixels at 0 or 255)."""
        found = {"never woke": self.best_objective == 0,
                 "mostly saturated": (self.saturated if self.saturated is not None
                                      else np.zeros(len(self.maps))) > 0.5}
        if self.reference is not None:
            found["below its best image"] = self.best_objective < self.reference
        return found

    def summary(self, split: str = "dataset") -> str:
        """One line: how many patterns beat their best real image, by how much, the flags."""
        reached = self.best_objective
        line = (f"{self.layer}: {int((reached > 0).sum())}/{len(reached)} maps with a positive "
                f"objective, median {float(np.median(reached)):.3g}")
        if self.reference is not None:
            ratio = self.ratio
            above = int((reached >= self.reference).sum())
            median = np.nanmedian(ratio) if np.isfinite(ratio).any() else float("nan")
            line += f"; {above}/{len(reached)} above their best {split} image, median ×{median:.2g}"
        flagged = [f"{int(v.sum())} {k}" for k, v in self.flags().items()
                   if v.any() and k != "below its best image"]
        return line + (f" ({', '.join(flagged)})" if flagged else "")


def noise_start(settings: PatternSettings, key: Sequence[int], scale: int | None,
                image_shape: tuple[int, ...]) -> np.ndarray:
    """A start image in pixel space: noise on a scale×scale grid (one per channel) upsampled,
    or (scale None) independent uniform noise per pixel. Depends only on (seed, key), so an
    objective gets the same starts whether it is optimised alone or with others."""
    from skimage.transform import resize

    rng = np.random.default_rng([settings.seed, *[int(k) for k in key]])
    if scale is None:
        return rng.uniform(0, 255, size=image_shape).astype(np.float32)
    coarse = rng.normal(size=(scale, scale, *image_shape[2:]))
    fine = resize(coarse, image_shape, order=3, mode="reflect", anti_aliasing=False)
    fine = (fine - fine.mean()) / (fine.std() + 1e-8)
    return np.clip(127.5 + settings.start_contrast * fine, 0, 255).astype(np.float32)


def start_plan(settings: PatternSettings, data_starts: int) -> list[tuple[str, str, int | None]]:
    """(label, group, scale or None) of each start of an objective; data starts are
    ('dataset image k', 'dataset images', -k)."""
    if settings.diversity > 1:
        return [(f"noise {s} px #{k + 1}", f"pattern {k + 1}", s) for k, s in
                enumerate(settings.scales[k % len(settings.scales)] for k in range(settings.diversity))]
    plan = [(f"noise {s} px" + (f" #{k + 1}" if settings.starts > 1 else ""), f"noise {s} px", s)
            for s in settings.scales for k in range(settings.starts)]
    plan += [(f"pixel noise #{k + 1}", "pixel noise", None) for k in range(settings.pixel_starts)]
    plan += [(f"dataset image {k + 1}", "dataset images", -(k + 1)) for k in range(data_starts)]
    return plan


def top_examples(batch: ObjectiveBatch, data, preprocessing: Preprocessing, k: int,
                 size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(values, indices), each (objectives, k): every objective's k best images in `data`
    (pixels 0–255 at the model's size), best first; read `size` images at a time."""
    measure = tf.function(batch.all_values)
    values = np.full((0, len(batch.objectives)), -np.inf, np.float32)
    index = np.zeros((0, len(batch.objectives)), np.int64)
    for first in range(0, len(data), size):
        x = preprocessing.apply(np.asarray(data[first:first + size], np.float32))
        got = measure(tf.constant(x)).numpy()
        values = np.concatenate([values, got])
        index = np.concatenate([index, np.broadcast_to(np.arange(first, first + len(got))[:, None], got.shape)])
        keep = np.argsort(-values, axis=0, kind="stable")[:k]
        values, index = np.take_along_axis(values, keep, 0), np.take_along_axis(index, keep, 0)
    return values.T, index.T


PIECE_BYTES = 192 * 2**20  # arrays of one piece of the ascent (inputs, gradient, moments, snapshots)


def piece_size(item_shape: tuple[int, ...], snapshots: int) -> int:
    """Items per piece so that a piece's arrays fit PIECE_BYTES: memory is bounded whatever
    the number of objectives and starts (a multiple of the gradient chunk)."""
    chunk = ascent.GRADIENT_CHUNK
    per_item = 4 * int(np.prod(item_shape)) * (8 + snapshots)
    return max(chunk, PIECE_BYTES // per_item // chunk * chunk)


def _piece_items(total: int, settings: PatternSettings, input_shape: tuple[int, ...],
                 per_objective: int) -> int:
    size = min(total, piece_size(input_shape, len(settings.snapshots)))
    if total > size:
        size = -(-total // -(-total // size))  # equal pieces: less padding in the last one
        size = -(-size // ascent.GRADIENT_CHUNK) * ascent.GRADIENT_CHUNK
    if settings.diversity > 1:  # a group's patterns stay in one piece
        size = max(per_objective, size // per_objective * per_objective)
    return size


def ascent_steps(maps: int, settings: PatternSettings, input_shape: tuple[int, ...] = (28, 28, 1),
                 with_data: bool = False) -> int:
    """How many steps `optimal_patterns` counts in its progress (at most; an early stop
    reports the steps it skipped at once)."""
    per = settings.start_count(with_data)
    total = maps * per
    return settings.steps * -(-total // _piece_items(total, settings, input_shape, per))


def optimal_patterns(model: keras.Model, layer: str, maps: np.ndarray,
                     preprocessing: Preprocessing, settings: PatternSettings,
                     progress: Callable[[int], None] | None = None, data=None,
                     objectives: Sequence[Objective] | None = None, strategy=None) -> Patterns:
    """Gradient ascent for each map of `layer` in `maps` (or each of `objectives`) from every
    start. `data`: images (N, H, W[, C]) in pixels 0–255 at the model's input size, for the
    data starts and each pattern's reference. `progress(n)` is called as steps finish. The
    objectives are split across the replicas of `strategy` (default: the active one, see
    cnnviz.distributed); each gets the same starts and result as alone."""
    input_shape = tuple(graph_of(model).input_shape[1:])
    settings.check_scales(max(input_shape[:2]))
    maps = np.asarray(maps, dtype=np.int32)
    if objectives is None:
        objectives = map_objectives(model, layer, maps, settings.objective)
    else:
        maps = np.arange(len(objectives), dtype=np.int32)
    objectives = list(objectives)
    return over_replicas(
        distributed.resolve(strategy), tuple(str(o) for o in objectives),
        lambda rows: _climb(model, layer, maps[rows], [objectives[i] for i in rows],
                            preprocessing, settings, progress, data))


def _climb(model: keras.Model, layer: str, maps: np.ndarray, objectives: list[Objective],
           preprocessing: Preprocessing, settings: PatternSettings,
           progress: Callable[[int], None] | None, data) -> Patterns:
    """optimal_patterns on one device."""
    begin = time.perf_counter()
    input_shape = tuple(graph_of(model).input_shape[1:])
    image_shape = input_shape[:2] if input_shape[2] == 1 else input_shape
    batch = ObjectiveBatch(model, objectives, settings.pre_activation)
    with_data = data is not None and len(data) > 0
    reference = reference_index = None
    top_index = None
    if with_data:
        wanted = max(1, settings.data_starts if settings.diversity == 1 else 1)
        top_value, top_index = top_examples(batch, data, preprocessing, min(wanted, len(data)))
        reference, reference_index = top_value[:, 0], top_index[:, 0]
    plan = start_plan(settings, top_index.shape[1] if with_data and settings.diversity == 1
                      and settings.data_starts else 0)
    groups = tuple(dict.fromkeys(g for _, g, _ in plan))
    low = preprocessing.apply(np.zeros((1, *image_shape), np.float32))[0]
    span = preprocessing.apply(np.full((1, *image_shape), 255.0, np.float32))[0] - low

    def start_pixels(o: int, p: int) -> np.ndarray:
        _, _, scale = plan[p]
        if scale is not None and scale < 0:
            return np.asarray(data[int(top_index[o, -scale - 1])], np.float32).reshape(image_shape)
        return noise_start(settings, (maps[o], p if settings.diversity > 1 else scale or 0,
                                      p), scale, image_shape)

    penalties, moves, form = settings.resolved(input_shape)
    colour = colour_correlation(np.asarray(data[:1000], np.float32)) if with_data and form == "fourier" else None
    param = FourierPixels(input_shape, colour) if form == "fourier" else PixelsDirect()
    low_t, span_t = tf.constant(low), tf.constant(span)
    climb = Climb(batch, lambda u: low_t + u * span_t, param, penalties, moves,
                  settings.diversity_weight if settings.diversity > 1 else 0.0, settings.steps,
                  settings.step_size, settings.snapshots, settings.seed, settings.early_stop)
    m, per = len(objectives), len(plan)
    best = BestPatterns(m, per, np.array([groups.index(g) for _, g, _ in plan]), len(groups),
                 settings.snapshots, input_shape, len(curve_steps(settings.steps)),
                 settings.diversity > 1)
    total = m * per
    size = _piece_items(total, settings, input_shape, per)
    for first in range(0, total, size):
        items = np.arange(first, min(first + size, total))
        padded = np.resize(items, size)  # the last piece repeats its items; extra ones dropped
        which, start = padded // per, padded % per
        pixels = np.stack([start_pixels(o, p) for o, p in zip(which, start)])
        u = (preprocessing.apply(pixels) - low) / span
        group = np.where(np.arange(size) < len(items), which, -1)
        piece = climb_piece(climb, u.astype(np.float32), which, group, progress)
        n = len(items)
        best.add(items, piece, n, lambda v: low + v * span)
    inputs = best.inputs
    pixels = np.clip(preprocessing.invert(inputs), 0, 255)
    saturated = ((pixels <= 0.5) | (pixels >= 254.5)).reshape(m, -1).mean(axis=1)
    return Patterns(layer, maps, tuple(str(o) for o in objectives), tuple(p[0] for p in plan),
                    groups, best.group_of, best.objective, best.start_objective, inputs,
                    best.group_inputs, best.curve, curve_steps(settings.steps), reference,
                    reference_index, saturated, best.diverse, best.snapshots,
                    time.perf_counter() - begin)


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
            else:
                first = last = int(part)
        except ValueError:
            raise UsageError(f"maps {text!r}: use indices and ranges like 0-15,31", "maps") from None
        if not (0 <= first and last < count):  # before the range is made: its size is bounded
            bad = first if not 0 <= first < count else count
            raise UsageError(f"maps: map {bad} out of range; this layer has maps 0–{count - 1}",
                             "maps")
        chosen.extend(range(first, last + 1))
    return np.array(sorted(set(chosen)), dtype=np.int32)
