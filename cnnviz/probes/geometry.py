"""How each layer sees a dataset: linear probes, PCA maps and CKA, streamed in batches.

    found = layer_geometry(model, layers, x_train, y_train, x_test, y_test, preprocessing)
    found.probe["conv3"]     # held-out accuracy of a linear classifier on conv3's features
    found.cka                # (L, L) linear CKA between the layers, over the test images
    found.coords["dense1"]   # (N, 2) the test images in dense1's first two principal axes

Features: a layer's output flattened; above MAX_FEATURES values a spatial layer gives each
map's spatial mean (and, beyond MAX_FEATURES maps, a fixed random projection), said in
`features[layer]`. Memory is bounded by the batch and the feature count, never by the
number of images: the probe (a ridge classifier on standardised features) and PCA read
their sums (XᵀX, XᵀY, Σx) batch by batch; CKA sums the unbiased HSIC of each batch of
BATCH images (Nguyen, Raghu & Kornblith, 2021) over the batches.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from cnnviz.graph import graph_of
from cnnviz.probes.feature_pass import feature_batches

MAX_FEATURES = 4096
BATCH = 256       # CKA's minibatch (fixed: its estimate depends on the batch size)
RIDGE = 1e-3      # the probe's penalty, relative to the mean feature variance (standardised: 1)


def features_of(values: np.ndarray) -> np.ndarray:
    """(N, features) float64 from a layer's output (N, …): flattened up to MAX_FEATURES
    values; above, a map stack gives each map's spatial mean, and what is still too wide a
    fixed random projection (see `feature_words`)."""
    values = np.asarray(values, np.float64)
    flat = values.reshape(len(values), -1)
    if flat.shape[1] <= MAX_FEATURES:
        return flat
    if values.ndim == 4:
        flat = values.mean(axis=(1, 2))
        if flat.shape[1] <= MAX_FEATURES:
            return flat
    return flat @ projection(flat.shape[1])


def feature_words(shape: tuple[int, ...]) -> str:
    """What `features_of` makes of a layer whose output per image has this shape."""
    size = int(np.prod(shape))
    if size <= MAX_FEATURES:
        return f"{size:,} values flattened"
    if len(shape) == 3:
        if shape[-1] <= MAX_FEATURES:
            return f"the spatial mean of each of its {shape[-1]:,} maps"
        return f"the spatial means of its {shape[-1]:,} maps, randomly projected to {MAX_FEATURES:,}"
    return f"its {size:,} values, randomly projected to {MAX_FEATURES:,}"


@functools.lru_cache(maxsize=8)
def projection(dim: int):
    """A fixed random projection of `dim` features to MAX_FEATURES (made once per size, the
    same in every batch and run): each feature added with a random sign to one random output
    (a count sketch: inner products kept in expectation, memory O(dim), not dim × 4,096)."""
    from scipy import sparse

    rng = np.random.default_rng(0)
    return sparse.csr_matrix((rng.choice([-1.0, 1.0], dim),
                              (np.arange(dim), rng.integers(0, MAX_FEATURES, dim))),
                             shape=(dim, MAX_FEATURES))


def hsic_unbiased(k: np.ndarray, l: np.ndarray) -> float:
    """The unbiased HSIC estimator of Song et al. (2012) for two n×n Gram matrices (n > 3)."""
    n = len(k)
    k, l = k.copy(), l.copy()
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l, 0.0)
    ones_k, ones_l = k.sum(axis=0), l.sum(axis=0)
    value = (np.sum(k * l) + ones_k.sum() * ones_l.sum() / ((n - 1) * (n - 2))
             - 2.0 / (n - 2) * ones_k @ ones_l)
    return float(value / (n * (n - 3)))


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of two representations of the same n examples (Kornblith et al., 2019):
    ‖YᵀX‖² / (‖XᵀX‖ ‖YᵀY‖) of the centred features (full batch, biased)."""
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    cross = np.linalg.norm(y.T @ x) ** 2
    return float(cross / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


class CKA:
    """Minibatch CKA between every pair of representations: add() a batch of each (the same
    examples, one array per representation), then matrix()."""

    def __init__(self, count: int):
        self.sums = np.zeros((count, count))

    def add(self, batch: list[np.ndarray]) -> None:
        if len(batch[0]) < 4:
            return  # an unbiased HSIC needs n > 3
        grams = [f @ f.T for f in batch]
        for i in range(len(grams)):
            for j in range(i, len(grams)):
                self.sums[i, j] += hsic_unbiased(grams[i], grams[j])
                self.sums[j, i] = self.sums[i, j]

    def matrix(self) -> np.ndarray:
        scale = np.sqrt(np.clip(np.diag(self.sums), 1e-300, None))
        return self.sums / np.outer(scale, scale)


class Moments:
    """Σx, Σxxᵀ, Σx·onehotᵀ and the class counts over batches: PCA's mean and covariance,
    the probe's normal equations."""

    def __init__(self, dim: int, classes: int):
        self.n, self.sum = 0, np.zeros(dim)
        self.outer, self.cross = np.zeros((dim, dim)), np.zeros((dim, classes))
        self.counts = np.zeros(classes)

    def add(self, f: np.ndarray, labels: np.ndarray | None = None) -> None:
        self.n += len(f)
        self.sum += f.sum(axis=0)
        self.outer += f.T @ f
        if labels is not None:
            onehot = np.eye(self.cross.shape[1])[labels]
            self.cross += f.T @ onehot
            self.counts += onehot.sum(axis=0)

    @property
    def mean(self) -> np.ndarray:
        return self.sum / self.n

    @property
    def covariance(self) -> np.ndarray:
        return self.outer / self.n - np.outer(self.mean, self.mean)


@dataclass
class Probe:
    """A ridge classifier on standardised features: class = argmax((f − mean) / scale · W + prior)."""

    weights: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    prior: np.ndarray

    def predict(self, f: np.ndarray) -> np.ndarray:
        return np.argmax((f - self.mean) / self.scale @ self.weights + self.prior, axis=1)


def ridge_probe(train: Moments) -> Probe:
    """The ridge classifier of one-hot targets on standardised features, from the training
    sums alone: (C + λI) W = cov(f, y), C the features' correlation matrix."""
    mean, var = train.mean, np.clip(np.diag(train.covariance), 0, None)
    scale = np.where(var > 0, np.sqrt(var), 1.0)  # a tiny but varying feature counts too
    prior = train.counts / train.n  # each class's share
    cross = (train.cross / train.n - np.outer(mean, prior)) / scale[:, None]
    correlation = train.covariance / np.outer(scale, scale)
    weights = np.linalg.solve(correlation + RIDGE * np.eye(len(mean)), cross)
    return Probe(weights, mean, scale, prior)


@dataclass
class Geometry:
    layers: list[str]
    probe: dict[str, float]                 # held-out accuracy per layer
    chance: float                           # the most frequent test class's share
    cka: np.ndarray                         # (L, L) over the test images
    coords: dict[str, np.ndarray]           # (N, 2) test images in each layer's map
    explained: dict[str, tuple[float, float]]  # the variance share of the first two axes
    labels: np.ndarray                      # (N,) the test images' classes
    features: dict[str, str] = field(default_factory=dict)  # what each layer's features are
    train_images: int = 0
    model_accuracy: float = 0.0             # the network's own accuracy on the same images
    embedding: str = "pca"                  # how coords were made (cnnviz.probes.embedding)
    axes: dict[str, np.ndarray] = field(default_factory=dict)   # (d, 2) the principal axes
    means: dict[str, np.ndarray] = field(default_factory=dict)  # (d,) the features' mean


COMPONENTS = 50  # principal components a non-linear embedding starts from


def layer_geometry(model, layers: list[str], x_train, y_train, x_test, y_test, preprocessing,
                   classes: int, batch: int = BATCH, embedding: str = "pca",
                   strategy=None) -> Geometry:
    """Probes (trained on the training images, scored on the test images), CKA of the test
    images and each test image's place in a 2-D map per layer (PCA's first two axes, or
    t-SNE/UMAP of the first COMPONENTS): three streamed passes, shared over `strategy`."""
    from cnnviz.probes.embedding import embed

    graph = graph_of(model)

    def passes(x, with_scores=False):
        return feature_batches(model, layers, x, preprocessing, features_of, batch,
                               MAX_FEATURES, with_scores, strategy)

    train = None
    for start, stop, found, _ in passes(x_train):
        train = train or [Moments(f.shape[1], classes) for f in found]
        for moments, f in zip(train, found):
            moments.add(f, np.asarray(y_train[start:stop]))
    probes = [ridge_probe(m) for m in train]
    test = [Moments(m.sum.shape[0], classes) for m in train]
    cka, right, scores = CKA(len(layers)), np.zeros(len(layers)), []
    for start, stop, found, out in passes(x_test, with_scores=True):
        cka.add(found)
        for i, (probe, f) in enumerate(zip(probes, found)):
            right[i] += np.sum(probe.predict(f) == np.asarray(y_test[start:stop]))
            test[i].add(f)
        scores.append(out.argmax(axis=1))
    labels = np.asarray(y_test[:len(x_test)])
    wanted = 2 if embedding == "pca" else COMPONENTS
    axes = [principal_axes(m, wanted) for m in test]
    parts: list[list[np.ndarray]] = [[] for _ in layers]
    for _, _, found, _ in passes(x_test):  # a last pass: each image on its layer's axes
        for i, f in enumerate(found):
            parts[i].append((f - axes[i][2]) @ axes[i][0])
    coords = {name: embed(embedding, np.concatenate(parts[i])) for i, name in enumerate(layers)}
    chance = float(np.bincount(labels).max() / len(labels))
    what = {name: feature_words(tuple(graph.shape(name)[1:])) for name in layers}
    return Geometry(layers, {n: float(r / len(labels)) for n, r in zip(layers, right)}, chance,
                    cka.matrix(), coords, {n: a[1] for n, a in zip(layers, axes)}, labels, what,
                    len(x_train), float(np.mean(np.concatenate(scores) == labels)), embedding,
                    {n: a[0][:, :2] for n, a in zip(layers, axes)},
                    {n: a[2] for n, a in zip(layers, axes)})


def place(model, geometry: Geometry, x, preprocessing, strategy=None) -> dict[str, np.ndarray]:
    """Where images land on each layer's first two principal axes of `geometry` (N, 2)."""
    found = [[] for _ in geometry.layers]
    for _, _, features, _ in feature_batches(model, geometry.layers, x, preprocessing,
                                             features_of, BATCH, MAX_FEATURES,
                                             strategy=strategy):
        for store, name, f in zip(found, geometry.layers, features):
            store.append((f - geometry.means[name]) @ geometry.axes[name])
    return {name: np.concatenate(f) for name, f in zip(geometry.layers, found)}


PARTIAL_ABOVE = 512  # features above which only the leading axes are computed (Lanczos)


def principal_axes(moments: Moments, count: int = 2
                   ) -> tuple[np.ndarray, tuple[float, float], np.ndarray]:
    """(the `count` leading eigenvectors of the covariance (d, count), the variance shares
    of the first two, the mean), from the sums alone. Above PARTIAL_ABOVE features only
    those axes are computed (Lanczos, a fixed start: 0.45 s instead of 5 s at 4,096)."""
    covariance = moments.covariance
    dim = len(covariance)
    if dim > PARTIAL_ABOVE and count < dim - 1:
        from scipy.sparse.linalg import eigsh

        values, vectors = eigsh(covariance, k=count, which="LA", v0=np.ones(dim))
        total = float(np.clip(np.diag(covariance), 0, None).sum()) or 1.0  # = Σ eigenvalues
    else:
        values, vectors = np.linalg.eigh(covariance)
        total = float(np.clip(values, 0, None).sum()) or 1.0
    order = np.argsort(values)[::-1][:count]
    axes = vectors[:, order]
    if axes.shape[1] < 2:  # a layer with one feature: its second axis is flat
        axes = np.pad(axes, ((0, 0), (0, 2 - axes.shape[1])))
    shares = tuple(float(max(v, 0) / total) for v in values[order[:2]]) + (0.0,) * 2
    return axes, shares[:2], moments.mean


def cka_between(first: tuple, second: tuple, layers: tuple[list[str], list[str]], x,
                batch: int = BATCH, strategy=None) -> np.ndarray:
    """(len(layers[0]), len(layers[1])) minibatch CKA of every layer of the first model
    against every layer of the second, over images x (each model (model, preprocessing)
    applies its own input convention); one streamed pass of each, batch by batch."""
    cka = CKA(len(layers[0]) + len(layers[1]))
    streams = [feature_batches(model, names, x, prep, features_of, batch, MAX_FEATURES,
                               strategy=strategy)
               for (model, prep), names in zip((first, second), layers)]
    for (_, _, a, _), (_, _, b, _) in zip(*streams):
        cka.add(a + b)
    return cka.matrix()[:len(layers[0]), len(layers[0]):]
