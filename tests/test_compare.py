"""`cnnviz compare` and `cnnviz train --runs`: matching maps of two networks."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from conftest import assert_one_line_error, train_with_cli

LAYERS = ["conv1", "conv2", "conv3", "dense1"]


@pytest.fixture(scope="module")
def data(small_npz):
    from cnnviz.data import load_dataset

    return load_dataset("mnist", small_npz)


def permuted_copy(model: keras.Model, seed: int = 3):
    """The same function with the maps of conv2 and conv3 and the units of dense1 reordered,
    each permutation undone in the next layer; returns the model and the permutations."""
    rng = np.random.default_rng(seed)
    w = {layer.name: [v.copy() for v in layer.get_weights()] for layer in model.layers}
    p2, p3, pd = rng.permutation(64), rng.permutation(64), rng.permutation(70)
    w["conv2"] = [w["conv2"][0][..., p2], w["conv2"][1][p2]]
    w["conv3"] = [w["conv3"][0][:, :, p2, :][..., p3], w["conv3"][1][p3]]
    rows = np.arange(3 * 3 * 64).reshape(3, 3, 64)[:, :, p3].ravel()  # flatten is channels-last
    w["dense1"] = [w["dense1"][0][rows][:, pd], w["dense1"][1][pd]]
    w["output"] = [w["output"][0][pd], w["output"][1]]
    copy = keras.models.clone_model(model)
    for layer in copy.layers:
        if w.get(layer.name):
            layer.set_weights(w[layer.name])
    return copy, {"conv1": np.arange(32), "conv2": p2, "conv3": p3, "dense1": pd}


def live_maps(loaded, data) -> dict[str, np.ndarray]:
    """Maps whose output varies over the test split (the others are dead: constant)."""
    from cnnviz.probes.activations import activations

    values = activations(loaded.model, LAYERS, loaded.preprocessing.apply(data.x_test)).layers
    return {layer: v.reshape(-1, v.shape[-1]).std(axis=0) > 0 for layer, v in values.items()}


def test_a_model_against_itself_is_the_identity_with_similarity_one(loaded, data):
    from cnnviz.galleries.compare import compare

    result = compare(loaded, loaded, LAYERS, data, "test")
    live = live_maps(loaded, data)
    numbers = result.numbers()
    for layer in LAYERS:
        m, alive = result.matchings[layer], live[layer]
        assert alive.mean() > 0.8, f"{layer}: too many dead maps for the test to mean much"
        # identical on every layer: dead maps included (two constants count as 1)
        np.testing.assert_allclose(m.matched, 1.0, atol=1e-5)
        assert numbers[layer]["mean_similarity"] == pytest.approx(1.0, abs=1e-5)
        assert numbers[layer]["constant_a"] == numbers[layer]["constant_b"] == int((~alive).sum())
        untied = alive & ~m.tied
        np.testing.assert_array_equal(m.partner[untied], np.flatnonzero(untied))
    np.testing.assert_allclose(result.kernels["conv1"].matched, 1.0, atol=1e-6)
    assert numbers["conv1"]["kernel_mean_similarity"] == pytest.approx(1.0)


def test_a_consistently_permuted_copy_is_recovered_up_to_genuine_ties(loaded, data):
    from cnnviz.galleries.compare import compare
    from cnnviz.model import LoadedModel

    model, perms = permuted_copy(loaded.model)
    x = loaded.preprocessing.apply(data.x_test[:200])
    np.testing.assert_allclose(model.predict(x, verbose=0), loaded.model.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-6)  # the same function
    other = LoadedModel(loaded.ref, model, loaded.run, loaded.preprocessing)
    result = compare(loaded, other, LAYERS, data, "test")
    for layer, perm in perms.items():
        m = result.matchings[layer]
        expected = np.argsort(perm)  # map m of A sits at position argsort(perm)[m] in B
        np.testing.assert_allclose(m.matched, 1.0, atol=1e-5)
        # where the matching differs from the true permutation, it is a tie the matching
        # reports: the true partner scores the same, and the map is marked tied
        wrong = m.partner != expected
        assert m.tied[wrong].all(), (layer, np.flatnonzero(wrong & ~m.tied))
        np.testing.assert_allclose(m.similarity[np.arange(len(perm)), expected][wrong],
                                   m.matched[wrong], atol=1e-5)
        assert m.tied.mean() < 0.3, layer  # ties are the exception, not the rule
    assert result.numbers()["conv2"]["same_index"] < 0.2  # the order really differs


def test_ties_are_reported_not_hidden():
    from cnnviz.probes.similarity import correlation, match

    rng = np.random.default_rng(1)
    a = rng.normal(size=(40, 4))
    a[:, 3] = 2 * a[:, 2] + 1  # maps 2 and 3 of A are the same function
    b = a[:, [1, 0, 3, 2]] + 0.01 * rng.normal(size=(40, 4))
    m = match("x", correlation(a, b))
    np.testing.assert_array_equal(m.tied, [False, False, True, True])
    np.testing.assert_array_equal(m.partner[:2], [1, 0])
    assert m.summary()["tied"] == 2


def test_constant_maps_compare_as_one_with_each_other_and_zero_with_varying_maps():
    from cnnviz.probes.similarity import StreamingCorrelation

    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(30, 3)), rng.normal(size=(30, 3))
    a[:, 0], b[:, 1], b[:, 2] = 0.0, 5.0, 0.0
    stream = StreamingCorrelation()
    stream.add(a[:10], b[:10])
    stream.add(a[10:], b[10:])
    s = stream.result()
    assert s[0, 1] == s[0, 2] == 1.0 and s[0, 0] == 0.0
    assert s[1, 1] == s[2, 2] == 0.0
    dead_a, dead_b = stream.constant()
    np.testing.assert_array_equal(dead_a, [True, False, False])
    np.testing.assert_array_equal(dead_b, [False, True, True])


def test_an_untrained_model_is_clearly_less_similar(loaded, data):
    from cnnviz.galleries.compare import compare

    numbers = compare(loaded, loaded, LAYERS, data, "test").numbers()
    for layer in LAYERS:
        assert numbers[layer]["baseline_mean_similarity"] < numbers[layer]["mean_similarity"] - 0.1
        assert numbers[layer]["baseline_mean_similarity"] < 0.9


def test_correlation_matches_numpy_corrcoef():
    from cnnviz.probes.similarity import correlation, match

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 4)), rng.normal(size=(50, 3))
    b[:, 2] = 1.0  # a constant (dead) map correlates with no varying map
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = np.corrcoef(a.T, b.T)[:4, 4:]
    expected[:, 2] = 0
    np.testing.assert_allclose(correlation(a, b), expected, atol=1e-12)
    m = match("x", np.array([[0.1, 0.9], [0.8, 0.7]]))  # greedy would pair (0,1) then (1,0) too
    np.testing.assert_array_equal(m.partner, [1, 0])
    m = match("x", np.array([[0.9, 0.8], [0.85, 0.1]]))  # greedy (0,0) gives 1.0; best is 1.65
    np.testing.assert_array_equal(m.partner, [1, 0])


@pytest.fixture(scope="module")
def runs(tmp_path_factory, small_npz):
    from cnnviz.cli import main

    root = tmp_path_factory.mktemp("runs")
    with pytest.raises(SystemExit) as done:
        main(["train", "--data", str(small_npz), "--name", "r", "--runs", "2", "--epochs", "1",
              "--quiet", "--trained-dir", str(root)])
    assert done.value.code == 0
    return root


def test_train_runs_makes_bundles_that_differ_only_in_seed(runs):
    first, second = (json.loads((runs / f"r-{i}" / "run.json").read_text()) for i in (1, 2))
    assert first["training"].pop("seed") == 1 and second["training"].pop("seed") == 2
    assert first["training"] == second["training"] and first["network"] == second["network"]
    assert first["data"]["train_images"] == second["data"]["train_images"] == 1000


def test_compare_command_end_to_end(runs, run_cli, tmp_path):
    result = run_cli("compare", "r-1", "r-2", "--json", "--trained-dir", runs,
                     "--outputs-dir", tmp_path)
    assert result.code == 0, result.output
    numbers = json.loads(result.out)
    assert list(numbers["layers"]) == LAYERS and numbers["images"] == 300
    for layer, n in numbers["layers"].items():
        assert set(n) >= {"mean_similarity", "above_0_8", "above_0_5", "same_index",
                          "baseline_mean_similarity", "tied", "constant_a", "constant_b"}
        assert -1 <= n["baseline_mean_similarity"] <= 1 and -1 <= n["mean_similarity"] <= 1, layer
        assert 0 <= n["above_0_8"] <= n["above_0_5"] <= 1
    gallery = tmp_path / "compare-r-1-r-2"
    manifest = json.loads((gallery / "manifest.json").read_text())
    files = {e["path"] for e in manifest["entries"]}
    assert {"compare/summary.json", "compare/similarity.npz", "compare/summary.png",
            "compare/conv1/similarity-conv1.png", "compare/conv1/kernel-pairs-conv1.png",
            "compare/conv3/class-means-conv3.png"} <= files
    assert all((gallery / f).is_file() for f in files)
    with np.load(gallery / "compare" / "similarity.npz") as z:
        partner = z["conv2_partner"]
        assert sorted(partner) == list(range(64))
    assert json.loads((gallery / "compare" / "summary.json").read_text())["layers"] == numbers["layers"]
    assert "compare/summary.png" in (gallery / "index.html").read_text()

    result = run_cli("compare", "r-1", "r-2", "--layer", "conv1", "--trained-dir", runs,
                     "--outputs-dir", tmp_path, "--strategy", "mirrored")
    assert result.code == 0 and "conv1" in result.out and "untrained" in result.out
    from cnnviz import distributed

    replicas = distributed.replicas(distributed.make_strategy("mirrored"))
    assert (f"strategy mirrored: {replicas} replicas" in result.err) == (replicas > 1)


def test_compare_has_the_cka_of_every_layer_pair_and_a_run_is_closest_to_its_twin(runs, tmp_path):
    """Two runs that differ only in their seed: each conv layer of one is more similar
    (linear CKA) to the same layer of the other than to its other conv layers; the matrix
    is in the summary and drawn."""
    import cnnviz
    from cnnviz.probes.geometry import linear_cka

    a, b = (cnnviz.load(name, trained_dir=runs) for name in ("r-1", "r-2"))
    result = cnnviz.compare(a, b, tmp_path, layers="conv1")
    rows, columns = result.cka_layers
    assert rows == a.layers and columns == b.layers and result.cka.shape == (7, 7)
    conv = [rows.index(n) for n in ("conv1", "conv2", "conv3")]
    block = result.cka[np.ix_(conv, conv)]
    for i in range(3):
        assert block[i, i] == max(block[i]) and block[i, i] > 0.5, block
    summary = json.loads((result.folder / "compare" / "summary.json").read_text())
    assert np.allclose(summary["cka"]["matrix"], result.cka, atol=1e-6)
    assert (result.folder / "compare" / "cka.png").is_file()
    x = a.data().split("test")[0][:300]  # against the full-batch definition, one pair
    first = np.asarray(a.activations(np.asarray(x), layers="dense1")["dense1"], np.float64)
    second = np.asarray(b.activations(np.asarray(x), layers="dense1")["dense1"], np.float64)
    i, j = rows.index("dense1"), columns.index("dense1")
    assert abs(result.cka[i, j] - linear_cka(first, second)) < 0.05


def test_compare_shows_matched_patterns_when_both_galleries_have_them(runs, run_cli, tmp_path):
    for name in ("r-1", "r-2"):
        assert run_cli("filters", name, "--layer", "conv1", "--steps", "3", "--scales", "7",
                       "--starts", "1", "--save-arrays", "--strategy", "mirrored",
                       "--trained-dir", runs, "--outputs-dir", tmp_path).code == 0
    result = run_cli("compare", "r-1", "r-2", "--layer", "conv1,conv2", "--trained-dir", runs,
                     "--outputs-dir", tmp_path)
    assert result.code == 0, result.output
    folder = tmp_path / "compare-r-1-r-2" / "compare"
    assert (folder / "conv1" / "pattern-pairs-conv1.png").is_file()
    assert not (folder / "conv2" / "pattern-pairs-conv2.png").exists()


def test_compare_bad_input(runs, run_cli, tmp_path, small_npz):
    result = run_cli("compare", "r-1", "nosuch", "--trained-dir", runs, "--outputs-dir", tmp_path)
    assert_one_line_error(result, 2, "nosuch")
    result = run_cli("train", "--runs", "0", "--trained-dir", runs)
    assert_one_line_error(result, 2, "--runs must be ≥ 1")
    result = run_cli("train", "--runs", "2", "--name", "r", "--resume", "--trained-dir", runs)
    assert_one_line_error(result, 2, "--runs cannot be combined with")
    result = run_cli("train", "--runs", "2", "--name", "r", "--trained-dir", runs)
    assert_one_line_error(result, 2, "r-1 exists")

    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv1")(inputs)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(16, activation="relu", name="dense1")(x)
    small = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="output")(x))
    small.save(tmp_path / "small.keras")
    result = run_cli("compare", "r-1", tmp_path / "small.keras", "--trained-dir", runs,
                     "--outputs-dir", tmp_path)
    assert_one_line_error(result, 2, "no comparable layer", "conv1: output 26x26x32 in the "
                          "first, 26x26x8 in the second", "conv2: not in the second model")

    keras.models.load_model(runs / "r-2" / "model.keras").save(tmp_path / "plain.keras")
    result = run_cli("compare", "r-1", tmp_path / "plain.keras", "--layer", "conv1",
                     "--trained-dir", runs, "--outputs-dir", tmp_path)
    assert result.code == 0, result.output
    assert "input: assumed pixels / 255 (unit); pass --preprocess" in result.out


def test_layers_that_differ_are_skipped_with_a_note(runs, run_cli, tmp_path, small_npz):
    from cnnviz.cli import main

    train_with_cli(runs, small_npz, "wide")
    with pytest.raises(SystemExit):
        main(["train", "--data", str(small_npz), "--name", "narrow", "--conv", "32,64,32",
              "--epochs", "1", "--quiet", "--trained-dir", str(runs)])
    result = run_cli("compare", "wide", "narrow", "--trained-dir", runs, "--outputs-dir", tmp_path)
    assert result.code == 0, result.output
    assert "note: conv3 skipped: output 3x3x64 in the first, 3x3x32 in the second" in result.out
    assert "conv2" in result.out
