"""Hostile model files, objectives and inputs (issue 26, items 6–8 and 16–17): each refused
in one line naming what was wrong and what is valid, before any work, nothing written."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_one_line_error


def small_keras(path: Path) -> Path:
    import keras

    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(2, 3, name="c"),
                              keras.layers.Flatten(), keras.layers.Dense(10, name="out")])
    model.save(path)
    return path


def rewrite_config(source: Path, target: Path, config: bytes) -> Path:
    """A copy of a .keras archive with its config.json replaced (deflated)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            new.writestr(info.filename, config if info.filename == "config.json" else old.read(info))
    return target


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> Path:
    return small_keras(tmp_path_factory.mktemp("models") / "small.keras")


def test_a_small_file_that_declares_a_huge_layer_is_refused_before_it_is_built(run_cli, plain, tmp_path):
    import resource

    config = json.loads(zipfile.ZipFile(plain).read("config.json"))
    dense = next(layer for layer in config["config"]["layers"] if layer["config"]["name"] == "out")
    dense["config"]["units"] = 1_000_000
    bomb = rewrite_config(plain, tmp_path / "bomb.keras", json.dumps(config).encode())
    assert bomb.stat().st_size < 100_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run_cli("info", bomb)
    assert_one_line_error(result, 2, "declare 1,353,000,020 weights but the file holds")
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 500  # MB


def test_a_config_that_inflates_or_nests_deeply_is_refused(run_cli, plain, tmp_path):
    inflating = rewrite_config(plain, tmp_path / "big.keras", b" " * (20 * 2**20) + b"{}")
    assert inflating.stat().st_size < 200_000
    assert_one_line_error(run_cli("info", inflating), 2, "config.json is 20,971,522 bytes; at most")
    deep = rewrite_config(plain, tmp_path / "deep.keras", b"[" * 100_000 + b"]" * 100_000)
    assert_one_line_error(run_cli("info", deep), 2, "nests deeper than 200 levels")


def test_real_models_are_counted_closely_and_pass(plain, tmp_path):
    import keras

    from cnnviz.archive import check_keras_archive, declared_parameters

    check_keras_archive(plain)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), alpha=0.35)
    model.save(tmp_path / "mobile.keras")
    check_keras_archive(tmp_path / "mobile.keras")
    counted = declared_parameters(json.loads(zipfile.ZipFile(tmp_path / "mobile.keras").read("config.json")))
    assert abs(counted - model.count_params()) / model.count_params() < 0.01


# ---- objectives: one validation however they are made (items 7 and 8) ----------------------

@pytest.mark.parametrize("make, fragment", [
    (lambda c: c.channel("conv3", -1), "map must be an integer ≥ 0, got -1"),
    (lambda c: c.channel("conv3", 1.5), "map must be an integer ≥ 0, got 1.5"),
    (lambda c: c.channel("conv3", True), "map must be an integer ≥ 0, got True"),
    (lambda c: c.neuron("conv3", 0, (-1, -1)), "position must be an integer ≥ 0, got -1"),
    (lambda c: c.neuron("conv3", 0, (1,)), "position must be \\(row, column\\)"),
    (lambda c: float("nan") * c.channel("conv3", 1), "finite number, got nan"),
    (lambda c: c.Objective(((float("inf"), c.channel("conv3", 1).terms[0][1]),)), "finite number"),
])
def test_python_objectives_that_cannot_be_right_are_refused_when_made(make, fragment):
    import cnnviz

    with pytest.raises(cnnviz.UsageError, match=fragment):
        make(cnnviz)


@pytest.mark.parametrize("make, fragment", [
    (lambda c: c.channel("conv3", 64), "map 64 out of range; conv3 has maps 0–63"),
    (lambda c: c.neuron("dense1", 0, (0, 0)), "dense1 has no positions"),
    (lambda c: c.neuron("conv3", 0, (3, 0)), "position 3,0 is outside conv3's 3x3"),
    (lambda c: c.channel("nowhere", 0), "unknown layer nowhere"),
])
def test_python_objectives_are_checked_against_the_model_before_any_step(trained, small_npz,
                                                                         make, fragment):
    import cnnviz

    m = cnnviz.load("a2", trained_dir=trained, data=small_npz)
    with pytest.raises(cnnviz.UsageError, match=fragment):
        m.patterns(objective=make(cnnviz), steps=1)


@pytest.mark.parametrize("expression, fragment", [
    ("1e400*conv3:17", "the weight 1e400 is not finite"),
    (";", "has no expression"),
    (" ; ; ", "has no expression"),
    ("0*conv3:17", "the weight 0 is zero"),
    ("1e-400*conv3:17", "the weight 1e-400 is zero \\(or rounds to zero\\)"),
    ("conv3:17 - conv3:17", "its terms cancel"),
])
def test_objective_expressions_that_cannot_be_right(run_cli, trained, tmp_path, expression, fragment):
    result = run_cli("filters", "a2", "--objective", expression, "--trained-dir", trained,
                     "--outputs-dir", tmp_path / "out")
    assert_one_line_error(result, 2, fragment)
    assert not (tmp_path / "out").exists()


def test_the_center_keyword_in_any_case_and_many_terms_checked_once_per_layer(loaded, monkeypatch):
    from cnnviz.probes import objectives

    calls = []
    real = objectives.check_layers
    monkeypatch.setattr(objectives, "check_layers", lambda *a: calls.append(a) or real(*a))
    text = " + ".join(f"conv3:{k % 64}@{k % 3},{(k // 3) % 3}" for k in range(6000))
    found = objectives.parse_objective(text, loaded.model)
    assert len(calls) == 1 and len(found.terms) == 64 * 9
    weights = {str(t): w for w, t in found.terms}
    expected: dict[str, float] = {}
    for k in range(6000):
        key = f"conv3:{k % 64}@{k % 3},{(k // 3) % 3}"
        expected[key] = expected.get(key, 0.0) + 1.0
    assert weights == expected


def test_center_in_capitals_is_the_keyword(run_cli, trained, tmp_path):
    result = run_cli("filters", "a2", "--objective", "CENTER", "--layer", "conv1", "--maps", "0",
                     "--steps", "2", "--scales", "7", "--data-starts", "0", "--trained-dir",
                     trained, "--outputs-dir", tmp_path / "out")
    assert result.code == 0, result.output
    summary = json.loads(next((tmp_path / "out").rglob("patterns-conv1.json")).read_text())
    assert summary["settings"]["objective"] == "center"


# ---- inputs and the Python API (items 16 and 17) -------------------------------------------

def test_a_std_that_is_zero_in_float32_is_refused():
    import cnnviz
    from cnnviz.inputs import Preprocessing

    for text in ("0,1e-300", "0,1e-46", "1e39,1"):
        with pytest.raises(cnnviz.UsageError, match="255 / STD finite in float32"):
            Preprocessing.parse(text)
    assert Preprocessing.parse("127.5,1e-3").std == np.float32(1e-3)


@pytest.mark.parametrize("maps", ["0-50000000", "0-99999999999", "99999999999"])
def test_a_huge_map_range_is_refused_before_it_is_built(run_cli, trained, tmp_path, maps):
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run_cli("filters", "a2", "--layer", "conv3", "--maps", maps, "--trained-dir", trained,
                     "--outputs-dir", tmp_path / "out")
    first_bad = "64" if "-" in maps else maps
    assert_one_line_error(result, 2, f"map {first_bad} out of range; this layer has maps 0–63")
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 200  # MB


def test_a_folder_with_no_images_says_so(run_cli, trained, tmp_path):
    (tmp_path / "empty" / "notes").mkdir(parents=True)
    (tmp_path / "empty" / "notes" / "readme.txt").write_text("no images here")
    result = run_cli("stats", "a2", "--data", tmp_path / "empty", "--trained-dir", trained,
                     "--outputs-dir", tmp_path / "out")
    assert_one_line_error(result, 2, "a folder with no images; give a folder of class subfolders")


def test_input_paths_that_exist_but_are_no_files_are_named_for_what_they_are(run_cli, trained, tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe")
    for given, fragment in (("/dev/zero", "is not a regular file"),
                            (tmp_path / "pipe", "is not a regular file"),
                            (tmp_path, "is a folder"),
                            (tmp_path / "none.png", "no such file")):
        for command in ("activations", "explain"):
            result = run_cli(command, "a2", "--input", given, "--trained-dir", trained,
                             "--outputs-dir", tmp_path / "out")
            assert_one_line_error(result, 2, f"--input {given}:? {fragment}")


@pytest.fixture(scope="module")
def opened(trained, small_npz):
    import cnnviz

    return cnnviz.load("a2", trained_dir=trained, data=small_npz)


API_CALLS = [
    (lambda c, m: c.load("a2", preprocess=5), "preprocess"),
    (lambda c, m: c.load(3.5), "model"),
    (lambda c, m: c.load("a2", trained_dir=7), "trained_dir"),
    (lambda c, m: c.load("a2", resize="no"), "resize"),
    (lambda c, m: m.activations(layers=["conv1", 5]), "layers"),
    (lambda c, m: m.activations(layers=[]), "layers"),
    (lambda c, m: m.activations(images=[1.7]), "images"),
    (lambda c, m: m.activations(images="three"), "images"),
    (lambda c, m: m.activations(images=np.zeros((0, 28, 28))), "images"),
    (lambda c, m: m.patterns("conv1", steps=2.5), "steps"),
    (lambda c, m: m.patterns("conv1", steps=True), "steps"),
    (lambda c, m: m.patterns("conv1", step_size=float("nan")), "step_size"),
    (lambda c, m: m.patterns("conv1", maps=[1.5]), "maps"),
    (lambda c, m: m.patterns("conv1", scales=[2.5]), "scales"),
    (lambda c, m: m.patterns("conv1", seed="x"), "seed"),
    (lambda c, m: m.explain(steps=float("nan")), "steps"),
    (lambda c, m: m.explain(samples=3.5), "samples"),
    (lambda c, m: m.explain(images=np.zeros((0, 28, 28))), "images"),
    (lambda c, m: m.explain(methods=[3]), "methods"),
    (lambda c, m: m.explain(patch=2.5), "patch"),
    (lambda c, m: m.stats(limit=2.5), "limit"),
    (lambda c, m: m.stats(top=0), "top"),
    (lambda c, m: c.live(m, port=-1), "port"),
    (lambda c, m: c.live(m, port=70000), "port"),
    (lambda c, m: c.live(m, host=5), "host"),
    (lambda c, m: m.atlas(steps=0.5), "steps"),
]


@pytest.mark.parametrize("call, param", API_CALLS, ids=[f"{k}-{p}" for k, (_, p) in enumerate(API_CALLS)])
def test_every_public_parameter_gets_a_usage_error_naming_it(opened, call, param):
    import cnnviz

    with pytest.raises(cnnviz.UsageError) as raised:
        call(cnnviz, opened)
    assert raised.value.param == param, str(raised.value)
    assert str(raised.value).startswith(param), str(raised.value)
