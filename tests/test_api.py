"""The library API (issue 13): cnnviz.load / cnnviz.train and the opened model's methods,
checked against forward passes built here, with errors that name parameters."""

from __future__ import annotations

import subprocess
import sys

import keras
import numpy as np
import pytest

import cnnviz


@pytest.fixture(scope="module")
def m(trained, small_npz):
    return cnnviz.load("a2", trained_dir=trained, data=small_npz)


def test_import_cnnviz_imports_no_tensorflow():
    done = subprocess.run([sys.executable, "-c", "import sys, cnnviz; "
                           "print('tensorflow' in sys.modules, 'keras' in sys.modules)"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]


def test_layers_are_the_probeable_ones_in_model_order(m):
    assert m.layers == ["conv1", "pool1", "conv2", "pool2", "conv3", "dense1", "output"]
    assert m.conv_layers == ["conv1", "conv2", "conv3"] and m.name == "a2"


def test_activations_are_what_the_network_computes(m, small_npz):
    a = m.activations([17, 3], layers="conv2")
    with np.load(small_npz) as z:
        pixels = z["x_test"][[17, 3]]
    x = m.loaded.preprocessing.apply(pixels)
    feed = keras.Model(m.model.inputs, m.model.get_layer("conv2").output)
    np.testing.assert_allclose(a["conv2"], np.asarray(feed(x)), rtol=1e-5, atol=1e-5)
    assert a["conv2"].shape == (2, 11, 11, 64) and list(a) == ["conv2"]
    np.testing.assert_array_equal(a.pixels, pixels)
    np.testing.assert_allclose(a.outputs, np.asarray(m.model(x)), rtol=1e-5, atol=1e-6)
    raw = m.activations(pixels.astype(np.float32), layers=["conv1", "dense1"])
    np.testing.assert_array_equal(raw.index, [-1, -1])
    np.testing.assert_allclose(raw["dense1"], m.activations([17, 3], layers="dense1")["dense1"],
                               rtol=1e-5, atol=1e-6)


def test_results_show_display_and_save(m, tmp_path):
    import matplotlib.figure

    a = m.activations(5, layers="conv1")
    assert isinstance(a.show(), matplotlib.figure.Figure)
    assert a._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
    written = a.save(tmp_path / "a")
    assert all(p.is_file() for p in written) and len(written) == 2
    with np.load(tmp_path / "a" / "activations.npz") as z:
        np.testing.assert_array_equal(z["layer_conv1"], a["conv1"])
    k = m.kernels("conv1")
    np.testing.assert_array_equal(k.weights, m.model.get_layer("conv1").get_weights()[0])
    assert k._repr_png_()[:4] == b"\x89PNG" and all(p.is_file() for p in k.save(tmp_path / "k"))


def test_patterns_raise_the_objective_and_report_it(m):
    p = m.patterns("conv3", maps=range(4), steps=15, scales=(7,), starts=1)
    assert p.pixels.shape == (4, 28, 28) and p.pixels.min() >= 0 and p.pixels.max() <= 255
    feed = keras.Model(m.model.inputs, m.model.get_layer("conv3").output)
    fed_back = np.asarray(feed(m.loaded.preprocessing.apply(p.pixels))).mean(axis=(1, 2))
    np.testing.assert_allclose(fed_back[np.arange(4), np.arange(4)], p.objective, rtol=1e-3,
                               atol=1e-3)
    assert (p.objective > 0).all() and "4/4 maps with a positive objective" in p.report
    counted = []
    m.patterns("conv1", maps="0-1", steps=3, scales=(7,), starts=1, progress=counted.append)
    assert sum(counted) == 3


def test_stats_equal_a_hand_computation(m, small_npz):
    s = m.stats(layers="conv1", limit=100, top=3)
    with np.load(small_npz) as z:
        x = m.loaded.preprocessing.apply(z["x_test"][:100])
    values = np.asarray(keras.Model(m.model.inputs, m.model.get_layer("conv1").output)(x))
    np.testing.assert_allclose(s["conv1"].mean, values.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)
    assert s.images == 100 and s["conv1"].top_index.shape == (32, 3)


@pytest.mark.parametrize("call, param", [
    (lambda m: m.patterns("conv3", steps=0), "steps must be ≥ 1, got 0"),
    (lambda m: m.patterns("conv3", maps=[99]), "maps: map 99 out of range"),
    (lambda m: m.patterns("conv1,conv2"), "layer: give one layer name"),
    (lambda m: m.activations(10**6), "images: index 1000000 out of range"),
    (lambda m: m.activations(np.zeros((2, 5, 5))), "images: raw images must be"),
    (lambda m: m.activations(layers="nosuch"), "layers: unknown layer nosuch"),
    (lambda m: m.stats(top=0), "top must be ≥ 1, got 0"),
])
def test_errors_name_the_parameter_not_a_flag(m, call, param):
    with pytest.raises(cnnviz.UsageError) as caught:
        call(m)
    assert str(caught.value).startswith(param) and "--" not in str(caught.value)[:12]


def test_load_takes_a_keras_model_object(m):
    other = cnnviz.load(m.model)
    np.testing.assert_allclose(other.activations(np.zeros((1, 28, 28)), "conv1")["conv1"],
                               np.asarray(m.model.get_layer("conv1")(np.zeros((1, 28, 28, 1)))),
                               atol=1e-6)
    with pytest.raises(cnnviz.UsageError, match="model must be"):
        cnnviz.load(42)


def test_train_returns_the_opened_bundle(small_npz, tmp_path):
    epochs = []
    m = cnnviz.train(epochs=1, name="demo", data=small_npz, trained_dir=tmp_path, conv=[8, 16, 16],
                     dense=[16], progress=lambda epoch, logs: epochs.append(epoch))
    assert epochs == [1] and m.name == "demo" and (tmp_path / "demo" / "curves.png").is_file()
    data = m.data()
    predicted = np.asarray(m.model(m.loaded.preprocessing.apply(data.x_test))).argmax(axis=1)
    assert m.run["metrics"]["test_accuracy"] == pytest.approx((predicted == data.y_test).mean(),
                                                              abs=1e-6)
    with pytest.raises(cnnviz.UsageError, match="bundle .* exists; replace it .*force=True"):
        cnnviz.train(epochs=1, name="demo", data=small_npz, trained_dir=tmp_path)


def test_atlas_from_the_library(m, tmp_path):
    lines = []
    page = m.atlas(tmp_path / "a2", steps=3, limit=100, top=2, report=lines.append,
                   layers="conv3,output",  # every stage, two layers: quick
                   strategy="mirrored")    # on conftest's two logical CPUs
    assert page.is_file() and page.name == "index.html"
    assert [line.split(":")[0] for line in lines if not line.startswith(" ")] == [
        "curves", "verify", "stats", "explain", "activations", "patterns", "kernels", "geometry"]


def test_long_calls_show_a_bar_by_default_a_callable_on_request_and_nothing_when_false(m, capsys):
    from cnnviz.probes.patterns import PatternSettings, ascent_steps

    capsys.readouterr()
    m.stats(layers="conv1", limit=40, top=2)
    assert "stats" in capsys.readouterr().err  # tqdm.auto's bar (a widget in a notebook)
    m.stats(layers="conv1", limit=40, top=2, progress=False)
    assert capsys.readouterr().err == ""
    counted: list[int] = []
    m.patterns("conv1", maps=[0, 1], steps=3, data_starts=0, progress=counted.append)
    settings = PatternSettings(steps=3, data_starts=0, scales=(3, 7, 14, 28))
    assert sum(counted) == ascent_steps(2, settings, (28, 28, 1), False)
    assert capsys.readouterr().err == ""
    with pytest.raises(cnnviz.UsageError, match="progress must be True, False or a callable"):
        m.stats(layers="conv1", limit=40, progress="yes")


def test_no_library_call_makes_keras_warn_about_the_input_structure(m, tmp_path):
    """Keras 3 warns "The structure of `inputs` doesn't match" when a model with a named
    input is called with a bare tensor; cnnviz never does that."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="The structure of `inputs`")
        m.activations([0, 1], layers="all")
        m.patterns("conv1", maps=[0], steps=2, data_starts=1, progress=False)
        m.explain([0], methods="all", steps=4, samples=2, progress=False)
        m.stats(layers="conv1", limit=20, top=2, progress=False)
        m.gallery("activations", tmp_path / "g", layers="conv1", images=[0], class_mean=True)
