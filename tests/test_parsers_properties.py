"""Property-based tests (hypothesis) of the parsers of user input: map ranges, comma lists
of layers and integers, settings files."""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnviz.cli import parse_int_list
from cnnviz.errors import UsageError
from cnnviz.spec import PRESETS, resolve_settings, specs_from_settings

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def as_ranges(indices: list[int]) -> list[str]:
    """[0, 1, 2, 5] → ['0-2', '5']: runs of consecutive indices as ranges."""
    parts, run = [], []
    for i in sorted(set(indices)):
        if run and i != run[-1] + 1:
            parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
            run = []
        run.append(i)
    if run:
        parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return parts


@SETTINGS
@given(count=st.integers(1, 128), data=st.data())
def test_map_ranges_give_back_the_chosen_maps(count, data):
    from cnnviz.probes.patterns import parse_maps

    chosen = data.draw(st.lists(st.integers(0, count - 1), min_size=1, max_size=40))
    parts = data.draw(st.permutations(as_ranges(chosen)))
    spaces = data.draw(st.sampled_from(["", " ", "  "]))
    text = ",".join(f"{spaces}{p}{spaces}" for p in parts)
    np.testing.assert_array_equal(parse_maps(text, count), sorted(set(chosen)))


@SETTINGS
@given(count=st.integers(1, 64), extra=st.integers(0, 500))
def test_a_map_beyond_the_layer_names_the_valid_range(count, extra):
    from cnnviz.probes.patterns import parse_maps

    with pytest.raises(UsageError, match=f"this layer has maps 0–{count - 1}"):
        parse_maps(f"0,{count + extra}", count)


@SETTINGS
@given(text=st.text(alphabet=string.digits + ",- xa", max_size=20))
def test_any_map_text_is_a_valid_selection_or_a_usage_error(text):
    from cnnviz.probes.patterns import parse_maps

    try:
        maps = parse_maps(text, 50)
    except UsageError as exc:
        assert str(exc).startswith("maps") and exc.param == "maps"  # the library's name
        assert exc.as_flag().startswith("--maps")  # the CLI's
    else:
        assert len(maps) and ((maps >= 0) & (maps < 50)).all() and (np.diff(maps) > 0).all()


@SETTINGS
@given(values=st.lists(st.integers(-10**6, 10**6), min_size=1, max_size=12))
def test_integer_lists_round_trip(values):
    assert parse_int_list("--scales", ",".join(map(str, values))) == values
    assert parse_int_list("--scales", " , ".join(map(str, values)) + ",") == values


@SETTINGS
@given(text=st.text(max_size=20))
def test_any_integer_list_text_parses_or_names_the_flag(text):
    try:
        values = parse_int_list("--image", text)
    except UsageError as exc:
        assert str(exc).startswith("--image takes integers separated by commas")
    else:
        assert values and all(isinstance(v, int) for v in values)


LAYERS = ["conv1", "pool1", "conv2", "pool2", "conv3", "dense1", "output"]


@pytest.fixture(scope="module")
def model():
    from cnnviz.model import build_model
    from cnnviz.spec import specs_from_settings

    network, _ = specs_from_settings(PRESETS["article2"])
    return build_model(network)


@SETTINGS
@given(data=st.data())
def test_layer_lists_resolve_in_model_order(model, data):
    from cnnviz.model import resolve_layers

    chosen = data.draw(st.lists(st.sampled_from(LAYERS), min_size=1, max_size=10))
    text = ",".join(f" {name}" if i % 2 else name for i, name in enumerate(chosen))
    assert resolve_layers(model, text) == [n for n in LAYERS if n in chosen]


@SETTINGS
@given(data=st.data())
def test_an_unknown_layer_lists_the_valid_ones(model, data):
    from cnnviz.model import resolve_layers

    good = data.draw(st.lists(st.sampled_from(LAYERS), max_size=3))
    bad = data.draw(st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1,
                            max_size=8).filter(lambda s: s not in LAYERS and s != "all"))
    with pytest.raises(UsageError, match=f"unknown layer {bad}; valid: {', '.join(LAYERS)}, all"):
        resolve_layers(model, ",".join(good + [bad]))


SETTING_VALUES = {
    "epochs": st.integers(1, 200), "batch_size": st.integers(1, 1024), "seed": st.integers(0, 2**31),
    "learning_rate": st.floats(1e-6, 1.0), "momentum": st.floats(0.0, 0.99),
    "optimizer": st.sampled_from(["rmsprop", "adam", "sgd"]),
    "conv": st.lists(st.integers(1, 64), min_size=1, max_size=3),
    "dense": st.lists(st.integers(1, 128), min_size=1, max_size=2),
}


def toml_value(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


@SETTINGS
@given(chosen=st.fixed_dictionaries({}, optional=SETTING_VALUES), fmt=st.sampled_from(["json", "toml"]),
       dashes=st.booleans())
def test_settings_files_round_trip_in_json_and_toml(chosen, fmt, dashes):
    keys = {k: (k.replace("_", "-") if dashes else k) for k in chosen}
    text = (json.dumps({keys[k]: v for k, v in chosen.items()}) if fmt == "json" else
            "".join(f"{keys[k]} = {toml_value(v)}\n" for k, v in chosen.items()))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"settings.{fmt}"
        path.write_text(text)
        _, resolved = resolve_settings(None, path)
    for key, value in chosen.items():
        assert resolved[key] == value, key
    for key, value in PRESETS["article2"].items():
        if key not in chosen:
            assert resolved[key] == value
    if len(resolved["conv"]) != 3:
        return  # article2's pools are set for three conv layers
    try:
        specs_from_settings(resolved)
    except UsageError as exc:  # the one combination the spec refuses
        assert resolved["optimizer"] == "adam" and resolved["momentum"] > 0, exc
        assert "momentum applies to rmsprop and sgd only" in str(exc)


@SETTINGS
@given(text=st.text(max_size=60), fmt=st.sampled_from(["json", "toml"]))
def test_any_settings_file_is_read_or_refused_with_a_usage_error(text, fmt):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"settings.{fmt}"
        path.write_text(text)
        try:
            resolve_settings(None, path)
        except UsageError as exc:
            assert str(path) in str(exc) or "must be" in str(exc) or "unknown" in str(exc)
