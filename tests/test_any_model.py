"""Any Keras image model: the zoo of tests/zoo.py through the library and every command.

Independent checks: activations against a keras.Model(inputs, outputs) built here,
receptive fields against the gradient footprint, the input fed against the formulas and
keras.applications' own preprocess_input.
"""

from __future__ import annotations

import json
import pickle

import keras
import numpy as np
import pytest
import tensorflow as tf

import cnnviz
from cnnviz.graph import graph_of
from cnnviz.inputs import Preprocessing
from cnnviz.model import layer_table
from zoo import ZOO, bn_relu_gap, non_square, rescaling_nested, residual_concat, rgb32
from conftest import assert_one_line_error


@pytest.fixture(scope="module")
def zoo_files(tmp_path_factory) -> dict:
    """Every zoo model saved with model.save (and so loaded back as a user's file is)."""
    folder = tmp_path_factory.mktemp("zoo")
    paths = {}
    for name, build in ZOO.items():
        keras.utils.set_random_seed(1)
        paths[name] = folder / f"{name}.keras"
        build().save(paths[name])
    return paths


def _independent(model: keras.Model, address: str):
    """x → the layer's output from a keras.Model built here (nested: through the inner
    model's own graph, fed what the outer graph gives it)."""
    if "/" not in address:
        return keras.Model(model.inputs[0], model.get_layer(address).output)
    outer, inner = address.split("/")
    nested = model.get_layer(outer)
    before = keras.Model(model.inputs[0], nested.input)
    inside = keras.Model(nested.inputs[0], nested.get_layer(inner).output)
    return lambda x: inside(before(x))


@pytest.mark.parametrize("name", list(ZOO))
def test_activations_equal_an_independent_forward_pass(name, zoo_files, sample):
    m = cnnviz.load(zoo_files[name])
    pixels = np.asarray(m.data().x_test[:3])
    result = m.activations(pixels)
    fed = m.loaded.preprocessing.apply(pixels)
    for address in m.layers[:12] + m.layers[-3:]:
        expected = np.asarray(_independent(m.model, address)(fed))
        np.testing.assert_allclose(result[address], expected, rtol=1e-4, atol=1e-5,
                                   err_msg=address)


def _footprint(model, address: str, position: tuple[int, int], trials: int = 6) -> np.ndarray:
    """Input pixels whose gradient reaches one output position (all channels summed),
    united over several random inputs."""
    probe = _independent(model, address)
    h, w, c = model.inputs[0].shape[1:]
    reached = np.zeros((h, w), bool)
    for seed in range(trials):
        x = tf.constant(np.random.default_rng(seed).normal(size=(1, h, w, c)).astype("float32"))
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = tf.reduce_sum(probe(x)[0, position[0], position[1], :])
        reached |= (np.abs(tape.gradient(out, x).numpy()[0]).sum(axis=-1) > 0)
    return reached


@pytest.mark.parametrize("build", [residual_concat, bn_relu_gap, non_square, rescaling_nested])
def test_receptive_fields_equal_the_gradient_footprint(build):
    keras.utils.set_random_seed(3)
    model = build()
    graph = graph_of(model)
    h, w = graph.input_shape[1:3]
    checked = 0
    for step in graph.steps:
        if step.nested or len(step.shape) != 4 or step.window is None:
            continue
        position = (step.shape[1] // 2, step.shape[2] // 2)
        rows, cols = np.nonzero(_footprint(model, step.address, position))
        for axis, (found, side, i) in enumerate(((rows, h, position[0]), (cols, w, position[1]))):
            window = step.window[axis]
            low, high = window.jump * i + window.low, window.jump * i + window.high
            assert (found.min(), found.max()) == (max(low, 0), min(high, side - 1)), step.address
        checked += 1
    assert checked >= 2


def test_the_table_marks_nested_models_and_reaches_their_layers():
    rows = layer_table(rescaling_nested())
    by_name = {r.name: r for r in rows}
    assert by_name["features"].nested and by_name["features/conv2"].depth == 1
    assert by_name["features/conv2"].receptive_field == (8, 8)
    assert by_name["features/conv2"].stride == (2, 2)
    assert [r.name for r in rows].index("features") < [r.name for r in rows].index("features/conv1")


def test_branches_give_the_union_of_their_fields():
    fields = {r.name: r.receptive_field for r in layer_table(residual_concat())}
    assert fields["b"] == (5, 5) and fields["add"] == (5, 5)  # a residual sees b's field
    assert fields["left"] == (10, 10) and fields["right"] == (14, 14)
    assert fields["concat"] == (14, 14)  # the wider branch


@pytest.mark.parametrize("kind, reference", [
    ("symmetric", keras.applications.mobilenet_v2.preprocess_input),
    ("caffe", keras.applications.vgg16.preprocess_input),
    ("torch", keras.applications.densenet.preprocess_input)])
def test_the_conventions_equal_keras_applications(kind, reference):
    pixels = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3)).astype("float32")
    prep = Preprocessing.parse(kind)
    np.testing.assert_allclose(prep.apply(pixels), reference(pixels.copy()), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(prep.invert(prep.apply(pixels)), pixels, atol=1e-3)


def test_unit_raw_and_mean_std_conventions():
    pixels = np.arange(0, 256, 4, dtype="float32").reshape(1, 8, 8)
    np.testing.assert_allclose(Preprocessing.parse("unit").apply(pixels)[..., 0], pixels / 255)
    np.testing.assert_allclose(Preprocessing.parse("raw").apply(pixels)[..., 0], pixels)
    np.testing.assert_allclose(Preprocessing.parse("100,50").apply(pixels)[..., 0],
                               (pixels - 100) / 50)
    low, high = Preprocessing.parse("symmetric").bounds((8, 8, 3))
    assert low.min() == -1 and high.max() == 1


def test_a_leading_rescaling_layer_is_fed_raw_pixels(zoo_files):
    m = cnnviz.load(zoo_files["nested"])
    assert m.loaded.preprocessing.kind == "raw" and "Rescaling" in m.loaded.preprocessing.origin
    pixels = np.asarray(m.data().x_test[:2])
    rescaled = m.activations(pixels, layers="rescale")["rescale"][..., 0]
    np.testing.assert_allclose(rescaled, pixels / 255.0, rtol=1e-6)  # divided once, not twice


def test_patterns_stay_within_real_pixels_for_every_convention():
    keras.utils.set_random_seed(0)
    model = rgb32()
    for kind in ("unit", "raw", "symmetric", "caffe", "torch", "127.5,60"):
        m = cnnviz.load(model, preprocess=kind)
        p = m.patterns("conv1", maps=[0, 1], steps=4, step_size=0.5, starts=1)
        low, high = m.loaded.preprocessing.bounds((32, 32, 3))
        fed = m.loaded.preprocessing.apply(p.pixels)
        assert p.pixels.shape == (2, 32, 32, 3)
        assert (fed >= low - 1e-4).all() and (fed <= high + 1e-4).all(), kind
        assert p.pixels.min() >= 0 and p.pixels.max() <= 255


def test_bn_and_relu_layers_get_patterns_and_a_linear_output_is_not_trapped():
    keras.utils.set_random_seed(0)
    m = cnnviz.load(bn_relu_gap())
    for layer in ("bn2", "relu2", "pool2", "gap"):
        p = m.patterns(layer, maps=range(4), steps=3, starts=1)
        assert p.pixels.shape == (4, 28, 28) and np.isfinite(p.objective).all()
    from cnnviz.probes.patterns import PatternSettings, optimal_patterns

    # bn2 has no pre-activation: "auto" must climb its own output, exactly as "off" does
    runs = [optimal_patterns(m.model, "bn2", np.arange(6), m.loaded.preprocessing,
                             PatternSettings(steps=12, step_size=0.3, scales=(7,), starts=1,
                                             pre_activation=mode)) for mode in ("auto", "off")]
    np.testing.assert_allclose(runs[0].objective, runs[1].objective, rtol=1e-5)
    assert (runs[0].objective > runs[0].start_objective).all()  # every map's output rose


def test_a_conv_before_bn_and_relu_points_at_the_activation(run_cli, tmp_path):
    keras.utils.set_random_seed(0)
    path = tmp_path / "bn.keras"
    bn_relu_gap().save(path)
    result = run_cli("filters", path, "--layer", "conv1", "--steps", "2", "--maps", "0",
                     "--starts", "1", "--outputs-dir", tmp_path / "out")
    assert result.code == 0, result.output
    assert "the maps the network passes on are relu1's (--layer relu1)" in result.output


def _manifest_paths(gallery) -> set[str]:
    return {e["path"] for e in json.loads((gallery / "manifest.json").read_text())["entries"]}


@pytest.mark.parametrize("name", list(ZOO))
def test_every_command_end_to_end(name, zoo_files, run_cli, tmp_path):
    """Each command on each zoo model (one or two layers each, to stay fast; the big-model
    choice of the atlas is tested on its own)."""
    path, out = zoo_files[name], tmp_path / "out"
    gallery = out / name
    common = ("--outputs-dir", out)
    info = run_cli("info", path, *common)
    assert info.code == 0 and "receptive field" in info.output, info.output
    m = cnnviz.load(path)
    assert all(a.split("/")[-1] in info.output for a in graph_of(m.model).addresses)
    conv = m.conv_layers[0]
    shapes = {n: graph_of(m.model).shape(n) for n in m.layers}
    last = [n for n, shape in list(shapes.items())[:12] if len(shape) == 4 and shape[-1] <= 64][-1]
    for args in (("activations", "--image", "0,1", "--layer", last),
                 ("filters", "--layer", last, "--maps", "0-1", "--steps", "2", "--starts", "1",
                  "--pixel-starts", "1", "--data-starts", "1"),
                 ("kernels", "--layer", conv),
                 ("stats", "--limit", "30", "--top", "2", "--layer", last),
                 ("atlas", "--steps", "2", "--limit", "30", "--top", "2", "--layer", f"{conv},{last}",
                  "--pixel-starts", "1", "--data-starts", "0",
                  *(() if name == "keras_example" else ("--no-explain",)))):
        result = run_cli(args[0], path, *args[1:], *common)
        assert result.code == 0, (args, result.output)
        assert "Traceback" not in result.output
    written = _manifest_paths(gallery)
    assert all((gallery / p).is_file() for p in written)
    for folder in ("activations/", "filters/", "kernels/", "stats/", "geometry/"):
        assert any(p.startswith(folder) for p in written), folder
    assert any(p.startswith("explain/") for p in written) == (name == "keras_example")  # --no-explain
    page = (gallery / "index.html").read_text()
    assert "input:" in page and m.loaded.preprocessing.describe() in page
    compared = run_cli("compare", path, path, "--limit", "20", "--layer", conv, *common)
    assert compared.code == 0, compared.output
    assert "1.000" in compared.output


def test_nested_layers_are_addressed_outer_slash_inner(zoo_files, run_cli):
    m = cnnviz.load(zoo_files["nested"])
    assert {"features/conv1", "features/pool1", "features/conv2"} <= set(m.layers)
    assert m.kernels("features/conv1").weights.shape == (3, 3, 1, 8)
    wrong = run_cli("activations", zoo_files["nested"], "--layer", "conv2")
    assert_one_line_error(wrong, 2, "unknown layer conv2", "features/conv2")


def test_a_shared_layer_is_addressed_once_per_call():
    inputs = keras.Input((16, 16, 1))
    shared = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="shared")
    twice = shared(shared(keras.layers.Conv2D(1, 1, name="squeeze")(inputs))[..., :1])
    model = keras.Model(inputs, keras.layers.Flatten()(twice))
    m = cnnviz.load(model)
    assert {"shared", "shared#2"} <= set(m.layers)
    x = np.random.default_rng(0).integers(0, 256, (2, 16, 16)).astype("float32")
    a = m.activations(x, layers="shared,shared#2")
    np.testing.assert_allclose(a["shared#2"], np.asarray(model(x[..., None] / 255.0)).reshape(2, 16, 16, 4),
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(a["shared"], a["shared#2"])
    rows = {r.name: r for r in layer_table(model)}
    assert rows["shared"].receptive_field == (3, 3)
    # after a Keras op cnnviz cannot follow (the slice), the field is unknown: "?", not a guess
    assert rows["shared#2"].field_text() == "?" and any(r.params == 0 for r in rows.values())


def test_depthwise_kernels_are_one_tile_per_map(zoo_files):
    m = cnnviz.load(zoo_files["mobilenet"], preprocess="symmetric")
    depthwise = m.kernels("expanded_conv_depthwise")
    assert depthwise.weights.shape[2] == 1 and depthwise.weights.shape[:2] == (3, 3)
    assert "Conv1" in m.conv_layers and m.kernels("Conv1").weights.shape[2] == 3


def test_a_big_model_atlas_picks_layers_and_says_so(zoo_files):
    from cnnviz.galleries.atlas import BIG_MODEL_MAPS, atlas_layers

    model = keras.models.load_model(zoo_files["mobilenet"])
    chosen = atlas_layers(model)
    graph = graph_of(model)
    every = cnnviz.load(model).layers
    resolutions = [graph.shape(n)[1:3] for n in chosen.layers if len(graph.shape(n)) == 4]
    assert sorted(resolutions) == sorted({graph.shape(n)[1:3] for n in every
                                          if len(graph.shape(n)) == 4})  # one per resolution
    for name in chosen.layers[:-1]:  # each the last of its resolution
        later = every[every.index(name) + 1:]
        assert all(graph.shape(n)[1:3] != graph.shape(name)[1:3] for n in later)
    assert chosen.layers[-1] == graph.output_address
    assert chosen.pattern_maps == BIG_MODEL_MAPS and "last layer of each resolution" in chosen.note
    assert len(atlas_layers(model, "all").layers) == len(cnnviz.load(model).layers)


def test_models_cnnviz_cannot_open_are_refused_in_one_line(tmp_path, run_cli):
    first = keras.Input((3, 32, 32))
    channels_first = keras.Model(first, keras.layers.Flatten()(first))
    channels_first.save(tmp_path / "cf.keras")
    assert_one_line_error(run_cli("info", tmp_path / "cf.keras"), 2, "channels-first")
    a, b = keras.Input((28, 28, 1)), keras.Input((28, 28, 1))
    two = keras.Model([a, b], keras.layers.Flatten()(keras.layers.Add()([a, b])))
    two.save(tmp_path / "two.keras")
    assert_one_line_error(run_cli("info", tmp_path / "two.keras"), 2, "2 inputs")
    small = keras.Input((4, 4, 1))
    keras.Model(small, keras.layers.Flatten()(small)).save(tmp_path / "small.keras")
    assert_one_line_error(run_cli("info", tmp_path / "small.keras"), 2, "at least 8x8")
    bad = run_cli("info", tmp_path / "two.keras", "--preprocess", "sideways")
    assert bad.code == 2


def test_a_folder_of_class_subfolders_streams_and_names_the_classes(tmp_path, zoo_files):
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (tmp_path / "pets" / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(
                tmp_path / "pets" / label / f"{i}.png")
    m = cnnviz.load(zoo_files["rgb32"], data=tmp_path / "pets")
    data = m.data()
    assert data.class_names == ("cat", "dog") and list(data.y_test) == [0, 0, 0, 1, 1, 1]
    assert not isinstance(data.x_test, np.ndarray)  # read when indexed, never all at once
    assert data.x_test[np.array([0, 5])].shape == (2, 32, 32, 3)
    s = m.stats(layers="conv2", top=2)
    assert s["conv2"].images == 6 and s["conv2"].class_mean.shape == (2, 16)


def test_images_of_another_shape_are_converted_or_refused(tmp_path, zoo_files, run_cli):
    rng = np.random.default_rng(0)
    path = tmp_path / "rgb16.npz"
    np.savez(path, x_train=rng.integers(0, 256, (20, 16, 16, 3), dtype=np.uint8),
             y_train=np.arange(20) % 10, x_test=rng.integers(0, 256, (12, 16, 16, 3), dtype=np.uint8),
             y_test=np.arange(12) % 10)
    ok = run_cli("stats", zoo_files["wide"], "--data", path, "--limit", "12", "--top", "1",
                 "--layer", "conv1", "--outputs-dir", tmp_path / "out")
    assert ok.code == 0 and "converted from 16x16x3 to 20x36x1" in ok.output, ok.output
    refused = run_cli("stats", zoo_files["wide"], "--data", path, "--no-resize",
                      "--outputs-dir", tmp_path / "out")
    assert_one_line_error(refused, 2, "16x16x3", "20x36x1", "--no-resize")
    from cnnviz.images import convert

    gray = convert(np.full((1, 16, 16, 3), [255, 0, 0], np.uint8), (8, 8))
    assert gray.shape == (1, 8, 8) and abs(int(gray[0, 4, 4]) - round(0.299 * 255)) <= 1


def test_cifar_from_the_keras_cache_allows_only_arrays(tmp_path, monkeypatch):
    from cnnviz.data import load_dataset
    from cnnviz.errors import CnnvizError

    folder = tmp_path / "keras-home" / "datasets" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for part in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": [1, 2, 3, 9]}
        (folder / part).write_bytes(pickle.dumps(batch))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    data = load_dataset("cifar10")
    assert data.x_train.shape == (20, 32, 32, 3) and data.class_names[9] == "truck"
    raw = (folder / "test_batch").read_bytes()
    np.testing.assert_array_equal(data.x_test[0, :, :, 0],
                                  pickle.loads(raw)[b"data"][0, :1024].reshape(32, 32))

    class Evil:
        def __reduce__(self):
            return (print, ("this ran",))

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(CnnvizError, match="not a readable CIFAR batch"):
        load_dataset("cifar10")
