"""Layer geometry (issue 30): CKA, linear probes and PCA maps against computations written
here (the Gram-matrix form of HSIC, NumPy's SVD, data built to be separable or not)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import assert_one_line_error

import cnnviz
from cnnviz.probes.geometry import CKA, Moments, linear_cka, principal_axes, ridge_probe


def cka_by_gram(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al.'s definition: HSIC(K, L) / √(HSIC(K, K) HSIC(L, L)) with linear
    kernels and the biased HSIC tr(KHLH)."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n

    def hsic(k, l):
        return np.trace(k @ h @ l @ h)

    k, l = x @ x.T, y @ y.T
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def test_linear_cka_equals_the_gram_matrix_definition_and_its_invariances():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 7)), rng.normal(size=(60, 5))
    assert linear_cka(x, y) == pytest.approx(cka_by_gram(x, y), abs=1e-12)
    q, _ = np.linalg.qr(rng.normal(size=(7, 7)))
    assert linear_cka(x, 3.5 * x @ q) == pytest.approx(1.0, abs=1e-12)  # rotation and scale
    skew = rng.normal(size=(7, 7)) + 3 * np.eye(7)  # invertible, but no rotation
    assert linear_cka(x, x @ skew) < 0.99


def test_the_minibatch_estimate_is_close_to_the_full_batch_value():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 10))
    y = x @ rng.normal(size=(10, 6)) + 2.0 * rng.normal(size=(2000, 6))
    streamed = CKA(2)
    for start in range(0, 2000, 256):
        streamed.add([x[start:start + 256], y[start:start + 256]])
    value = streamed.matrix()
    assert np.allclose(np.diag(value), 1.0)
    assert abs(value[0, 1] - cka_by_gram(x, y)) < 0.02


def test_the_probe_reads_separable_classes_and_not_shuffled_ones():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, 1600)
    centres = rng.normal(size=(4, 12)) * 4
    features = centres[labels] + rng.normal(size=(1600, 12))
    fit = Moments(12, 4)
    fit.add(features[:1200], labels[:1200])
    assert np.mean(ridge_probe(fit).predict(features[1200:]) == labels[1200:]) == 1.0
    shuffled = rng.permutation(labels)
    fit = Moments(12, 4)
    fit.add(features[:1200], shuffled[:1200])
    accuracy = np.mean(ridge_probe(fit).predict(features[1200:]) == shuffled[1200:])
    chance = np.bincount(shuffled[1200:]).max() / 400
    assert abs(accuracy - 0.25) <= 3 * np.sqrt(0.25 * 0.75 / 400) + (chance - 0.25)


def test_pca_coordinates_are_numpys_svd_of_the_centred_features():
    rng = np.random.default_rng(3)
    f = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6))
    moments = Moments(6, 1)
    for start in range(0, 300, 64):
        moments.add(f[start:start + 64])
    axes, shares, mean = principal_axes(moments)
    ours = (f - mean) @ axes
    centred = f - f.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    theirs = u[:, :2] * s[:2]
    np.testing.assert_allclose(np.abs(ours), np.abs(theirs), atol=1e-8)
    np.testing.assert_allclose(shares, (s[:2] ** 2 / np.sum(s ** 2)), atol=1e-10)


def test_wide_layers_get_the_same_leading_axes_from_the_partial_solver():
    """Above 512 features only the leading axes are computed (Lanczos): against NumPy's SVD
    of the centred features."""
    rng = np.random.default_rng(5)
    f = rng.normal(size=(400, 20)) @ rng.normal(size=(20, 700)) * np.linspace(3, 1, 700)
    moments = Moments(700, 1)
    moments.add(f)
    axes, shares, mean = principal_axes(moments, count=5)
    u, s, _ = np.linalg.svd(f - f.mean(axis=0), full_matrices=False)
    np.testing.assert_allclose(np.abs((f - mean) @ axes[:, :2]), np.abs(u[:, :2] * s[:2]),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(shares, s[:2] ** 2 / np.sum(s ** 2), rtol=1e-6)
    assert axes.shape == (700, 5)


def test_the_last_hidden_layer_reads_the_class_like_the_network(trained, small_npz):
    """The network's output is a linear read-out of dense1: a linear probe fitted to dense1
    does at least as well (within 0.03). On this one-epoch bundle it does better, as the
    network's read-out is still learning; on article2 trained for 5 epochs on the sample
    they were equal (0.956 and 0.956)."""
    m = cnnviz.load("a2", trained_dir=trained, data=small_npz)
    g = m.geometry(layers="conv1,dense1,output", limit=600)
    assert g.probe["dense1"] >= g.model_accuracy - 0.03
    assert np.allclose(np.diag(g.cka), 1.0) and g.cka.shape == (3, 3)
    assert g.coords["dense1"].shape == (len(g.labels), 2) and 0 < len(g.labels) <= 600
    assert g.chance < g.probe["conv1"] <= 1.0


def test_geometry_command_end_to_end(trained, small_npz, tmp_path, run_cli):
    done = run_cli("geometry", "a2", "--layer", "conv3,dense1", "--limit", "300", "--thumbnails",
                   "--trained-dir", trained, "--data", small_npz, "--outputs-dir", tmp_path)
    assert done.code == 0, done.output
    folder = tmp_path / "a2" / "geometry"
    numbers = json.loads((folder / "geometry.json").read_text())
    assert numbers["layers"] == ["conv3", "dense1"] and numbers["images"] == 300
    assert "dense1       probe" in done.out
    listed = {e["path"] for e in json.loads((tmp_path / "a2" / "manifest.json").read_text())[
        "entries"]}
    assert {"geometry/probe.png", "geometry/embeddings.png", "geometry/cka.png",
            "geometry/geometry.npz", "geometry/thumbnails.png"} <= listed
    assert all((tmp_path / "a2" / path).is_file() for path in listed)
    with np.load(folder / "geometry.npz") as z:
        assert z["coords_dense1"].shape == (300, 2)
        assert z["axes_dense1"].shape == (70, 2) and z["mean_dense1"].shape == (70,)


@pytest.mark.parametrize("args,fragment", [
    (("--layer", "nosuch"), "unknown layer nosuch"),
    (("--limit", "0"), "--limit must be ≥ 10"),
    (("--embedding", "mds"), "--embedding must be one of pca, tsne, umap, got 'mds'"),
])
def test_geometry_refuses_bad_requests(trained, small_npz, tmp_path, run_cli, args, fragment):
    done = run_cli("geometry", "a2", *args, "--trained-dir", trained, "--data", small_npz,
                   "--outputs-dir", tmp_path)
    assert_one_line_error(done, 2, fragment)


def test_a_missing_optional_extra_is_named_in_one_line(trained, small_npz, tmp_path, run_cli,
                                                       monkeypatch):
    from cnnviz.probes import embedding

    monkeypatch.setattr(embedding, "has_module", lambda name: False)
    for name, package in (("umap", "umap-learn"), ("tsne", "scikit-learn")):
        done = run_cli("geometry", "a2", "--embedding", name, "--trained-dir", trained,
                       "--data", small_npz, "--outputs-dir", tmp_path)
        assert_one_line_error(done, 2, f"--embedding {name} needs {package}",
                              r"pip install 'cnnviz\[embeddings\]'")
    assert not (tmp_path / "a2" / "geometry").exists()


def layer_outputs_in_test(m, layer, pixels):
    """The layer's output from a Keras sub-model built here, fed the bundle's input."""
    import keras

    model = m.model
    sub = keras.Model(model.inputs, model.get_layer(layer).output)
    fed = m.loaded.preprocessing.apply(np.asarray(pixels, np.float32))
    return np.asarray(sub([fed])).reshape(len(pixels), -1)


def test_new_images_land_where_the_layers_principal_axes_put_them(trained, small_npz):
    """place() against a PCA computed here: dense1's outputs from a sub-model, centred,
    projected on the two leading eigenvectors of their covariance (up to sign)."""
    m = cnnviz.load("a2", trained_dir=trained, data=small_npz)
    g = m.geometry(layers="dense1,conv3", limit=300)
    x = m.data().split("test")[0][:300]
    f = layer_outputs_in_test(m, "dense1", x).astype(np.float64)
    values, vectors = np.linalg.eigh(np.cov(f.T, bias=True))
    theirs = (f - f.mean(axis=0)) @ vectors[:, np.argsort(values)[::-1][:2]]
    np.testing.assert_allclose(np.abs(g.coords["dense1"]), np.abs(theirs), rtol=1e-3, atol=1e-3)
    placed = g.place(x[:5])  # raw pixels
    np.testing.assert_allclose(placed["dense1"], g.coords["dense1"][:5], atol=1e-5)
    assert placed["conv3"].shape == (5, 2)
    np.testing.assert_allclose(g.place([0, 1])["dense1"], g.coords["dense1"][:2], atol=1e-5)


def test_a_mirrored_strategy_gives_what_one_device_gives(trained, small_npz):
    """Two replicas (conftest's two logical CPUs): the forward passes are shared out, the
    numbers are the same (CKA's batches are regrouped on the host)."""
    from cnnviz import distributed

    m = cnnviz.load("a2", trained_dir=trained, data=small_npz)
    one = m.geometry(layers="conv1,pool2,dense1", limit=600, strategy="default")
    two = m.geometry(layers="conv1,pool2,dense1", limit=600,
                     strategy=distributed.make_strategy("mirrored"))
    for name in one.layers:  # an image within rounding of a tie may go either way: one image
        assert abs(one.probe[name] - two.probe[name]) <= 1 / len(one.labels) + 1e-12
    np.testing.assert_allclose(one.cka, two.cka, atol=1e-5)
    for name in one.layers:
        np.testing.assert_allclose(np.abs(one.coords[name]), np.abs(two.coords[name]),
                                   rtol=1e-4, atol=1e-4)


def test_tsne_keeps_each_images_neighbours(trained, small_npz):
    """t-SNE's map of dense1: a point's nearest neighbours in the map are mostly its
    neighbours among the layer's features (scikit-learn's trustworthiness, computed on
    the sub-model's outputs here), and it is not PCA's map."""
    from sklearn.manifold import trustworthiness

    m = cnnviz.load("a2", trained_dir=trained, data=small_npz)
    g = m.geometry(layers="dense1", limit=200, embedding="tsne")
    f = layer_outputs_in_test(m, "dense1", m.data().split("test")[0][:200])
    assert g.embedding == "tsne" and g.coords["dense1"].shape == (200, 2)
    assert trustworthiness(f, g.coords["dense1"], n_neighbors=5) > 0.9
    pca = m.geometry(layers="dense1", limit=200).coords["dense1"]
    assert not np.allclose(np.abs(pca), np.abs(g.coords["dense1"]), atol=1e-2)


@pytest.mark.skipif(not __import__("cnnviz.runtime").runtime.has_module("umap"),
                    reason="umap-learn (the embeddings extra) is not installed")
def test_umap_keeps_each_images_neighbours(trained, small_npz):
    from sklearn.manifold import trustworthiness

    m = cnnviz.load("a2", trained_dir=trained, data=small_npz)
    g = m.geometry(layers="dense1", limit=200, embedding="umap")
    f = layer_outputs_in_test(m, "dense1", m.data().split("test")[0][:200])
    assert trustworthiness(f, g.coords["dense1"], n_neighbors=5) > 0.85


def test_thumbnails_are_spread_so_none_covers_another():
    from cnnviz.render.geometry import spread

    points = np.random.default_rng(4).normal(size=(2000, 2)) * [5.0, 0.1]
    kept = spread(points, 90, gap=0.07)
    assert 10 < len(kept) <= 90 and len(set(kept.tolist())) == len(kept)
    unit = (points - points.min(axis=0)) / np.ptp(points, axis=0)
    gaps = np.abs(unit[kept][:, None] - unit[kept][None]).max(axis=2)
    assert gaps[~np.eye(len(kept), dtype=bool)].min() >= 0.07
