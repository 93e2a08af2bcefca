"""Do two networks learn the same maps? Similarity matrices and the best one-to-one matching.

Functional similarity: the Pearson correlation of two maps' outputs over every position of
every image of a split (dense units: over the images). Two maps that respond to the same
feature at the same places correlate near 1. Spatial means per image would not do: they
follow the amount of ink in an image, so even random conv1 filters correlate above 0.9 on
them. The sums are streamed batch by batch, so memory does not grow with the split.

Constant maps (dead: the same value on every position of every image) have no correlation.
Pearson correlation says whether two outputs are equal up to a positive affine map, and two
constants are, so two constant maps have similarity 1; a constant map against a varying one
has 0. A model compared with itself is therefore identical (1) on every layer.

Ties: two maps of A whose partners can be swapped with the same total (within TIE_TOLERANCE,
e.g. two units that fire on exactly the same images) are a genuine tie; rounding on another
CPU may break it the other way, so the matching reports them instead of hiding them.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from scipy.optimize import linear_sum_assignment

from cnnviz import distributed
from cnnviz.graph import graph_of
from cnnviz.inputs import Preprocessing
from cnnviz.probes.activations import bounded_batch, layer_outputs


TIE_TOLERANCE = 1e-5  # a swap of partners that changes the total by less is a tie


@dataclass(frozen=True)
class Matching:
    """The optimal one-to-one matching of A's maps to B's maps for one layer."""

    layer: str
    similarity: np.ndarray  # (maps A, maps B)
    partner: np.ndarray     # (maps A,) index in B matched to each map of A
    constant: tuple[int, int] = (0, 0)  # constant (dead) maps in A and in B

    @property
    def matched(self) -> np.ndarray:
        """(maps A,) similarity of each map to its partner."""
        return self.similarity[np.arange(len(self.partner)), self.partner]

    @property
    def tied(self) -> np.ndarray:
        """(maps A,) True where swapping partners with another map of A scores the same."""
        return tied_maps(self.similarity, self.partner)

    def summary(self) -> dict[str, float]:
        matched = self.matched
        return {"mean_similarity": float(matched.mean()),
                "above_0_8": float((matched > 0.8).mean()),
                "above_0_5": float((matched > 0.5).mean()),
                "same_index": float((self.partner == np.arange(len(self.partner))).mean()),
                "tied": int(self.tied.sum()),
                "constant_a": int(self.constant[0]), "constant_b": int(self.constant[1])}


def tied_maps(similarity: np.ndarray, partner: np.ndarray) -> np.ndarray:
    """(maps A,) True for each matched map i with another matched map j such that giving i
    the partner of j and j the partner of i changes the total by at most TIE_TOLERANCE."""
    rows = np.flatnonzero(partner >= 0)
    if len(rows) < 2:
        return np.zeros(len(partner), bool)
    s = similarity[np.ix_(rows, partner[rows])]  # s[i, j]: row i with the partner of row j
    own = np.diag(s)
    change = s + s.T - own[:, None] - own[None, :]
    np.fill_diagonal(change, -np.inf)
    out = np.zeros(len(partner), bool)
    out[rows] = (np.abs(change) <= TIE_TOLERANCE).any(axis=1)
    return out


class StreamingCorrelation:
    """Pearson correlation of the columns of A (n, P) with those of B (n, Q), fed in chunks."""

    def __init__(self) -> None:
        self.n = 0
        self.sums: list[np.ndarray] = []

    def add(self, a: np.ndarray, b: np.ndarray) -> None:
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        self.add_sums([a.sum(0), b.sum(0), (a * a).sum(0), (b * b).sum(0), a.T @ b], len(a))

    def add_sums(self, parts: list[np.ndarray], rows: int) -> None:
        """Add sums computed elsewhere: Σa, Σb, Σa², Σb², aᵀb over `rows` rows."""
        self.sums = list(parts) if not self.sums else [s + p for s, p in zip(self.sums, parts)]
        self.n += rows

    def constant(self) -> tuple[np.ndarray, np.ndarray]:
        """(columns of A, columns of B): True where the column is constant over all rows."""
        sa, sb, saa, sbb, _ = (s / self.n for s in self.sums)
        return _is_constant(sa, saa), _is_constant(sb, sbb)

    def result(self) -> np.ndarray:
        """(P, Q) correlations; two constant columns: 1; a constant with a varying one: 0."""
        sa, sb, saa, sbb, sab = (s / self.n for s in self.sums)
        cov = sab - np.outer(sa, sb)
        std_a = np.sqrt(np.maximum(saa - sa * sa, 0))
        std_b = np.sqrt(np.maximum(sbb - sb * sb, 0))
        dead_a, dead_b = self.constant()
        out = cov / np.outer(np.where(dead_a, 1, std_a), np.where(dead_b, 1, std_b))
        out[dead_a, :] = 0
        out[:, dead_b] = 0
        out[np.ix_(dead_a, dead_b)] = 1
        return np.clip(out, -1, 1)


def _is_constant(mean: np.ndarray, mean_square: np.ndarray) -> np.ndarray:
    """Columns whose variance is zero up to float64 rounding of their sums."""
    return np.sqrt(np.maximum(mean_square - mean * mean, 0)) <= 1e-7 * (1 + np.abs(mean))


@dataclass(frozen=True)
class Similarities:
    """Per layer: A against B, A against the baseline, and each image's spatial mean per map."""

    pair: dict[str, np.ndarray]       # (maps A, maps B)
    baseline: dict[str, np.ndarray]   # (maps A, maps of the baseline)
    constant: dict[str, tuple[int, int, int]]  # constant maps in A, B and the baseline
    means: tuple[dict[str, np.ndarray], dict[str, np.ndarray]]  # A, B: (images, maps)


def functional_similarity(first: tuple[keras.Model, Preprocessing],
                          second: tuple[keras.Model, Preprocessing],
                          baseline: tuple[keras.Model, Preprocessing], layers: list[str],
                          x: np.ndarray, batch_size: int = 250, strategy=None) -> Similarities:
    """Correlate every map of `first` with every map of `second` and of `baseline` over all
    positions of all images x (raw pixels; each model applies its own preprocessing). The
    images are shared out over `strategy` (default: the active one, see cnnviz.distributed)
    and the sums of every replica added up."""
    strategy = distributed.resolve(strategy)
    models = (first, second, baseline)
    probes = [layer_outputs(model, layers, with_predictions=False) for model, _ in models]
    batch_size = bounded_batch(first[0], layers, batch_size)

    def sums(xa, xb, xu, real):
        outs = []
        for probe, x_in in zip(probes, (xa, xb, xu)):
            values = probe(x_in, training=False)
            outs.append(values if isinstance(values, (list, tuple)) else [values])
        result = []
        for a, b, u in zip(*outs):
            weight = tf.reshape(real, [-1] + [1] * (len(a.shape) - 1))  # padding rows: 0
            a, b, u = (tf.cast(v, tf.float64) * weight for v in (a, b, u))
            a, b, u = (tf.reshape(v, [-1, v.shape[-1]]) for v in (a, b, u))
            result.append((_sums(a, b), _sums(a, u)))
        means = [[tf.reduce_mean(v, axis=[1, 2]) if len(v.shape) == 4 else v for v in out]
                 for out in outs[:2]]
        return result, means

    def load(shard):
        part = x[shard.start:shard.start + shard.count]
        real = np.zeros(batch_size, np.float64)
        real[:shard.count] = 1
        return (*(distributed.padded(prep.apply(part), batch_size) for _, prep in models), real)

    local = distributed.local_replicas(strategy)
    first_replica = distributed.worker_index(strategy) * local
    totals: list = [None] * local
    means = [[[[] for _ in layers] for _ in range(local)] for _ in range(2)]  # model, replica, layer
    rows = {name: int(np.prod(graph_of(first[0]).shape(name)[1:-1])) for name in layers}
    for shard, (found, image_means) in distributed.sharded_pass(strategy, len(x), batch_size,
                                                                load, sums):
        mine = shard.replica - first_replica
        totals[mine] = found if totals[mine] is None else tf.nest.map_structure(
            np.add, totals[mine], found)
        for store, values in zip(means, image_means):
            for rows_of_layer, v in zip(store[mine], values):
                rows_of_layer.append(v[:shard.count])
    pair = {name: StreamingCorrelation() for name in layers}
    base = {name: StreamingCorrelation() for name in layers}
    for i, name in enumerate(layers):
        for k, stream in enumerate((pair[name], base[name])):
            parts = [np.sum(distributed.everyone(strategy, [t[i][k][j] for t in totals]), axis=0)
                     for j in range(5)]
            stream.add_sums(parts, len(x) * rows[name])
    constant = {n: (int(pair[n].constant()[0].sum()), int(pair[n].constant()[1].sum()),
                    int(base[n].constant()[1].sum())) for n in layers}
    in_order = [{name: distributed.in_order(strategy, len(x), batch_size,
                                            [np.concatenate(r[i]) for r in store])
                 for i, name in enumerate(layers)} for store in means]
    return Similarities({n: c.result() for n, c in pair.items()},
                        {n: c.result() for n, c in base.items()}, constant, tuple(in_order))


def _sums(a, b) -> tuple:
    return (tf.reduce_sum(a, 0), tf.reduce_sum(b, 0), tf.reduce_sum(a * a, 0),
            tf.reduce_sum(b * b, 0), tf.matmul(a, b, transpose_a=True))


def correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of every column of a (N, P) with every column of b (N, Q)."""
    stream = StreamingCorrelation()
    stream.add(a, b)
    return stream.result()


def kernel_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of every kernel of a (kh, kw, in, P) with every kernel of b."""
    fa, fb = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    na, nb = np.linalg.norm(fa, axis=0), np.linalg.norm(fb, axis=0)
    return (fa.T @ fb) / np.outer(np.where(na > 0, na, 1), np.where(nb > 0, nb, 1))


def match(layer: str, similarity: np.ndarray, constant: tuple[int, int] = (0, 0)) -> Matching:
    """The one-to-one matching with the largest total similarity (Hungarian algorithm)."""
    rows, cols = linear_sum_assignment(similarity, maximize=True)
    partner = np.full(similarity.shape[0], -1, dtype=np.int64)
    partner[rows] = cols
    return Matching(layer, similarity, partner, constant)


def untrained_copy(model: keras.Model, seed: int = 12345) -> keras.Model:
    """The same architecture with fresh random initial weights (the baseline)."""
    keras.utils.set_random_seed(seed)
    return keras.models.clone_model(model)


def class_profiles(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(classes, maps) mean feature per class."""
    classes = np.unique(labels)
    return np.stack([features[labels == c].mean(axis=0) for c in classes])
