"""Explain against models and requests that cannot be right (issue 26, items 9–14): a
Grad-CAM layer without positions, memory flat in steps, a constant explanation, NaN models,
the occlusion's edges, a softmax given as a function, more classes than outputs."""

from __future__ import annotations

import resource
import warnings

import numpy as np
import pytest

from conftest import assert_one_line_error


def tiny(weights: float | None = None, activation=None, side: int = 12):
    """conv(3) → flatten → dense(10): weights all `weights` when given."""
    import keras

    model = keras.Sequential([keras.Input((side, side, 1)),
                              keras.layers.Conv2D(3, 3, activation="relu", name="conv"),
                              keras.layers.Flatten(name="flat"),
                              keras.layers.Dense(10, activation=activation, name="out")])
    if weights is not None:
        for layer in model.layers:
            layer.set_weights([np.full(w.shape, weights, np.float32) for w in layer.get_weights()])
    return model


@pytest.mark.parametrize("layer", ["dense1", "output"])
def test_grad_cam_on_a_layer_without_positions_is_one_line(run_cli, trained, tmp_path, layer):
    result = run_cli("explain", "a2", "--method", "grad-cam", "--layer", layer, "--trained-dir",
                     trained, "--outputs-dir", tmp_path / "out")
    assert_one_line_error(result, 2, f"layer {layer} has no positions", "e.g. conv3")
    assert not (tmp_path / "out").exists()


def test_memory_stays_flat_in_the_number_of_steps(monkeypatch):
    from cnnviz.probes import attribution
    from cnnviz.probes.attribution import ExplainSettings

    seen = []

    class Enough(Exception):
        pass

    def gradient(batch, targets):
        seen.append(int(batch.shape[0]))
        if len(seen) == 3:
            raise Enough
        return batch

    x = np.ones((1, 8, 8, 1), np.float32)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    settings = ExplainSettings(methods=("integrated-gradients",), steps=10**10, batch_size=64)
    with pytest.raises(Enough):  # before: np.arange(10**10) — 80 GB — was allocated first
        attribution._path_gradients(gradient, x, np.zeros_like(x), np.zeros(1, np.int64), settings)
    with pytest.raises(Enough):
        seen.clear()
        attribution._smoothgrad(gradient, x, np.zeros(1, np.int64), np.ones(1, np.float32),
                                ExplainSettings(samples=10**10, batch_size=64))
    assert seen == [64, 64, 64]
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 100  # MB


def test_a_constant_explanation_never_passes_the_randomisation_check():
    from cnnviz.inputs import Preprocessing
    from cnnviz.probes.attribution import ExplainSettings
    from cnnviz.probes.sanity import sanity

    model = tiny(weights=0.0)
    pixels = np.random.default_rng(0).integers(0, 256, (3, 12, 12)).astype(np.float32)
    found = sanity(model, Preprocessing("unit"), pixels, np.zeros(3, np.int64),
                   ExplainSettings(methods=("saliency", "gradient-input")))
    for method, row in found["methods"].items():
        assert row["varies"] is False and row["randomisation_passes"] is False, method


def test_a_model_that_produces_nan_says_so_once(run_cli, tmp_path):
    import cnnviz
    from cnnviz.errors import CnnvizWarning

    model = tiny(weights=float("nan"))
    m = cnnviz.load(model, preprocess="unit")
    with pytest.warns(CnnvizWarning, match="the model produces NaN or infinite values"):
        m.explain(np.full((1, 12, 12), 100, np.float32), methods="saliency")
    model.save(tmp_path / "nan.keras")
    images = tmp_path / "x.npz"
    rng = np.random.default_rng(0)
    np.savez(images, x_train=rng.integers(0, 255, (20, 12, 12), np.uint8), y_train=np.arange(20) % 4,
             x_test=rng.integers(0, 255, (20, 12, 12), np.uint8), y_test=np.arange(20) % 4)
    result = run_cli("activations", tmp_path / "nan.keras", "--data", images, "--image", "0",
                     "--outputs-dir", tmp_path / "out")
    warned = [line for line in result.err.splitlines() if line.startswith("warning: the model produces NaN")]
    assert len(warned) == 1, result.output


def test_occlusion_covers_the_last_row_and_column():
    import tensorflow as tf

    from cnnviz.probes.attribution import occlusion

    weights = np.random.default_rng(1).uniform(0.5, 1.5, (32, 32)).astype(np.float32)

    def run(x):  # a linear logit: the drop of a patch is Σ weights × pixels under it
        return None, tf.stack([tf.reduce_sum(x[..., 0] * weights, axis=[1, 2])] * 2, axis=1)

    x = np.random.default_rng(2).uniform(0.1, 1, (1, 32, 32, 1)).astype(np.float32)
    found = occlusion(run, x, np.zeros(1, np.int64), 5, 2, np.zeros((32, 32, 1), np.float32), 64)[0]
    # expected: per pixel, the mean over the patches covering it of each patch's drop
    starts = sorted(set(range(0, 28, 2)) | {27})
    total, cover = np.zeros((32, 32)), np.zeros((32, 32))
    for r in starts:
        for c in starts:
            total[r:r + 5, c:c + 5] += (weights * x[0, ..., 0])[r:r + 5, c:c + 5].sum()
            cover[r:r + 5, c:c + 5] += 1
    assert cover.min() >= 1
    np.testing.assert_allclose(found, total / cover, rtol=1e-4)
    assert found[31].min() > 0 and found[:, 31].min() > 0


def test_a_softmax_given_as_a_function_is_recognised():
    import tensorflow as tf

    import cnnviz
    from cnnviz.graph import graph_of
    from cnnviz.probes.responses import ends_in_softmax

    model = tiny(activation=tf.nn.softmax)
    assert ends_in_softmax(graph_of(model).layer("out"))
    m = cnnviz.load(model, preprocess="unit")
    pixels = np.random.default_rng(3).integers(0, 256, (2, 12, 12)).astype(np.float32)
    found = m.explain(pixels, methods="saliency", target=1)
    flat = model.get_layer("flat")
    import keras

    before_softmax = keras.Model(model.inputs, flat.output)(pixels[..., None] / 255.0).numpy() @ \
        model.get_layer("out").kernel.numpy() + model.get_layer("out").bias.numpy()
    np.testing.assert_allclose(found.logits, before_softmax, rtol=1e-4, atol=1e-5)


def test_data_with_more_classes_than_outputs_is_refused_at_once(run_cli, trained, tmp_path):
    from PIL import Image

    for k in range(20):
        (tmp_path / "data" / f"c{k:02d}").mkdir(parents=True)
        Image.new("L", (28, 28), k).save(tmp_path / "data" / f"c{k:02d}" / "a.png")
    for command in ("stats", "explain"):
        result = run_cli(command, "a2", "--data", tmp_path / "data", "--trained-dir", trained,
                         "--outputs-dir", tmp_path / "out")
        assert_one_line_error(result, 2, "the data has 20 classes but the model has 10 outputs")
    assert not (tmp_path / "out").exists()
