"""Attributions: analytic cases (a linear model, a conv model whose one map carries the
class), occlusion against a brute-force loop, and the sanity checks on the test bundle."""

import keras
import numpy as np
import pytest

from cnnviz.errors import UsageError
from cnnviz.inputs import Preprocessing
from cnnviz.probes.attribution import ExplainSettings, explain, logits_of, occlusion


@pytest.fixture(scope="module")
def linear():
    """logits = W·flatten(x) + b on raw pixels, with a softmax after: attributions are exact."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 1))
    logits = keras.layers.Dense(3, name="logits")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Softmax(name="probabilities")(logits))
    weights = model.get_layer("logits").kernel.numpy().reshape(8, 8, 3)
    return model, weights


def images(n, side=8, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, size=(n, side, side)).astype(np.float32)


def test_a_linear_model_has_its_weights_as_gradient_and_exact_integrated_gradients(linear):
    model, weights = linear
    pixels, targets = images(4), np.array([0, 1, 2, 1])
    settings = ExplainSettings(methods=("saliency", "gradient-input", "integrated-gradients",
                                        "smoothgrad"), steps=7, samples=5, batch_size=6)
    found = explain(model, Preprocessing("raw"), pixels, targets, settings)
    w = np.moveaxis(weights[..., targets], -1, 0)  # (4, 8, 8)
    np.testing.assert_allclose(found.maps["saliency"], np.abs(w), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(found.maps["gradient-input"], pixels * w, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(found.maps["integrated-gradients"], pixels * w, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(found.maps["smoothgrad"], w, rtol=1e-4, atol=1e-5)  # noise cancels
    assert np.abs(found.completeness).max() < 1e-3 * np.abs(found.difference).max()
    logits = pixels.reshape(4, -1) @ weights.reshape(64, 3) + model.get_layer("logits").bias.numpy()
    np.testing.assert_allclose(found.logits, logits, rtol=1e-4, atol=1e-3)  # before the softmax


def test_occlusion_equals_a_brute_force_loop(linear):
    model, _ = linear
    pixels, targets = images(2, seed=1), np.array([2, 0])
    run = logits_of(model)
    x = pixels[..., None]
    got = occlusion(run, x, targets, patch=3, stride=2, fill=np.zeros((8, 8, 1), np.float32), size=5)
    expected = np.zeros((2, 8, 8))
    cover = np.zeros((8, 8))
    corners = (0, 2, 4, 5)  # every 2 pixels, and one flush with the far edge: all covered
    for r in corners:
        for c in corners:
            cover[r:r + 3, c:c + 3] += 1
    assert cover.min() >= 1
    for i in range(2):
        full = np.asarray(run(x[i:i + 1])[1])[0, targets[i]]
        for r in corners:
            for c in corners:
                hidden = x[i:i + 1].copy()
                hidden[0, r:r + 3, c:c + 3] = 0
                expected[i, r:r + 3, c:c + 3] += full - np.asarray(run(hidden)[1])[0, targets[i]]
    np.testing.assert_allclose(got, expected / np.maximum(cover, 1), rtol=1e-4, atol=1e-3)


def test_grad_cam_lights_the_region_the_class_map_sees():
    """Map 0 fires on bright pixels and alone carries class 0; the digit-like blob sits in
    the top-left quadrant, so Grad-CAM (and ++) for class 0 must peak there."""
    inputs = keras.Input((16, 16, 1))
    conv = keras.layers.Conv2D(2, 3, padding="same", activation="relu", name="conv")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(conv)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="out")(pooled))
    kernel = np.zeros((3, 3, 1, 2), np.float32)
    kernel[..., 0, 0] = 1.0 / 9
    model.get_layer("conv").set_weights([kernel, np.zeros(2, np.float32)])
    model.get_layer("out").set_weights([np.array([[1.0, 0.0], [0.0, 1.0]], np.float32),
                                        np.zeros(2, np.float32)])
    pixels = np.zeros((1, 16, 16), np.float32)
    pixels[0, 2:6, 2:6] = 255
    found = explain(model, Preprocessing("unit"), pixels, np.array([0]),
                    ExplainSettings(methods=("grad-cam", "grad-cam++")))
    for method in ("grad-cam", "grad-cam++"):
        heat = found.maps[method][0]
        assert found.notes[method] == "layer conv"
        row, col = np.unravel_index(heat.argmax(), heat.shape)
        assert 1 <= row <= 6 and 1 <= col <= 6, (method, row, col)
        assert heat[8:, :].max() < 0.05 * heat.max() and heat[:, 8:].max() < 0.05 * heat.max()


def test_randomising_the_top_layer_changes_the_saliency(loaded, sample):
    from cnnviz.probes.sanity import randomised

    pixels = sample["x_test"][:3].astype(np.float32)
    targets = np.asarray(loaded.model.predict(loaded.preprocessing.apply(pixels), verbose=0)).argmax(1)
    settings = ExplainSettings(methods=("saliency",))
    trained = explain(loaded.model, loaded.preprocessing, pixels, targets, settings).maps["saliency"]
    shuffled = randomised(loaded.model, 1, seed=0)
    assert not np.allclose(shuffled.get_layer("output").kernel.numpy(),
                           loaded.model.get_layer("output").kernel.numpy())
    np.testing.assert_array_equal(shuffled.get_layer("conv1").kernel.numpy(),
                                  loaded.model.get_layer("conv1").kernel.numpy())
    after = explain(shuffled, loaded.preprocessing, pixels, targets, settings).maps["saliency"]
    assert not np.allclose(after, trained, rtol=0.05)


def test_deletion_of_integrated_gradients_falls_faster_than_a_random_order(loaded, sample):
    from cnnviz.probes.sanity import deletion_insertion

    pixels = sample["x_test"][:8].astype(np.float32)
    targets = np.asarray(loaded.model.predict(loaded.preprocessing.apply(pixels), verbose=0)).argmax(1)
    found = explain(loaded.model, loaded.preprocessing, pixels, targets,
                    ExplainSettings(methods=("integrated-gradients",), steps=16))
    curves = deletion_insertion(loaded.model, loaded.preprocessing, pixels, targets,
                                found.maps["integrated-gradients"], fractions=11, seed=0)
    assert curves["deletion_auc"] < curves["random_deletion_auc"]
    assert curves["insertion_auc"] > curves["random_insertion_auc"]


@pytest.mark.parametrize("change, message", [
    (dict(methods=("lime",)), "method 'lime': choose from saliency"),
    (dict(steps=0), "steps must be ≥ 1"), (dict(baseline="white"), "baseline must be one of"),
    (dict(patch=0), "patch must be ≥ 1 pixel")])
def test_bad_settings_name_the_parameter(change, message):
    with pytest.raises(UsageError, match=message):
        ExplainSettings(**change)


def test_explain_command_end_to_end(trained, run_cli, tmp_path):
    import json

    result = run_cli("explain", "--image", "3,5", "--method", "saliency,integrated-gradients,occlusion",
                     "--steps", "8", "--check", "--trained-dir", trained, "--outputs-dir", tmp_path)
    assert result.code == 0, result.output
    folder = tmp_path / "a2" / "explain"
    assert {p.name for p in folder.iterdir()} == {
        "explain-test-image-00003.png", "explain-test-image-00005.png", "check.png", "check.json",
        "attributions-test-image-00003-and-1-more.npz"}
    manifest = json.loads((tmp_path / "a2" / "manifest.json").read_text())
    assert {e["path"] for e in manifest["entries"]} == {f"explain/{p.name}" for p in folder.iterdir()}
    check = json.loads((folder / "check.json").read_text())
    assert set(check["methods"]) == {"saliency", "integrated-gradients", "occlusion"}
    assert "completeness_passes" in check["methods"]["integrated-gradients"]
    assert "randomisation" in result.out and "integrated-gradients" in result.out

    import cnnviz

    m = cnnviz.load("a2", trained_dir=trained)
    again = m.explain([3, 5], methods=["saliency", "integrated-gradients"], steps=8)
    with np.load(folder / "attributions-test-image-00003-and-1-more.npz") as z:
        np.testing.assert_allclose(z["saliency"], again.maps["saliency"], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(z["integrated_gradients"], again.maps["integrated-gradients"],
                                   rtol=1e-4, atol=1e-6)
        assert list(z["index"]) == [3, 5] and z["logits"].shape == (2, 10)
    assert again.show() is not None and len(again.save(tmp_path / "lib")) == 3


def test_sanity_from_the_library(trained):
    import cnnviz

    report = cnnviz.load("a2", trained_dir=trained).sanity([0, 1], methods=["saliency", "grad-cam"])
    assert set(report.report["methods"]) == {"saliency", "grad-cam"}
    layers = report.report["layers_randomised"]
    assert layers == ["output", "dense1", "conv3", "conv2", "conv1"]
    assert all(len(r["randomisation"]) == len(layers) for r in report.report["methods"].values())
    assert "randomisation" in report.table


BAD = [
    (["--method", "lime"], "method 'lime': choose from saliency"),
    (["--target", "12"], "--target 12: classes are 0–9"),
    (["--target", "seven"], "--target 'seven': use predicted, true or a class index"),
    (["--layer", "nope"], "unknown layer nope"),
    (["--steps", "0"], "--steps must be ≥ 1"),
    (["--image", "99999"], "--image 99999 out of range"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_explain_bad_input(args, message, trained, run_cli, tmp_path):
    from conftest import assert_one_line_error

    out = tmp_path / "out"
    result = run_cli("explain", *args, "--trained-dir", trained, "--outputs-dir", out)
    assert_one_line_error(result, 2, message)
    assert not out.exists()


@pytest.mark.parametrize("build", ["rescaling_nested", "rgb32"])
def test_every_method_runs_on_nested_and_colour_models(build):
    """Grad-CAM finds its layer inside a nested model; colour inputs give (N, H, W) maps."""
    import zoo
    from cnnviz.inputs import detect

    model = getattr(zoo, build)()
    shape = tuple(model.inputs[0].shape[1:])
    pixels = np.random.default_rng(0).uniform(0, 255, size=(2, *shape[:2]) + ((3,) if shape[2] == 3 else ()))
    found = explain(model, detect(model) or Preprocessing("unit"), pixels.astype(np.float32),
                    np.array([0, 1]), ExplainSettings(steps=4, samples=3))
    assert set(found.maps) == set(ExplainSettings().methods)
    for values in found.maps.values():
        assert values.shape == (2, *shape[:2]) and np.isfinite(values).all()
    if build == "rescaling_nested":
        assert "/" in found.notes["grad-cam"]  # a layer inside the nested model


def test_targets_are_resolved_in_one_place():
    from cnnviz.errors import UsageError
    from cnnviz.probes.attribution import resolve_targets

    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])
    assert resolve_targets("predicted", scores, None).tolist() == [1, 0]
    assert resolve_targets("true", scores, np.array([2, 2])).tolist() == [2, 2]
    assert resolve_targets(2, scores, None).tolist() == [2, 2]
    for bad, words in (("true", "needs dataset images"), (3, "class 0–2"), ("seven", "class 0–2"),
                       (True, "class 0–2")):
        with pytest.raises(UsageError, match=words) as caught:
            resolve_targets(bad, scores, None)
        assert caught.value.param == "target"
