"""Do two networks learn the same maps? Similarity matrices and the best one-to-one matching.

Functional similarity: the Pearson correlation of two maps' outputs over every position of
every image of a split (dense units: over the images). Two maps that respond to the same
feature at the same places correlate near 1. Spatial means per image would not do: they
follow the amount of ink in an image, so even random conv1 filters correlate above 0.9 on
them. The sums are streamed batch by batch, so memory does not grow with the split. A map
that is constant over the split (dead) correlates with nothing: its row is 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from scipy.optimize import linear_sum_assignment

from cnnviz.data import Preprocessing
from cnnviz.probes.activations import layer_outputs_model


@dataclass(frozen=True)
class Matching:
    """The optimal one-to-one matching of A's maps to B's maps for one layer."""

    layer: str
    similarity: np.ndarray  # (maps A, maps B)
    partner: np.ndarray     # (maps A,) index in B matched to each map of A

    @property
    def matched(self) -> np.ndarray:
        """(maps A,) similarity of each map to its partner."""
        return self.similarity[np.arange(len(self.partner)), self.partner]

    def summary(self) -> dict[str, float]:
        matched = self.matched
        return {"mean_similarity": float(matched.mean()),
                "above_0_8": float((matched > 0.8).mean()),
                "above_0_5": float((matched > 0.5).mean()),
                "same_index": float((self.partner == np.arange(len(self.partner))).mean())}


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

    def result(self) -> np.ndarray:
        sa, sb, saa, sbb, sab = (s / self.n for s in self.sums)
        cov = sab - np.outer(sa, sb)
        std_a = np.sqrt(np.maximum(saa - sa * sa, 0))
        std_b = np.sqrt(np.maximum(sbb - sb * sb, 0))
        live_a, live_b = std_a > 1e-12 * (1 + np.abs(sa)), std_b > 1e-12 * (1 + np.abs(sb))
        out = cov / np.outer(np.where(live_a, std_a, 1), np.where(live_b, std_b, 1))
        out[~live_a, :] = 0
        out[:, ~live_b] = 0
        return np.clip(out, -1, 1)


@dataclass(frozen=True)
class Similarities:
    """Per layer: A against B, A against the baseline, and each image's spatial mean per map."""

    pair: dict[str, np.ndarray]       # (maps A, maps B)
    baseline: dict[str, np.ndarray]   # (maps A, maps of the baseline)
    means: tuple[dict[str, np.ndarray], dict[str, np.ndarray]]  # A, B: (images, maps)


def functional_similarity(first: tuple[keras.Model, Preprocessing],
                          second: tuple[keras.Model, Preprocessing],
                          baseline: tuple[keras.Model, Preprocessing], layers: list[str],
                          x: np.ndarray, batch_size: int = 250) -> Similarities:
    """Correlate every map of `first` with every map of `second` and of `baseline` over all
    positions of all images x (raw pixels; each model applies its own preprocessing)."""
    probes = [(layer_outputs_model(model, layers, with_predictions=False), prep)
              for model, prep in (first, second, baseline)]
    pair = {name: StreamingCorrelation() for name in layers}
    base = {name: StreamingCorrelation() for name in layers}
    means: tuple[dict, dict] = ({name: [] for name in layers}, {name: [] for name in layers})
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
    return Similarities({n: c.result() for n, c in pair.items()},
                        {n: c.result() for n, c in base.items()},
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


def match(layer: str, similarity: np.ndarray) -> Matching:
    """The one-to-one matching with the largest total similarity (Hungarian algorithm)."""
    rows, cols = linear_sum_assignment(similarity, maximize=True)
    partner = np.full(similarity.shape[0], -1, dtype=np.int64)
    partner[rows] = cols
    return Matching(layer, similarity, partner)


def untrained_copy(model: keras.Model, seed: int = 12345) -> keras.Model:
    """The same architecture with fresh random initial weights (the baseline)."""
    keras.utils.set_random_seed(seed)
    return keras.models.clone_model(model)


def class_profiles(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(classes, maps) mean feature per class."""
    classes = np.unique(labels)
    return np.stack([features[labels == c].mean(axis=0) for c in classes])
