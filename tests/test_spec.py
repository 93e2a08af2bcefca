"""Settings: presets, validation messages, config files, the parameter count of article2."""

import json

import pytest

from cnnviz.errors import UsageError
from cnnviz.spec import (PRESETS, NetworkSpec, TrainSpec, resolve_settings,
                         specs_from_settings)


def specs(preset="article2", config=None, **overrides):
    return specs_from_settings(resolve_settings(preset, config, overrides)[1])


def conv_params(k, c_in, c_out):
    return c_out * (k * k * c_in + 1)


def test_article2_has_exactly_96844_parameters():
    from cnnviz.model import build_model, parameter_count

    network, training = specs()
    # by hand: 28 →conv3→ 26 →pool→ 13 →conv3→ 11 →pool→ 5 →conv3→ 3; flatten 3·3·64 = 576
    expected = (conv_params(3, 1, 32) + conv_params(3, 32, 64) + conv_params(3, 64, 64)
                + (576 * 70 + 70) + (70 * 10 + 10))
    assert expected == 96_844
    assert parameter_count(build_model(network, training)) == expected


def test_article3_settings_and_size():
    from cnnviz.model import build_model, parameter_count

    network, training = specs("article3")
    assert [c.filters for c in network.convs] == [32, 64, 128]
    assert [d.units for d in network.dense] == [120]
    assert (training.optimizer, training.momentum, training.schedule) == ("rmsprop", 0.9, "inverse-time")
    assert (training.learning_rate, training.decay_steps, training.decay_rate) == (0.001, 1, 0.001)
    assert (training.regularizer, training.reg_factor, training.reg_scope) == ("l2", 0.001, "dense")
    expected = (conv_params(3, 1, 32) + conv_params(3, 32, 64) + conv_params(3, 64, 128)
                + (1152 * 120 + 120) + (120 * 10 + 10))
    assert parameter_count(build_model(network, training)) == expected


def test_pools_default_after_every_conv_but_the_last():
    network, _ = specs()
    assert network.pools == (True, True, False)
    assert list(network.map_sizes()) == [("conv1", 26), ("pool1", 13), ("conv2", 11),
                                         ("pool2", 5), ("conv3", 3)]


def test_flags_override_config_which_overrides_preset(tmp_path):
    config = tmp_path / "s.json"
    config.write_text(json.dumps({"preset": "article3", "epochs": 7, "learning-rate": 0.01}))
    preset, settings = resolve_settings(None, config, {"epochs": 9, "dense": "none"})
    assert preset == "article3"
    network, training = specs_from_settings(settings)
    assert training.epochs == 9 and training.learning_rate == 0.01
    assert network.dense == () and [c.filters for c in network.convs] == [32, 64, 128]


def test_toml_config(tmp_path):
    config = tmp_path / "s.toml"
    config.write_text('conv = [8, 16]\nkernel = 5\noptimizer = "adam"\nmomentum = 0.0\n')
    network, training = specs(config=config)
    assert [(c.filters, c.kernel) for c in network.convs] == [(8, 5), (16, 5)]
    assert network.pools == (True, False) and training.optimizer == "adam"


@pytest.mark.parametrize("overrides, message", [
    ({"optimizer": "adagrad"}, r"optimizer 'adagrad'; valid: rmsprop, adam, nadam, adamax, sgd"),
    ({"schedule": "cosine"}, r"schedule 'cosine'; valid: none, inverse-time, exponential"),
    ({"conv_activation": "gelu"}, r"conv1 activation 'gelu'; valid: relu, sigmoid, elu, tanh"),
    ({"dense_activation": "swish"}, r"dense1 activation 'swish'"),
    ({"output_activation": "linear"}, r"output_activation 'linear'; valid: softmax, sigmoid"),
    ({"regularizer": "l3"}, r"regularizer 'l3'; valid: none, l1, l2"),
    ({"epochs": 0}, r"epochs must be an integer ≥ 1, got 0"),
    ({"batch_size": -4}, r"batch_size must be an integer ≥ 1, got -4"),
    ({"conv": "32,0,64"}, r"conv2 filters must be an integer ≥ 1, got 0"),
    ({"conv": "32,x"}, r"conv must be a comma list of integers"),
    ({"learning_rate": 0}, r"learning_rate must be > 0"),
    ({"optimizer": "adam"}, None),  # article2 has momentum 0: fine
    ({"preset_momentum": 1}, r"unknown setting 'preset_momentum'"),
    ({"kernel": "3,3"}, r"kernel: give one value or one per conv layer \(3\), got 2"),
    ({"pools": "1,maybe,0"}, r"pools must be a comma list of yes/no values"),
    ({"epochs": "five"}, r"epochs must be an integer, got 'five'"),
])
def test_invalid_settings_name_the_field_and_the_valid_values(overrides, message):
    if message is None:
        specs(**overrides)
        return
    with pytest.raises(UsageError, match=message):
        specs(**overrides)


def test_momentum_with_an_optimizer_that_has_none_is_refused():
    with pytest.raises(UsageError, match="momentum applies to rmsprop and sgd only"):
        specs("article3", optimizer="adam")


def test_unknown_preset():
    with pytest.raises(UsageError, match="unknown preset 'article9'; valid: article2, article3"):
        resolve_settings("article9")


def test_conv_that_shrinks_below_one_pixel_names_the_layer():
    # 28 →5→ 24 →pool→ 12 →5→ 8 →pool→ 4; a third 5x5 kernel does not fit
    with pytest.raises(UsageError, match=r"conv3: kernel 5 does not fit its 4x4 input"):
        specs(conv="8,8,8", kernel=5, pools="1,1,0")


def test_pool_that_shrinks_below_one_pixel_names_the_layer():
    # 28 →26 →13 →11 →5 →3 →pool3 1; conv4 (k=1) 1 →pool4 0
    with pytest.raises(UsageError, match=r"pool4: its 1x1 input would shrink below 1x1"):
        specs(conv="4,4,4,4", kernel="3,3,3,1", pools="1,1,1,1")


def test_config_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{epochs: 3")
    with pytest.raises(UsageError, match=r"^config .*bad.json: not valid JSON") as raised:
        resolve_settings(None, bad)
    assert raised.value.as_flag().startswith("--config ")  # what the command line shows
    unknown = tmp_path / "u.toml"
    unknown.write_text("epoch = 3\n")
    with pytest.raises(UsageError, match=r"unknown setting\(s\) epoch; valid: conv, kernel"):
        resolve_settings(None, unknown)
    with pytest.raises(UsageError, match="no such file"):
        resolve_settings(None, tmp_path / "missing.json")


def test_specs_are_frozen():
    network, training = specs()
    from dataclasses import FrozenInstanceError

    with pytest.raises(FrozenInstanceError):
        training.epochs = 3  # type: ignore[misc]
    assert isinstance(network, NetworkSpec) and isinstance(training, TrainSpec)
    assert set(PRESETS) == {"article2", "article3"}
