"""What a pattern maximises: objectives as small objects that add, subtract and scale.

A Term is one map (or unit) of one layer: its mean over positions (`conv3:17`) or its value
at one position (`conv3:17@1,2`); on a layer that ends in a softmax it is the class logit
before the softmax (`output:7`), whose gradient does not vanish when the class saturates.
An Objective is a weighted sum of terms: `conv3:17 - 0.5*conv3:4`. `ObjectiveBatch` turns a
list of objectives into one compiled-friendly function of a batch of inputs.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from cnnviz.errors import UsageError
from cnnviz.graph import graph_of
from cnnviz.layers import check_layers
from cnnviz.probes.responses import ends_in_softmax, response


@dataclass(frozen=True)
class Term:
    """One map of one layer: mean over positions, or the value at `position` (row, column)."""

    layer: str
    map: int
    position: tuple[int, int] | None = None

    def __post_init__(self):
        if not isinstance(self.layer, str) or not self.layer:
            raise UsageError(f"objective: layer must be a layer's name, got {self.layer!r}",
                             "objective")
        object.__setattr__(self, "map", _count(self.map, "map"))
        if self.position is not None:
            if isinstance(self.position, (str, bytes)) or len(tuple(self.position)) != 2:
                raise UsageError(f"objective: position must be (row, column), got "
                                 f"{self.position!r}", "objective")
            object.__setattr__(self, "position", tuple(_count(v, "position") for v in self.position))

    def __str__(self) -> str:
        where = f"@{self.position[0]},{self.position[1]}" if self.position is not None else ""
        return f"{self.layer}:{self.map}{where}"


@dataclass(frozen=True)
class Objective:
    """A weighted sum of terms; objectives add, subtract, negate and scale by numbers."""

    terms: tuple[tuple[float, Term], ...]

    def __post_init__(self):
        for weight, term in self.terms:
            if not isinstance(term, Term) or not _is_number(weight) or not math.isfinite(weight):
                raise UsageError(f"objective: a weight must be a finite number, got {weight!r} "
                                 f"for {term}", "objective")

    def __add__(self, other: Objective) -> Objective:
        merged: dict[Term, float] = {}
        for weight, term in self.terms + other.terms:
            merged[term] = merged.get(term, 0.0) + weight
        return Objective(tuple((w, t) for t, w in merged.items() if w != 0.0))

    def __mul__(self, factor: float) -> Objective:
        if not _is_number(factor) or not math.isfinite(factor):
            raise UsageError(f"objective: scale by a finite number, got {factor!r}", "objective")
        return Objective(tuple((w * float(factor), t) for w, t in self.terms if factor != 0))

    __rmul__ = __mul__

    def __neg__(self) -> Objective:
        return -1.0 * self

    def __sub__(self, other: Objective) -> Objective:
        return self + (-other)

    def __str__(self) -> str:
        text = ""
        for weight, term in self.terms:
            sign = "-" if weight < 0 else "+"
            size = abs(weight)
            part = str(term) if size == 1.0 else f"{size:g}*{term}"
            text += (f" {sign} " if text else ("-" if sign == "-" else "")) + part
        return text or "0"

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.layer for _, t in self.terms))


def channel(layer: str, index: int) -> Objective:
    """A map's mean over positions (a dense unit's value)."""
    return Objective(((1.0, Term(layer, index)),))


def neuron(layer: str, index: int, position: tuple[int, int]) -> Objective:
    """A map's value at one position (row, column)."""
    return Objective(((1.0, Term(layer, index, position)),))


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _count(value, what: str) -> int:
    """A map index or a position coordinate: an integer ≥ 0 (an integral float is taken)."""
    if _is_number(value) and math.isfinite(value) and float(value).is_integer() and value >= 0:
        return int(value)
    raise UsageError(f"objective: {what} must be an integer ≥ 0, got {value!r}", "objective")


def map_objectives(model: keras.Model, layer: str, maps: Sequence[int],
                   where: str = "mean") -> list[Objective]:
    """One objective per map: its mean (`mean`) or its central position (`center`)."""
    shape = graph_of(model).shape(layer)
    if where == "center" and len(shape) == 4:
        centre = (shape[1] // 2, shape[2] // 2)
        return [neuron(layer, m, centre) for m in maps]
    return [channel(layer, m) for m in maps]


_TERM = re.compile(r"\s*([+-])?\s*(?:(\d+(?:\.\d*)?(?:e-?\d+)?|\.\d+)\s*\*\s*)?"
                   r"([^\s:*+]+):(\d+)(?:@(\d+),(\d+))?\s*")


def parse_objectives(text: str, model: keras.Model) -> tuple[Objective, ...]:
    """'conv3:17; conv3:4 - conv3:5' → one checked Objective per ';'-separated expression."""
    parts = [part for part in str(text).split(";") if part.strip()]
    if not parts:
        raise UsageError(f"objective {text!r} has no expression (e.g. conv3:17; separate "
                         "several with ';')", "objective")
    return tuple(parse_objective(part, model) for part in parts)


def parse_objective(text: str, model: keras.Model) -> Objective:
    """'conv3:17 - 0.5*conv3:4', 'conv3:17@1,2', 'output:7' → an Objective, checked against
    the model (layer, map and position ranges). Errors say what is valid."""
    at, weights = 0, {}
    text = text.strip()
    while at < len(text):
        match = _TERM.match(text, at)
        if not match or match.end() == at or (at and not match.group(1)):
            raise UsageError(f"objective {text!r}: use LAYER:MAP, LAYER:MAP@ROW,COL, sums and "
                             f"differences, and NUMBER*TERM, e.g. 'conv3:17 - 0.5*conv3:4'",
                             "objective")
        sign, factor, layer, index, row, col = match.groups()
        size = float(factor) if factor else 1.0
        if not math.isfinite(size) or size == 0.0:
            raise UsageError(f"objective {text!r}: the weight {factor} is "
                             f"{'not finite' if size else 'zero (or rounds to zero)'}; give a "
                             "non-zero finite number", "objective")
        term = Term(layer, int(index), (int(row), int(col)) if row is not None else None)
        weights[term] = weights.get(term, 0.0) + (-size if sign == "-" else size)
        at = match.end()
    found = Objective(tuple((w, t) for t, w in weights.items() if w != 0.0))
    if not found.terms:
        raise UsageError(f"objective {text!r} has no term "
                         f"{'left (its terms cancel)' if weights else '(e.g. conv3:17)'}",
                         "objective")
    check_objective(model, found)
    return found


def check_objective(model: keras.Model, objective: Objective) -> None:
    """Refuse an objective with no term, or a term whose layer, map or position the model
    lacks: the one check for objectives parsed from text and built in Python alike."""
    if not isinstance(objective, Objective):
        raise UsageError(f"objective must be an expression or an Objective (cnnviz.channel, "
                         f"cnnviz.neuron), got {type(objective).__name__}", "objective")
    if not objective.terms:
        raise UsageError("objective has no term (e.g. cnnviz.channel('conv3', 17))", "objective")
    check_layers(model, list(objective.layers), "patterns")
    for _, term in objective.terms:
        check_term(model, term)


def check_term(model: keras.Model, term: Term) -> None:
    """Refuse a term whose map or position the model's (checked) layer does not have."""
    shape = graph_of(model).shape(term.layer)
    if not 0 <= term.map < shape[-1]:
        raise UsageError(f"objective: map {term.map} out of range; {term.layer} has maps "
                         f"0–{shape[-1] - 1}", "objective")
    if term.position is None:
        return
    if len(shape) != 4:
        raise UsageError(f"objective: {term.layer} has no positions (its output is "
                         f"{shape[-1]} units); drop the position", "objective")
    row, col = term.position
    if not (0 <= row < shape[1] and 0 <= col < shape[2]):
        raise UsageError(f"objective: position {row},{col} is outside {term.layer}'s "
                         f"{shape[1]}x{shape[2]} positions", "objective")


class ObjectiveBatch:
    """Objectives evaluated on a batch: item b of a batch pursues objective `which[b]`.

    Per layer, the distinct terms' values come from one forward pass: a (B, T) matrix of
    each term's value (spatial mean or one position) times the (objectives, T) weights.
    `pre_activation` (auto|on|off): in `auto`, a term of positive weight whose value is
    exactly zero (a silent ReLU) climbs its pre-activation's strongest position instead.
    """

    def __init__(self, model: keras.Model, objectives: Sequence[Objective],
                 pre_activation: str = "auto"):
        self.objectives = list(objectives)
        self.mode = pre_activation
        self.parts = []
        for layer in dict.fromkeys(name for o in objectives for name in o.layers):
            terms = list(dict.fromkeys(t for o in objectives for _, t in o.terms if t.layer == layer))
            weights = np.zeros((len(objectives), len(terms)), np.float32)
            for i, o in enumerate(objectives):
                for w, t in o.terms:
                    if t.layer == layer:
                        weights[i, terms.index(t)] += w
            shape = graph_of(model).shape(layer)
            self.parts.append(_LayerPart(response(model, layer), terms, weights, shape,
                                         ends_in_softmax(graph_of(model).layer(layer))))

    def __call__(self, x: tf.Tensor, which: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(goal, value) per item: what the gradient climbs, and the objective itself."""
        goal = value = 0.0
        for part in self.parts:
            weights = tf.gather(part.weights, which)  # (B, T)
            post, wake = part.values(x, self.mode)
            value += tf.reduce_sum(weights * post, axis=1)
            if self.mode == "auto" and wake is not None:
                silent = tf.logical_and(tf.equal(post, 0.0), weights > 0)
                goal += tf.reduce_sum(weights * tf.where(silent, wake, post), axis=1)
            elif self.mode == "on" and wake is not None:
                goal += tf.reduce_sum(weights * wake, axis=1)
            else:
                goal += tf.reduce_sum(weights * post, axis=1)
        return goal, value

    def all_values(self, x: tf.Tensor) -> tf.Tensor:
        """(N, objectives): every objective's value for every input."""
        total = 0.0
        for part in self.parts:
            post, _ = part.values(x, "off")
            total += tf.matmul(post, part.weights, transpose_b=True)
        return total


@dataclass
class _LayerPart:
    """The terms on one layer, as selection matrices: values are matrix products, whose
    gradients are cheap (a gather along the channel axis is not)."""

    respond: Callable
    terms: list[Term]
    weights: np.ndarray  # (objectives, T)
    shape: tuple
    logit: bool  # the layer ends in a softmax: terms are its logits

    def __post_init__(self):
        channels = self.shape[-1]
        self.weights = tf.constant(self.weights)
        wheres = [None] + sorted({t.position for t in self.terms if t.position is not None})
        self.selections = []  # (position or None for the mean, (channels, T) one-hot)
        for where in wheres:
            pick = np.zeros((channels, len(self.terms)), np.float32)
            for k, t in enumerate(self.terms):
                if t.position == where:
                    pick[t.map, k] = 1.0
            if pick.any():
                self.selections.append((where, tf.constant(pick)))

    def values(self, x: tf.Tensor, mode: str) -> tuple[tf.Tensor, tf.Tensor | None]:
        """(B, T) term values after the activation (the logit for a softmax layer), and what a
        silent term climbs instead (None where the layer has no separate pre-activation)."""
        pre, post = self.respond(x)
        if self.logit:
            post = pre
        has_pre = mode != "off" and pre is not post
        post_t = self._select(post, "mean")
        wake = self._select(pre, "max" if mode == "auto" else "mean") if has_pre else None
        return post_t, wake

    def _select(self, values: tf.Tensor, spatial: str) -> tf.Tensor:
        if len(self.shape) == 2:
            return tf.matmul(values, self.selections[0][1])
        total = 0.0
        for where, pick in self.selections:
            if where is None:
                pooled = (tf.reduce_mean if spatial == "mean" else tf.reduce_max)(values, axis=[1, 2])
            else:
                pooled = values[:, where[0], where[1], :]
            total += tf.matmul(pooled, pick)
        return total
