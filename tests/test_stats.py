"""`cnnviz stats`: every statistic against NumPy, batch-size invariance, dead maps, top-k, CLI."""

import csv
import json

import keras
import numpy as np
import pytest

from conftest import assert_one_line_error
from cnnviz.layout import top_pixels
from cnnviz.probes.activations import activations
from cnnviz.probes.stats import NEAR_ZERO, layer_stats, weight_stats

LAYERS = ["conv1", "pool2", "conv3", "dense1"]


@pytest.fixture(scope="module")
def data(small_npz):
    from cnnviz.data import load_dataset

    return load_dataset("mnist", small_npz)


def test_every_statistic_equals_numpy(loaded, data):
    x, y = data.x_test, data.y_test
    stats = layer_stats(loaded.model, LAYERS, x, y, loaded.preprocessing, top=5, batch_size=64)
    direct = activations(loaded.model, LAYERS, loaded.preprocessing.apply(x))
    for name in LAYERS:
        a = direct.layers[name].astype(np.float64)
        flat = a.reshape(len(a), -1, a.shape[-1])  # (N, positions, C)
        s = stats[name]
        np.testing.assert_allclose(s.mean, flat.mean(axis=(0, 1)), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(s.std, flat.std(axis=(0, 1)), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(s.max, flat.max(axis=(0, 1)), rtol=1e-6)
        np.testing.assert_allclose(s.active_fraction, (flat > 0).mean(axis=(0, 1)))
        np.testing.assert_allclose(s.image_active_fraction, (flat > 0).any(axis=1).mean(axis=0))
        per_image = flat.mean(axis=1)
        for c in range(10):
            np.testing.assert_allclose(s.class_mean[c], per_image[y == c].mean(axis=0), rtol=1e-6,
                                       atol=1e-9)
        for m in range(a.shape[-1]):  # top-k: brute-force sort by score, ties by index
            order = sorted(range(len(x)), key=lambda i: (-per_image[i, m], i))[:5]
            np.testing.assert_array_equal(s.top_index[m], order)
        assert s.images == len(x)


def test_streaming_does_not_depend_on_the_batch_size(loaded, data):
    small = layer_stats(loaded.model, LAYERS, data.x_test, data.y_test, loaded.preprocessing, top=4,
                        batch_size=7)
    large = layer_stats(loaded.model, LAYERS, data.x_test, data.y_test, loaded.preprocessing, top=4,
                        batch_size=512)
    for name in LAYERS:
        for field in ("mean", "std", "max", "active_fraction", "image_active_fraction", "class_mean",
                      "top_score"):
            # equal up to float32 rounding of the forward pass, which varies with batch shape
            np.testing.assert_allclose(getattr(small[name], field), getattr(large[name], field),
                                       rtol=1e-4, atol=1e-6, err_msg=f"{name} {field}")
        np.testing.assert_array_equal(small[name].top_index, large[name].top_index)


def test_a_map_that_can_never_fire_is_dead(loaded, data):
    model = keras.models.clone_model(loaded.model)
    model.set_weights(loaded.model.get_weights())
    kernel, bias = model.get_layer("conv2").get_weights()
    kernel[..., 5], bias[5] = 0.0, -1.0  # relu(0·x − 1) = 0 for every input
    model.get_layer("conv2").set_weights([kernel, bias])
    stats = layer_stats(model, ["conv2", "pool2"], data.x_test, data.y_test, loaded.preprocessing)
    assert stats["conv2"].dead[5] and stats["pool2"].dead[5]
    assert stats["conv2"].dead.sum() == 1 + layer_stats(
        loaded.model, ["conv2"], data.x_test, data.y_test, loaded.preprocessing)["conv2"].dead.sum()


def test_weight_statistics(loaded):
    w = weight_stats(loaded.model, "conv2")
    kernel = loaded.model.get_layer("conv2").get_weights()[0].astype(np.float64)
    per = kernel.reshape(-1, 64)
    np.testing.assert_allclose(w.per_filter["l2"], np.sqrt((per ** 2).sum(0)), rtol=1e-9)
    np.testing.assert_allclose(w.per_filter["std"], per.std(0), rtol=1e-9)
    limit = NEAR_ZERO * np.abs(kernel).max()
    np.testing.assert_allclose(w.per_filter["near_zero"], (np.abs(per) < limit).mean(0))
    assert w.layer["min"] == pytest.approx(kernel.min()) and w.layer["max"] == pytest.approx(kernel.max())
    assert weight_stats(loaded.model, "pool1") is None


def test_stats_command(trained, run_cli, tmp_path):
    result = run_cli("stats", "--layer", "conv2,dense1", "--limit", "120", "--top", "6",
                     "--compare", "a2", "--trained-dir", trained, "--outputs-dir", tmp_path)
    assert result.code == 0, result.output
    assert "conv2" in result.out and "dead" in result.out
    folder = tmp_path / "a2" / "stats"
    rows = list(csv.DictReader((folder / "stats.csv").read_text().splitlines()))
    assert len(rows) == 64 + 70 and set(rows[0]) >= {"layer", "map", "mean", "std", "max",
                                                     "active_fraction", "image_active_fraction", "dead"}
    top = np.load(folder / "top_examples.npz")
    assert top["conv2"].shape == (64, 6) and top["conv2"].max() < 120
    summary = json.loads((folder / "stats.json").read_text())
    assert summary["images"] == 120 and set(summary["layers"]) == {"conv2", "dense1"}
    manifest = json.loads((tmp_path / "a2" / "manifest.json").read_text())
    listed = {e["path"] for e in manifest["entries"]}
    on_disk = {str(p.relative_to(tmp_path / "a2")) for p in folder.rglob("*") if p.is_file()}
    assert listed == on_disk and "stats/conv2/top-examples-conv2.png" in listed
    assert "stats/compare-a2.csv" in listed


BAD = [
    (["--split", "val"], 2, r"unknown split 'val'; valid: test, train"),
    (["--limit", "0"], 2, r"--limit must be ≥ 1, got 0"),
    (["--top", "0"], 2, r"--top must be ≥ 1, got 0"),
    (["--limit", "5", "--top", "9"], 2, r"--top 9 is larger than the 5 images used"),
    (["--layer", "conv7"], 2, r"unknown layer conv7; valid: conv1"),
    (["--compare", "ghost"], 2, r"no model bundle 'ghost'"),
]


@pytest.mark.parametrize("args, code, message", BAD, ids=[" ".join(a) for a, *_ in BAD])
def test_bad_input(args, code, message, trained, run_cli, tmp_path):
    out = tmp_path / "out"
    result = run_cli("stats", *args, "--trained-dir", trained, "--outputs-dir", out)
    assert_one_line_error(result, code, message)
    assert not out.exists()


def test_each_image_is_converted_once_however_many_maps_it_tops(small_npz, tmp_path, monkeypatch):
    """Issue 29: a big model's stats re-converted (resized) the same images for every layer
    and every map's top examples: the cost grew with maps × images and never finished."""
    import cnnviz
    from cnnviz import images as lazy

    model = keras.Sequential([keras.Input((32, 32, 3)),
                              keras.layers.Conv2D(24, 3, activation="relu", name="c1"),
                              keras.layers.Conv2D(24, 3, activation="relu", name="c2"),
                              keras.layers.GlobalAveragePooling2D(name="pool"),
                              keras.layers.Dense(10, name="out")])
    m = cnnviz.load(model, preprocess="unit", data=small_npz)  # 28×28 gray → 32×32×3, lazily
    converted = []
    real = lazy.convert
    monkeypatch.setattr(lazy, "convert", lambda batch, shape: converted.append(len(batch))
                        or real(batch, shape))
    from cnnviz.galleries import stats as gallery

    options = gallery.StatsOptions(("c1", "c2", "pool"), m.data(), limit=120, top=4)
    entries = gallery.run(m.loaded, options, tmp_path)
    assert entries
    # the pass over the 120 images, then each top image once: at most 2 × 120 conversions
    # (before: 120 + 3 layers × 24 maps × 4 = 408, and 10× more for a MobileNet)
    assert sum(converted) <= 2 * 120, sum(converted)
    with np.load(tmp_path / "stats" / "top_examples.npz") as saved:
        x = np.asarray(m.data().split("test")[0][:120])
        for layer in ("c1", "c2", "pool"):
            np.testing.assert_array_equal(top_pixels(saved, layer), x[saved[layer]])


def test_many_figures_drawn_in_worker_processes_equal_those_drawn_here(small_npz, tmp_path,
                                                                       monkeypatch):
    """A big model's stats figures are drawn on every core (render/parallel.py): the same
    files, byte for byte, as drawn one after another in this process."""
    import cnnviz
    from cnnviz.galleries import stats as gallery
    from cnnviz.render import parallel

    layers = [keras.Input((28, 28, 1))] + [keras.layers.Conv2D(4, 3, padding="same",
                                                                activation="relu", name=f"c{i}")
                                           for i in range(11)]
    model = keras.Sequential(layers + [keras.layers.Flatten(), keras.layers.Dense(10, name="out")])
    m = cnnviz.load(model, preprocess="unit", data=small_npz)
    names = tuple(f"c{i}" for i in range(11))
    options = gallery.StatsOptions(names, m.data(), limit=30, top=2)
    started = []
    real_pool = __import__("concurrent.futures").futures.ProcessPoolExecutor

    def counting_pool(*args, **kwargs):
        started.append(1)
        return real_pool(*args, **kwargs)

    monkeypatch.setattr("concurrent.futures.ProcessPoolExecutor", counting_pool)
    together = gallery.run(m.loaded, options, tmp_path / "together")
    assert started == [1]  # 11 layers × 4 figures: worker processes
    monkeypatch.setattr(parallel, "PARALLEL_FROM", 10**6)
    alone = gallery.run(m.loaded, options, tmp_path / "alone")
    assert started == [1]
    assert [e["path"] for e in together] == [e["path"] for e in alone]
    for entry in together:
        if entry["path"].endswith(".png"):
            assert (tmp_path / "together" / entry["path"]).read_bytes() == \
                (tmp_path / "alone" / entry["path"]).read_bytes(), entry["path"]


def test_a_drawing_worker_that_died_leaves_its_jobs_to_this_process(tmp_path):
    """A worker that cannot start or dies (a __main__ that cannot be imported again, as
    `python - < script`) breaks its pool, which then refuses new work: every later job is
    drawn here instead, and map_behind computes here too."""
    import os
    from concurrent.futures.process import BrokenProcessPool

    from cnnviz.render import parallel

    with parallel.drawing_behind() as behind:
        if behind is None:
            pytest.skip("one core: nothing is drawn behind")
        behind.pool.submit(os._exit, 1).exception(timeout=60)  # the worker process dies
        with pytest.raises(BrokenProcessPool):
            behind.pool.submit(print)
        target = tmp_path / "drawn.txt"
        behind.submit([(target.write_text, ("drawn here",))])
        assert target.read_text() == "drawn here" and behind.take() == []
        assert parallel.map_behind(abs, [(-1,), (-2,), (3,)], [1, 1, 1]) == [1, 2, 3]
