"""trace and verify (issue 31): one value's arithmetic and an independent NumPy forward pass.
References are built here: keras.Model sub-models for the values, a naive loop for the
vectorised convolution, and a layer that computes something other than its configuration."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from conftest import assert_one_line_error
from zoo import ZOO

import cnnviz
from cnnviz.graph import graph_of
from cnnviz.probes.forward64 import conv2d, conv2d_naive, depthwise2d, forward, verify
from cnnviz.probes.trace import trace_value

L = keras.layers


def every_kind() -> keras.Model:
    """Strides, dilation, depthwise and separable convolutions, padding and cropping, BN,
    PReLU/LeakyReLU/ELU, average pooling with `same`, merges and a colour input."""
    inputs = keras.Input((24, 20, 3))
    x = L.Normalization(mean=[90.0, 110.0, 130.0], variance=[3600.0, 2500.0, 1600.0],
                        name="norm")(inputs)
    x = L.ZeroPadding2D(((1, 2), (0, 1)), name="pad")(x)
    a = L.Conv2D(6, (3, 5), strides=2, padding="same", name="strided")(x)
    a = L.BatchNormalization(name="bn")(a)
    a = L.PReLU(name="prelu")(a)
    b = L.SeparableConv2D(6, 3, dilation_rate=2, padding="same", depth_multiplier=2,
                          activation="elu", name="separable")(a)
    c = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="depthwise")(a)
    c = L.LeakyReLU(0.1, name="leaky")(c)
    c = L.Conv2D(6, 1, activation="tanh", name="squeeze")(c)
    merged = L.Average(name="average")([b, c])
    product = L.Multiply(name="multiply")([merged, b])
    diff = L.Subtract(name="subtract")([product, c])
    joined = L.Concatenate(name="concat")([diff, merged])
    pooled = L.AveragePooling2D(3, strides=2, padding="same", name="avgpool")(joined)
    cropped = L.Cropping2D(((1, 0), (0, 1)), name="crop")(pooled)
    x = L.GlobalMaxPooling2D(name="gmp")(cropped)
    x = L.Dense(8, activation="gelu", name="hidden")(x)
    x = L.Dropout(0.3, name="drop")(x)
    model = keras.Model(inputs, L.Dense(5, activation="softmax", name="output")(x))
    bn = model.get_layer("bn")  # statistics that are not the defaults 0 and 1
    rng = np.random.default_rng(3)
    bn.set_weights([rng.uniform(0.5, 1.5, 6), rng.normal(0, 0.2, 6), rng.normal(0, 0.3, 6),
                    rng.uniform(0.2, 2.0, 6)])
    return model


def sub_model_value(model, layer: str, inputs: np.ndarray) -> np.ndarray:
    """The layer's output for the inputs, from Keras sub-models built here (`outer/inner`:
    the nested model's own sub-model, fed what the outer model feeds it)."""
    if "/" in layer:
        outer, inner = layer.split("/", 1)
        nested = model.get_layer(outer)
        fed = keras.Model(model.inputs, nested._inbound_nodes[0].input_tensors[0])([inputs])
        return sub_model_value(nested, inner, np.asarray(fed))
    return np.asarray(keras.Model(model.inputs, model.get_layer(layer).output)([inputs]))


@pytest.mark.parametrize("strides,padding,dilation", [
    ((1, 1), "valid", (1, 1)), ((2, 2), "same", (1, 1)), ((2, 1), "valid", (1, 1)),
    ((1, 1), "same", (2, 2)), ((1, 1), "valid", (3, 2))])
def test_the_naive_and_the_vectorised_convolution_agree_and_equal_keras(strides, padding, dilation):
    rng = np.random.default_rng(0)
    x, kernel = rng.normal(size=(2, 11, 9, 3)), rng.normal(size=(3, 2, 3, 4))
    fast = conv2d(x, kernel, strides, padding, dilation)
    np.testing.assert_allclose(fast, conv2d_naive(x, kernel, strides, padding, dilation),
                               rtol=0, atol=1e-12)
    layer = L.Conv2D(4, (3, 2), strides=strides, padding=padding, dilation_rate=dilation,
                     use_bias=False)
    layer.build((None, 11, 9, 3))
    layer.set_weights([kernel.astype(np.float32)])
    np.testing.assert_allclose(fast, np.asarray(layer(x.astype(np.float32))), rtol=1e-5,
                               atol=1e-5)
    depth = rng.normal(size=(3, 3, 3, 2))
    split = [conv2d(x[..., c:c + 1], depth[:, :, c:c + 1, :], strides, padding, dilation)
             for c in range(3)]
    np.testing.assert_allclose(depthwise2d(x, depth, strides, padding, dilation),
                               np.concatenate(split, axis=-1), atol=1e-12)


@pytest.mark.parametrize("name", list(ZOO) + ["every_kind"])
def test_verify_passes_on_every_model_of_the_zoo(name):
    model = every_kind() if name == "every_kind" else ZOO[name]()
    rng = np.random.default_rng(1)
    inputs = rng.uniform(0, 1, (6, *model.inputs[0].shape[1:])).astype(np.float32)
    found = verify(model, inputs, batch=4)
    assert found.stopped_at is None and found.ok, [(c.address, c.max_rel) for c in found.layers]
    assert [c.address for c in found.layers] == [s.address for s in graph_of(model).steps
                                                 if not s.nested]


@pytest.mark.parametrize("name", ["every_kind", "nested", "residual", "mobilenet"])
def test_every_traced_value_equals_the_network_and_its_terms_add_up(name):
    model = every_kind() if name == "every_kind" else ZOO[name]()
    rng = np.random.default_rng(2)
    inputs = rng.uniform(0, 255 if name == "every_kind" else 1,
                         (1, *model.inputs[0].shape[1:])).astype(np.float32)
    steps = [s for s in graph_of(model).steps if not s.nested]
    for step in steps[::5] if name == "mobilenet" else steps:
        shape = step.shape
        expected = sub_model_value(model, step.address, inputs)[0]
        for _ in range(3):
            index = int(rng.integers(shape[-1]))
            at = (int(rng.integers(shape[1])), int(rng.integers(shape[2]))) \
                if len(shape) == 4 else None
            t = trace_value(model, inputs, step.address, index, at)
            value = expected[(*at, index)] if at else expected[index]
            assert t.ok and abs(t.traced - value) <= 1e-5 * max(t.scale, abs(value), 1e-12), \
                (step.address, t.summary())
            core = t.steps[0]
            if "products" in core.arrays:  # Σ products (+ bias) is the pre-activation
                total = core.arrays["products"].sum() + core.numbers.get("bias", 0.0)
                assert np.isclose(total, core.numbers.get("pre_activation", core.value),
                                  rtol=1e-12, atol=1e-12)


def test_trace_follows_bn_and_relu_back_to_the_convolution():
    model = ZOO["bn_gap"]()
    inputs = np.random.default_rng(4).uniform(0, 1, (1, 28, 28, 1)).astype(np.float32)
    t = trace_value(model, inputs, "relu1", 5, (10, 7))
    assert [s.layer for s in t.steps] == ["conv1", "bn1", "relu1"]
    assert set(t.steps[1].numbers) == {"mean", "variance", "epsilon", "gamma", "beta"}
    assert t.field == (10, 7, 13, 10) and t.ok


def test_a_layer_that_computes_something_else_is_a_deviation_and_an_unknown_one_is_named(
        tmp_path, run_cli, small_npz):
    @keras.saving.register_keras_serializable(package="cnnviz_tests")
    class PlusOne(L.Conv2D):
        def call(self, inputs):
            return super().call(inputs) + 1.0

    inputs = keras.Input((28, 28, 1))
    x = L.Conv2D(4, 3, activation="relu", name="honest")(inputs)
    x = PlusOne(4, 3, name="liar")(x)
    x = L.Flatten()(x)
    keras.Model(inputs, L.Dense(10, activation="softmax", name="output")(x)).save(
        tmp_path / "liar.keras")
    done = run_cli("--trust-model", "verify", tmp_path / "liar.keras", "--images", "8",
                   "--data", small_npz, "--outputs-dir", tmp_path / "out")
    assert_one_line_error(done, 1, "DEVIATES at liar")
    assert "honest" in done.out and "liar" in done.out
    report = json.loads((tmp_path / "out" / "liar" / "verify" / "verify.json").read_text())
    assert [(r["layer"], r["ok"]) for r in report["layers"][:2]] == [("honest", True),
                                                                      ("liar", False)]

    inputs = keras.Input((28, 28, 1))
    x = L.Conv2D(4, 3, name="conv")(inputs)
    x = L.UnitNormalization(name="unit")(x)
    x = L.Flatten()(x)
    keras.Model(inputs, L.Dense(10, name="output")(x)).save(tmp_path / "odd.keras")
    done = run_cli("verify", tmp_path / "odd.keras", "--images", "4", "--data", small_npz,
                   "--outputs-dir", tmp_path / "out")
    assert_one_line_error(done, 1, r"stopped at unit \(UnitNormalization\): no NumPy "
                                   "implementation")


def test_trace_and_verify_commands_end_to_end(trained, small_npz, tmp_path, run_cli):
    common = ("--trained-dir", trained, "--data", small_npz, "--outputs-dir", tmp_path)
    done = run_cli("trace", "a2", "--layer", "conv2", "--map", "7", "--at", "3,4", "--image",
                   "17", *common)
    assert done.code == 0, done.output
    folder = tmp_path / "a2" / "trace"
    numbers = json.loads((folder / "trace-conv2-7-3-4-test-image-00017.json").read_text())
    m = cnnviz.load("a2", trained_dir=trained, data=small_npz)
    expected = m.activations([17], layers="conv2")["conv2"][0, 3, 4, 7]
    assert numbers["ok"] and abs(numbers["reported"] - expected) < 1e-6
    assert np.array_equal(np.asarray(numbers["steps"][0]["arrays"]["products"]).shape, (3, 3, 32))
    assert (folder / "trace-conv2-7-3-4-test-image-00017.png").is_file()
    assert f"traced {numbers['traced']:.6g}" in done.out

    done = run_cli("verify", "a2", "--images", "40", *common)
    assert done.code == 0, done.output
    report = json.loads((tmp_path / "a2" / "verify" / "verify.json").read_text())
    assert report["ok"] and report["images"] == 40 and len(report["layers"]) == 8
    listed = {e["path"] for e in json.loads((tmp_path / "a2" / "manifest.json").read_text())[
        "entries"]}
    assert {"verify/verify.json", "verify/verify.png",
            "trace/trace-conv2-7-3-4-test-image-00017.json"} <= listed


@pytest.mark.parametrize("args,fragment", [
    (("--layer", "conv2", "--at", "11,0"), r"at \(11, 0\): give a position .* within conv2's 11×11"),
    (("--layer", "conv2", "--map", "64", "--at", "1,1"), "map 64 out of range; conv2 has maps 0–63"),
    (("--layer", "dense1", "--at", "1,1"), "dense1 has no positions"),
    (("--layer", "nosuch",), "unknown layer nosuch"),
    (("--layer", "conv2", "--at", "a,b"), "give a row and a column"),
])
def test_trace_refuses_what_is_not_there(trained, small_npz, tmp_path, run_cli, args, fragment):
    done = run_cli("trace", "a2", *args, "--trained-dir", trained, "--data", small_npz,
                   "--outputs-dir", tmp_path)
    assert_one_line_error(done, 2, fragment)
    assert not (tmp_path / "a2").exists()


def test_the_library_traces_and_verifies_like_the_command(trained, small_npz):
    m = cnnviz.load("a2", trained_dir=trained, data=small_npz)
    t = m.trace(17, "conv3", map=5, at=(2, 1))
    assert t.ok and t.steps[0].layer == "conv3"
    direct = sub_model_value(m.model, "conv3", m.loaded.preprocessing.apply(
        m.images_of([17])[0]))[0, 2, 1, 5]
    assert abs(t.reported - direct) < 1e-6
    assert m.verify(16).ok and m.verify(8, progress=False).ok


def test_the_atlas_page_states_the_verification(atlas):
    page = (atlas / "index.html").read_text()
    assert '<p class="verified">verified: an independent float64 NumPy pass equals Keras' in page


def test_the_numpy_pass_is_independent_of_tensorflow():
    """forward() never calls a layer: it would still run with every layer's call broken."""
    model = ZOO["residual"]()
    inputs = np.random.default_rng(5).uniform(0, 1, (2, 28, 28, 1)).astype(np.float32)
    expected = np.asarray(model([inputs]))
    for layer in model.layers:
        layer.call = lambda *a, **k: (_ for _ in ()).throw(AssertionError("Keras was called"))
    np.testing.assert_allclose(forward(model, inputs, ["output"])[0], expected, rtol=1e-5)
