"""Optimal input patterns: batched = one map at a time, rising objectives, the dead-map fallback."""

import json

import keras
import numpy as np
import pytest

from conftest import assert_one_line_error
from cnnviz.data import EMBEDDED_SAMPLE
from cnnviz.errors import UsageError
from cnnviz.probes.objectives import ObjectiveBatch, channel, neuron, parse_objective
from cnnviz.probes.patterns import PatternSettings, optimal_patterns, parse_maps, response


def small(**changes) -> PatternSettings:
    """Few steps and starts: what the tests can afford."""
    base = dict(steps=12, scales=(7, 28), starts=1, pixel_starts=1, data_starts=0)
    return PatternSettings(**{**base, **changes})


def fed_back(loaded, layer, inputs):
    """The layer's output for the inputs, from a forward pass built here."""
    return np.asarray(keras.Model(loaded.model.inputs, loaded.model.get_layer(layer).output)([inputs]))


@pytest.mark.parametrize("chunk", [32, 3], ids=["one-chunk", "chunks-with-padding"])
def test_one_batch_equals_one_map_at_a_time(loaded, chunk, monkeypatch):
    from cnnviz.probes import ascent

    monkeypatch.setattr(ascent, "GRADIENT_CHUNK", chunk)  # 12 items: 3 + 3 + 3 + 3
    maps = np.array([0, 3, 5, 9])
    together = optimal_patterns(loaded.model, "conv2", maps, loaded.preprocessing, small())
    for i, m in enumerate(maps):
        alone = optimal_patterns(loaded.model, "conv2", np.array([m]), loaded.preprocessing, small())
        np.testing.assert_allclose(together.group_inputs[i], alone.group_inputs[0], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(together.objective[i], alone.objective[0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(together.curve[i], alone.curve[0], rtol=1e-4, atol=1e-5)


def test_objective_rises_for_every_live_map_and_every_map_gets_a_pattern(loaded):
    result = optimal_patterns(loaded.model, "conv3", np.arange(64), loaded.preprocessing,
                              small(steps=20, scales=(3, 14)))
    live = result.start_objective > 0
    assert (result.objective[live] > result.start_objective[live]).all()
    assert (result.best_objective > 0).all()
    np.testing.assert_allclose(result.curve[:, 0], result.start_objective[np.arange(64), result.best],
                               rtol=1e-5)


def test_reported_objective_is_what_the_network_gives_for_the_saved_input(loaded):
    result = optimal_patterns(loaded.model, "pool2", np.arange(8), loaded.preprocessing,
                              small(steps=10, objective="center"))
    centre = fed_back(loaded, "pool2", result.best_inputs)[np.arange(8), 2, 2, np.arange(8)]
    np.testing.assert_allclose(result.best_objective, centre, rtol=1e-5, atol=1e-6)


def test_a_dead_start_is_recovered_by_the_pre_activation(loaded, tmp_path):
    """Map 0 of conv2 is silenced for every start by lowering its bias; only the fallback
    gives it a gradient."""
    from cnnviz.probes.patterns import noise_start

    model = keras.models.clone_model(loaded.model)
    model.set_weights(loaded.model.get_weights())
    settings = small(steps=40, scales=(7,), pixel_starts=1)
    starts = loaded.preprocessing.apply(np.stack([noise_start(settings, (0, 7, 0), 7, (28, 28)),
                                                  noise_start(settings, (0, 0, 1), None, (28, 28))]))
    pre, _ = response(model, "conv2")(starts)
    kernel, bias = model.get_layer("conv2").get_weights()
    bias[0] -= float(np.asarray(pre)[..., 0].max()) + 0.5
    model.get_layer("conv2").set_weights([kernel, bias])

    off = optimal_patterns(model, "conv2", np.array([0]), loaded.preprocessing,
                           small(steps=40, scales=(7,), pre_activation="off"))
    assert (off.start_objective == 0).all() and (off.objective == 0).all()  # stuck: no gradient
    assert off.flags()["never woke"][0] and "1 never woke" in off.summary()
    auto = optimal_patterns(model, "conv2", np.array([0]), loaded.preprocessing, settings)
    assert (auto.start_objective == 0).all() and auto.best_objective[0] > 0
    assert not auto.flags()["never woke"][0]


OBJECTIVES = ["conv3:17", "conv2:5@4,6", "output:7", "dense1:3", "conv3:17 - 0.5*conv3:4",
              "2*conv1:0 + pool2:3"]


@pytest.mark.parametrize("text", OBJECTIVES)
def test_every_kind_of_objective_rises_within_a_few_steps(loaded, text):
    objective = parse_objective(text, loaded.model)
    result = optimal_patterns(loaded.model, "objectives", np.arange(1), loaded.preprocessing,
                              small(steps=6, early_stop=False), objectives=[objective])
    assert result.curve[0, -1] > result.curve[0, 0]
    assert result.best_objective[0] > result.start_objective[0, result.best[0]]


def test_objective_values_equal_an_independent_forward_pass(loaded, sample):
    x = loaded.preprocessing.apply(sample["x_test"][:5].astype(np.float32))
    conv3, conv2 = fed_back(loaded, "conv3", x), fed_back(loaded, "conv2", x)
    dense = loaded.model.get_layer("output")
    logits = fed_back(loaded, "dense1", x) @ dense.kernel.numpy() + dense.bias.numpy()
    texts = ["conv3:17 - 0.5*conv3:4", "conv2:5@4,6", "output:7", "conv3:17"]
    batch = ObjectiveBatch(loaded.model, [parse_objective(t, loaded.model) for t in texts])
    got = np.asarray(batch.all_values(x))
    expected = np.stack([conv3[..., 17].mean((1, 2)) - 0.5 * conv3[..., 4].mean((1, 2)),
                         conv2[:, 4, 6, 5], logits[:, 7], conv3[..., 17].mean((1, 2))], 1)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert np.allclose(got[:, 0], got[:, 3] - 0.5 * conv3[..., 4].mean((1, 2)), atol=1e-5)
    goal, value = batch(x, np.array([0, 1, 2, 3, 0]))
    np.testing.assert_allclose(np.asarray(value), got[np.arange(5), [0, 1, 2, 3, 0]], rtol=1e-5, atol=1e-6)


def test_objectives_add_scale_and_print():
    a, b = channel("conv3", 17), channel("conv3", 4)
    assert str(a - 0.5 * b) == "conv3:17 - 0.5*conv3:4"
    assert str(-(a + a)) == "-2*conv3:17" and (a - a).terms == ()
    assert str(neuron("conv2", 5, (4, 6))) == "conv2:5@4,6"


@pytest.mark.parametrize("text, message", [
    ("conv3", "use LAYER:MAP"), ("conv3:64", "map 64 out of range; conv3 has maps 0–63"),
    ("nope:1", "unknown layer nope"), ("dense1:2@1,1", "dense1 has no positions"),
    ("conv2:1@11,0", "position 11,0 is outside conv2's 11x11 positions"),
    ("conv3:1 conv3:2", "use LAYER:MAP"), ("", "has no term")])
def test_bad_objectives_say_what_is_valid(loaded, text, message):
    with pytest.raises(UsageError, match=message):
        parse_objective(text, loaded.model)


@pytest.fixture(scope="module")
def well_trained(tmp_path_factory):
    """article2 after 2 epochs on the 8,000 real training digits (≈ 96 % test accuracy)."""
    from conftest import train_with_cli
    from cnnviz.model import load_model

    root = train_with_cli(tmp_path_factory.mktemp("well"), EMBEDDED_SAMPLE, "b2", epochs=2)
    return load_model("b2", root)


def test_class_patterns_are_predicted_as_their_class(well_trained, sample):
    """Each class's logit climbed from the defaults' starts; the network's verdict on the
    pattern is what the gallery prints (on a one-epoch network they mostly read as one class)."""
    result = optimal_patterns(well_trained.model, "output", np.arange(10),
                              well_trained.preprocessing, PatternSettings(), data=sample["x_test"][:300])
    predicted = well_trained.model.predict(result.best_inputs, verbose=0).argmax(axis=1)
    assert (predicted == np.arange(10)).sum() >= 8, predicted


def test_every_map_beats_its_best_test_image_with_the_defaults(loaded, sample):
    images = sample["x_test"][:300]
    x = loaded.preprocessing.apply(images.astype(np.float32))
    for layer in ("conv1", "conv2", "conv3"):
        count = loaded.model.get_layer(layer).output.shape[-1]
        result = optimal_patterns(loaded.model, layer, np.arange(count), loaded.preprocessing,
                                  PatternSettings(), data=images)
        best_image = fed_back(loaded, layer, x).mean(axis=(1, 2)).max(axis=0)
        np.testing.assert_allclose(result.reference, best_image, rtol=1e-4, atol=1e-6)
        reached = fed_back(loaded, layer, result.best_inputs).mean(axis=(1, 2))[np.arange(count), np.arange(count)]
        assert (reached >= best_image).all(), layer
        assert np.median(reached / best_image) > 2, layer  # far above, not just equal
        assert f"{count}/{count} above their best dataset image" in result.summary()


def test_diversity_gives_patterns_that_differ_more(loaded):
    def correlation(stack):
        flat = stack.reshape(len(stack), -1)
        c = np.corrcoef(flat)
        return c[np.triu_indices(len(flat), 1)].mean()

    runs = {w: optimal_patterns(loaded.model, "conv3", np.array([5, 9]), loaded.preprocessing,
                                small(steps=30, diversity=4, diversity_weight=w, early_stop=False))
            for w in (0.0, 1.0)}
    for i in range(2):
        assert runs[1.0].diverse.shape == (2, 4, 28, 28, 1)
        assert correlation(runs[1.0].diverse[i]) < correlation(runs[0.0].diverse[i])
    assert (runs[1.0].best_objective > 0).all()


@pytest.mark.parametrize("name", ["tv", "l1", "l2", "blur"])
def test_every_regulariser_lowers_what_it_penalises(loaded, name):
    import tensorflow as tf

    from cnnviz.probes.transforms import REGULARISERS

    runs = {w: optimal_patterns(loaded.model, "conv2", np.arange(4), loaded.preprocessing,
                                small(steps=20, early_stop=False, regularisers=((name, w),)))
            for w in (0.0, 2.0)}
    span = loaded.preprocessing.apply(np.full((1, 28, 28), 255.0)) - loaded.preprocessing.apply(np.zeros((1, 28, 28)))
    low = loaded.preprocessing.apply(np.zeros((1, 28, 28)))
    penalty = {w: np.asarray(REGULARISERS[name](tf.constant((r.best_inputs - low) / span)))
               for w, r in runs.items()}
    assert (penalty[2.0] < penalty[0.0]).all(), penalty


def test_transforms_and_fourier_give_valid_rising_patterns(loaded):
    from cnnviz.probes.transforms import FourierPixels, Transforms

    fourier = FourierPixels((28, 28, 1))
    u = np.random.default_rng(0).uniform(0.05, 0.95, size=(3, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(fourier.to_pixels(fourier.from_pixels(u)).numpy(), u, atol=1e-4)
    result = optimal_patterns(loaded.model, "conv3", np.arange(4), loaded.preprocessing,
                              small(steps=20, recipe="regularised", early_stop=False))
    assert (result.best_objective > result.start_objective.max(axis=1)).all()
    pixels = loaded.preprocessing.invert(result.best_inputs)
    assert pixels.min() >= -1e-3 and pixels.max() <= 255 + 1e-3
    moved = Transforms(jitter=3, rotate=10, scale=0.1).apply(tf_constant(u), tf_constant([1, 2]))
    assert moved.shape == u.shape and not np.allclose(moved, u)
    still = Transforms(jitter=0.0, rotate=0.0, scale=0.0).apply(tf_constant(u), tf_constant([1, 2]))
    np.testing.assert_allclose(still, u, atol=1e-5)


def tf_constant(value):
    import tensorflow as tf

    return tf.constant(value)


def test_early_stop_ends_a_converged_ascent_and_counts_every_step(loaded):
    counted = []
    result = optimal_patterns(loaded.model, "conv1", np.arange(2), loaded.preprocessing,
                              small(steps=400, step_size=1.0), counted.append)
    assert sum(counted) == 400
    assert len(counted) < 400  # stopped early: the rest counted at once
    frozen = result.curve[:, -5:]
    assert np.allclose(frozen, frozen[:, :1])


def test_parse_maps():
    np.testing.assert_array_equal(parse_maps("0-3,7, 5", 10), [0, 1, 2, 3, 5, 7])
    np.testing.assert_array_equal(parse_maps(None, 3), [0, 1, 2])
    with pytest.raises(UsageError, match="map 12 out of range; this layer has maps 0–9"):
        parse_maps("2,12", 10)
    for bad in ("3-1", "a", "1-", "1,,2"):
        with pytest.raises(UsageError, match="use indices and ranges like 0-15,31"):
            parse_maps(bad, 10)


def test_filters_and_kernels_commands(trained, run_cli, tmp_path):
    result = run_cli("filters", "--layer", "conv1,dense1", "--maps", "0-5", "--steps", "8",
                     "--scales", "7", "--pixel-starts", "1", "--data-starts", "2",
                     "--snapshots", "0,8", "--save-arrays", "--per-scale",
                     "--trained-dir", trained, "--outputs-dir", tmp_path)
    assert result.code == 0, result.output
    assert "conv1: 6/6 maps with a positive objective" in result.out
    assert "6/6 above their best test image, median ×" in result.out
    gallery = tmp_path / "a2"
    arrays = np.load(gallery / "filters" / "conv1" / "patterns-conv1.npz")
    assert arrays["input"].shape == (6, 28, 28, 1) and list(arrays["maps"]) == list(range(6))
    assert ((arrays["pixels"] >= 0) & (arrays["pixels"] <= 255)).all()
    assert arrays["all_objectives"].shape == (6, 4)  # 1 scale + 1 pixel noise + 2 dataset images
    assert result_files(gallery, "filters") == {
        f"filters/{layer}/{name}" for layer in ("conv1", "dense1") for name in (
            f"evolution-{layer}.png", f"patterns-{layer}-scale-7.png", f"patterns-{layer}.npz",
            f"patterns-{layer}.png", f"patterns-{layer}-pixel-noise.png",
            f"patterns-{layer}-dataset.png", f"patterns-{layer}.json")}
    report = json.loads((gallery / "filters" / "conv1" / "patterns-conv1.json").read_text())
    assert report["curve_steps"] == [0, 8] and len(report["patterns"]) == 6
    for row, value in zip(report["patterns"], arrays["objective"]):
        assert row["reached"] == pytest.approx(float(value), rel=1e-6)
        assert row["reached"] >= row["best_image_value"] and row["curve"][0] <= row["reached"]
        assert set(row["starts"]) == {"noise 7 px", "pixel noise #1", "dataset image 1", "dataset image 2"}
    np.testing.assert_allclose([r["best_image_value"] for r in report["patterns"]],
                               arrays["reference"], rtol=1e-6)
    from cnnviz.model import load_model

    loaded = load_model("a2", trained)  # the reference is the best test image, computed here
    x_test = np.load(_small_npz(trained))["x_test"].astype(np.float32)
    best = fed_back(loaded, "conv1", loaded.preprocessing.apply(x_test)).mean(axis=(1, 2)).max(axis=0)
    np.testing.assert_allclose(arrays["reference"], best[:6], rtol=1e-4)

    result = run_cli("kernels", "--trained-dir", trained, "--outputs-dir", tmp_path)
    assert result.code == 0, result.output
    assert result_files(gallery, "kernels") == {f"kernels/conv{i}/kernels-conv{i}.{ext}"
                                                 for i in (1, 2, 3) for ext in ("png", "npz")}
    from cnnviz.model import load_model

    model = load_model("a2", trained).model
    for i in (1, 2, 3):
        with np.load(gallery / "kernels" / f"conv{i}" / f"kernels-conv{i}.npz") as z:
            np.testing.assert_array_equal(z["kernels"], model.get_layer(f"conv{i}").get_weights()[0])
    manifest = json.loads((gallery / "manifest.json").read_text())
    assert {e["command"] for e in manifest["entries"]} == {"filters", "kernels"}


def _small_npz(trained):
    """The .npz the test bundle was trained on (its run.json records the path)."""
    run = json.loads((trained / "a2" / "run.json").read_text())
    return run["data"]["path"]


def test_filters_objective_expressions_classes_and_diversity(trained, run_cli, tmp_path):
    result = run_cli("filters", "--objective", "conv3:17 - 0.5*conv3:4; output:7", "--steps", "6",
                     "--trained-dir", trained, "--outputs-dir", tmp_path)
    assert result.code == 0, result.output
    report = json.loads((tmp_path / "a2" / "filters" / "objectives" / "patterns-objectives.json").read_text())
    assert [p["objective"] for p in report["patterns"]] == ["conv3:17 - 0.5*conv3:4", "output:7"]
    assert "objectives: " in result.out

    result = run_cli("filters", "--layer", "output", "--steps", "6", "--trained-dir", trained,
                     "--outputs-dir", tmp_path)
    assert result.code == 0, result.output
    report = json.loads((tmp_path / "a2" / "filters" / "output" / "patterns-output.json").read_text())
    assert len(report["patterns"]) == 10 and all("predicted" in p for p in report["patterns"])

    result = run_cli("filters", "--layer", "conv3", "--maps", "5", "--diversity", "3", "--steps", "6",
                     "--trained-dir", trained, "--outputs-dir", tmp_path)
    assert result.code == 0, result.output
    assert (tmp_path / "a2" / "filters" / "conv3" / "diverse-conv3.png").exists()
    written = json.loads((tmp_path / "a2" / "filters" / "conv3" / "patterns-conv3.json").read_text())
    assert written["settings"]["diversity"] == 3
    assert result.err == ""  # no progress bar's leftovers when stderr is no terminal


def result_files(gallery, folder):
    manifest = json.loads((gallery / "manifest.json").read_text())
    listed = {e["path"] for e in manifest["entries"] if e["path"].startswith(folder + "/")}
    on_disk = {str(p.relative_to(gallery)) for p in (gallery / folder).rglob("*") if p.is_file()}
    assert listed == on_disk
    return listed


BAD = [
    ("filters", ["--layer", "conv9"], 2, r"unknown layer conv9; valid: conv1, pool1"),
    ("filters", ["--layer", "flatten"], 2, r"unknown layer flatten; valid:"),
    ("filters", ["--layer", "conv1", "--maps", "40"], 2, r"map 40 out of range; this layer has maps 0–31"),
    ("filters", ["--maps", "5-2"], 2, r"use indices and ranges like 0-15,31"),
    ("filters", ["--scales", "0"], 2, r"--scales: each length scale must be 1–"),
    ("filters", ["--scales", "3,29"], 2, r"--scales: .* got 29"),
    ("filters", ["--steps", "0"], 2, r"--steps must be ≥ 1, got 0"),
    ("filters", ["--steps", "10", "--snapshots", "0,20"], 2, r"--snapshots: step 20 is outside 0–10"),
    ("filters", ["--starts", "-1"], 2, r"--starts must be ≥ 0"),
    ("filters", ["--starts", "0", "--pixel-starts", "0", "--data-starts", "0"], 2, r"--starts must be ≥ 1"),
    ("filters", ["--objective", "conv3:99"], 2, r"map 99 out of range; conv3 has maps 0–63"),
    ("filters", ["--objective", "conv3:1", "--layer", "conv3"], 2, r"drop --layer and --maps"),
    ("filters", ["--objective", "conv3 plus"], 2, r"use LAYER:MAP"),
    ("filters", ["--regularise", "tv=-1"], 2, r"--regularise 'tv=-1': use NAME=VALUE with NAME one of tv, l1, l2, blur"),
    ("filters", ["--transform", "spin=3"], 2, r"--transform 'spin=3': use NAME=VALUE with NAME one of jitter"),
    ("filters", ["--diversity", "0"], 2, r"--diversity must be 1–64 patterns"),
    ("kernels", ["--layer", "pool1"], 2, r"pool1 is not a convolution; kernels exist for: conv1, conv2, conv3"),
    ("kernels", ["--layer", "nope"], 2, r"unknown layer nope"),
]


@pytest.mark.parametrize("command, args, code, message", BAD, ids=[f"{c} {' '.join(a)}" for c, a, *_ in BAD])
def test_bad_input(command, args, code, message, trained, run_cli, tmp_path):
    out = tmp_path / "out"
    result = run_cli(command, *args, "--trained-dir", trained, "--outputs-dir", out)
    assert_one_line_error(result, code, message)
    assert not out.exists()
