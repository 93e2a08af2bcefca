"""Optimal input patterns: batched = one map at a time, rising objectives, the dead-map fallback."""

import json

import keras
import numpy as np
import pytest

from conftest import assert_one_line_error
from cnnviz.errors import UsageError
from cnnviz.probes.patterns import PatternSettings, optimal_patterns, parse_maps, response


@pytest.mark.parametrize("chunk", [32, 3], ids=["one-chunk", "chunks-with-padding"])
def test_one_batch_equals_one_map_at_a_time(loaded, chunk, monkeypatch):
    from cnnviz.probes import patterns

    monkeypatch.setattr(patterns, "GRADIENT_CHUNK", chunk)  # 8 items: 3 + 3 + 2 (+1 padding)
    settings = PatternSettings(steps=12, scales=(7, 28), starts=1)
    maps = np.array([0, 3, 5, 9])
    together = optimal_patterns(loaded.model, "conv2", maps, loaded.preprocessing, settings)
    for i, m in enumerate(maps):
        alone = optimal_patterns(loaded.model, "conv2", np.array([m]), loaded.preprocessing, settings)
        np.testing.assert_allclose(together.scale_inputs[i], alone.scale_inputs[0], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(together.objective[i], alone.objective[0], rtol=1e-4, atol=1e-5)


def test_objective_rises_for_every_live_map_and_every_map_gets_a_pattern(loaded):
    settings = PatternSettings(steps=40, scales=(3, 14), starts=1)
    result = optimal_patterns(loaded.model, "conv3", np.arange(64), loaded.preprocessing, settings)
    live = result.start_objective > 0
    assert (result.objective[live] > result.start_objective[live]).all()
    assert (result.best_objective > 0).all()


def test_reported_objective_is_what_the_network_gives_for_the_saved_input(loaded):
    settings = PatternSettings(steps=10, scales=(7,), starts=2, objective="center")
    result = optimal_patterns(loaded.model, "pool2", np.arange(8), loaded.preprocessing, settings)
    post = keras.Model(loaded.model.input, loaded.model.get_layer("pool2").output)(result.best_inputs)
    post = np.asarray(post)
    centre = post[np.arange(8), 2, 2, np.arange(8)]
    np.testing.assert_allclose(result.best_objective, centre, rtol=1e-5, atol=1e-6)


def test_a_dead_start_is_recovered_by_the_pre_activation(loaded, tmp_path):
    """Map 0 of conv2 is silenced for every start by lowering its bias; only the fallback
    gives it a gradient."""
    model = keras.models.clone_model(loaded.model)
    model.set_weights(loaded.model.get_weights())
    settings = PatternSettings(steps=60, scales=(7,), starts=2)
    from cnnviz.probes.patterns import starting_images

    starts = loaded.preprocessing.apply(starting_images(np.array([0, 0]), settings,
                                                        np.array([0, 0]), np.array([0, 1])))
    pre, _ = response(model, "conv2")(starts)
    kernel, bias = model.get_layer("conv2").get_weights()
    bias[0] -= float(np.asarray(pre)[..., 0].max()) + 0.5
    model.get_layer("conv2").set_weights([kernel, bias])

    off = optimal_patterns(model, "conv2", np.array([0]), loaded.preprocessing,
                           PatternSettings(steps=60, scales=(7,), starts=2, pre_activation="off"))
    assert (off.start_objective == 0).all() and (off.objective == 0).all()  # stuck: no gradient
    auto = optimal_patterns(model, "conv2", np.array([0]), loaded.preprocessing, settings)
    assert (auto.start_objective == 0).all() and auto.best_objective[0] > 0


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
                     "--scales", "7", "--starts", "1", "--snapshots", "0,8", "--save-arrays",
                     "--per-scale", "--trained-dir", trained, "--outputs-dir", tmp_path)
    assert result.code == 0, result.output
    assert "conv1: 6/6 maps with a positive objective" in result.out
    gallery = tmp_path / "a2"
    arrays = np.load(gallery / "filters" / "conv1" / "patterns-conv1.npz")
    assert arrays["input"].shape == (6, 28, 28, 1) and list(arrays["maps"]) == list(range(6))
    assert ((arrays["pixels"] >= 0) & (arrays["pixels"] <= 255)).all()
    assert result_files(gallery, "filters") == {
        "filters/conv1/evolution-conv1.png", "filters/conv1/patterns-conv1-scale-7.png",
        "filters/conv1/patterns-conv1.npz", "filters/conv1/patterns-conv1.png",
        "filters/dense1/evolution-dense1.png", "filters/dense1/patterns-dense1-scale-7.png",
        "filters/dense1/patterns-dense1.npz", "filters/dense1/patterns-dense1.png"}

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
    ("filters", ["--starts", "0"], 2, r"--starts must be ≥ 1"),
    ("kernels", ["--layer", "pool1"], 2, r"pool1 is not a convolution; kernels exist for: conv1, conv2, conv3"),
    ("kernels", ["--layer", "nope"], 2, r"unknown layer nope"),
]


@pytest.mark.parametrize("command, args, code, message", BAD, ids=[f"{c} {' '.join(a)}" for c, a, *_ in BAD])
def test_bad_input(command, args, code, message, trained, run_cli, tmp_path):
    out = tmp_path / "out"
    result = run_cli(command, *args, "--trained-dir", trained, "--outputs-dir", out)
    assert_one_line_error(result, code, message)
    assert not out.exists()
