"""Model building, layer table (receptive fields), layer resolution, loading .keras files."""

import keras
import numpy as np
import pytest

from cnnviz.errors import CnnvizError, UsageError
from cnnviz.model import build_model, layer_table, load_model, resolve_layers
from cnnviz.spec import resolve_settings, specs_from_settings


@pytest.fixture(scope="module")
def article2():
    network, training = specs_from_settings(resolve_settings("article2")[1])
    return build_model(network, training)


def test_layer_names_and_shapes(article2):
    rows = layer_table(article2)
    assert [r.name for r in rows] == ["conv1", "pool1", "conv2", "pool2", "conv3", "flatten",
                                      "dense1", "output"]
    assert [r.output_shape[1:] for r in rows][:5] == [(26, 26, 32), (13, 13, 32), (11, 11, 64),
                                                      (5, 5, 64), (3, 3, 64)]


def test_receptive_fields_as_the_article_derives(article2):
    fields = {r.name: (r.receptive_field, r.stride) for r in layer_table(article2)}
    assert fields["conv1"] == ((3, 3), (1, 1)) and fields["pool1"] == ((4, 4), (2, 2))
    assert fields["conv2"] == ((8, 8), (2, 2)) and fields["pool2"] == ((10, 10), (4, 4))
    assert fields["conv3"] == ((18, 18), (4, 4))
    assert fields["dense1"] == (None, None)


def test_receptive_field_matches_the_gradient_footprint(article2):
    """Independent check: the input pixels that influence one conv3 output."""
    import tensorflow as tf

    probe = keras.Model(article2.input, article2.get_layer("conv3").output)
    x = tf.Variable(np.random.default_rng(0).normal(size=(1, 28, 28, 1)).astype("float32"))
    with tf.GradientTape() as tape:
        # pre-activation would be cleaner; sum over channels keeps some path active
        out = tf.reduce_sum(probe(x)[0, 1, 1, :])
    grad = tape.gradient(out, x).numpy()[0, :, :, 0]
    rows, cols = np.nonzero(grad)
    assert rows.max() - rows.min() + 1 <= 18 and cols.max() - cols.min() + 1 <= 18
    assert rows.min() >= 4 and cols.min() >= 4  # position 1 starts at stride 4


def test_regularizers_follow_the_scope():
    network, training = specs_from_settings(resolve_settings("article3")[1])
    model = build_model(network, training)
    assert model.get_layer("conv1").kernel_regularizer is None
    assert model.get_layer("dense1").kernel_regularizer is not None
    _, everywhere = specs_from_settings(resolve_settings("article3", overrides={"reg_scope": "all"})[1])
    assert build_model(network, everywhere).get_layer("conv1").kernel_regularizer is not None


def test_resolve_layers(article2):
    assert resolve_layers(article2, "conv2") == ["conv2"]
    assert resolve_layers(article2, "pool1, conv1") == ["conv1", "pool1"]
    assert resolve_layers(article2, "all") == ["conv1", "pool1", "conv2", "pool2", "conv3",
                                               "dense1", "output"]
    with pytest.raises(UsageError, match="unknown layer conv9; valid: conv1, pool1, conv2"):
        resolve_layers(article2, "conv9")


def test_a_plain_keras_file_loads_with_unit_preprocessing(tmp_path, article2):
    path = tmp_path / "any.keras"
    article2.save(path)
    loaded = load_model(str(path), tmp_path / "trained")
    assert loaded.name == "any" and loaded.run == {} and loaded.preprocessing.kind == "unit"
    np.testing.assert_allclose(loaded.model.get_weights()[0], article2.get_weights()[0])


def test_a_corrupt_keras_file_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.keras"
    path.write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(CnnvizError, match="cannot load .*broken.keras: not a .keras \(zip\) archive"):
        load_model(str(path), tmp_path)


def test_a_missing_bundle_lists_the_available_ones(tmp_path):
    with pytest.raises(UsageError, match=r"no model bundle 'nope' .* \(bundles there: none\)"):
        load_model("nope", tmp_path)
    with pytest.raises(UsageError, match="no trained model in"):
        load_model(None, tmp_path)
