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
from scipy.optimize import linear_sum_assignment

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
        parts = [a.sum(0), b.sum(0), (a * a).sum(0), (b * b).sum(0), a.T @ b]
        self.sums = parts if not self.sums else [s + p for s, p in zip(self.sums, parts)]
        self.n += len(a)

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
                          x: np.ndarray, batch_size: int = 250) -> Similarities:
    """Correlate every map of `first` with every map of `second` and of `baseline` over all
    positions of all images x (raw pixels; each model applies its own preprocessing)."""
    probes = [(layer_outputs(model, layers, with_predictions=False), prep)
              for model, prep in (first, second, baseline)]
    pair = {name: StreamingCorrelation() for name in layers}
    base = {name: StreamingCorrelation() for name in layers}
    means: tuple[dict, dict] = ({name: [] for name in layers}, {name: [] for name in layers})
    batch_size = bounded_batch(first[0], layers, batch_size)
    for start in range(0, len(x), batch_size):
        chunk = x[start:start + batch_size]
        outs = []
        for probe, prep in probes:
            values = probe(prep.apply(chunk), training=False)
            outs.append(values if isinstance(values, (list, tuple)) else [values])
        for i, name in enumerate(layers):
            a, b, u = (np.asarray(out[i], np.float32) for out in outs)
            pair[name].add(a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1]))
            base[name].add(a.reshape(-1, a.shape[-1]), u.reshape(-1, u.shape[-1]))
            for store, value in zip(means, (a, b)):
                store[name].append(value.mean(axis=(1, 2)) if value.ndim == 4 else value)
    constant = {n: (int(pair[n].constant()[0].sum()), int(pair[n].constant()[1].sum()),
                    int(base[n].constant()[1].sum())) for n in layers}
    return Similarities({n: c.result() for n, c in pair.items()},
                        {n: c.result() for n, c in base.items()}, constant,
                        tuple({n: np.concatenate(v) for n, v in m.items()} for m in means))


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
