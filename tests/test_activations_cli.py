"""`cnnviz activations` end to end, checked against NumPy computations of every layer."""

import json

import matplotlib.image
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from conftest import assert_one_line_error


@pytest.fixture(scope="module")
def weights(trained):
    from cnnviz.model import load_model

    model = load_model("a2", trained).model
    return {layer.name: layer.get_weights() for layer in model.layers}


def np_conv_relu(x, kernel, bias):
    windows = sliding_window_view(x, kernel.shape[:2], axis=(1, 2))  # N, H', W', C, kh, kw
    out = np.einsum("nhwcij,ijcf->nhwf", windows.astype(np.float64), kernel.astype(np.float64))
    return np.maximum(out + bias, 0)


def np_pool(x):
    n, h, w, c = x.shape
    return x[:, :h // 2 * 2, :w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def test_every_layer_matches_numpy(trained, weights, run_cli, tmp_path):
    out = tmp_path / "out"
    result = run_cli("activations", "--image", "3,17", "--layer", "all", "--save-arrays",
                     "--trained-dir", trained, "--outputs-dir", out)
    assert result.code == 0, result.output
    arrays = np.load(out / "a2" / "activations" / "test-image-00003-and-1-more.npz")
    np.testing.assert_array_equal(arrays["index"], [3, 17])
    x = arrays["input"]
    assert x.shape == (2, 28, 28, 1) and x.dtype == np.float32
    conv1 = np_conv_relu(x, *weights["conv1"])
    pool1 = np_pool(conv1)
    conv2 = np_conv_relu(pool1, *weights["conv2"])
    pool2 = np_pool(conv2)
    conv3 = np_conv_relu(pool2, *weights["conv3"])
    kernel, bias = weights["dense1"]
    dense1 = np.maximum(conv3.reshape(2, -1) @ kernel + bias, 0)
    for name, reference in (("conv1", conv1), ("pool1", pool1), ("conv2", conv2),
                            ("pool2", pool2), ("conv3", conv3), ("dense1", dense1)):
        np.testing.assert_allclose(arrays[name], reference, rtol=1e-4, atol=1e-5, err_msg=name)
    logits = dense1 @ weights["output"][0] + weights["output"][1]
    softmax = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(arrays["output"], softmax / softmax.sum(1, keepdims=True),
                               rtol=1e-4, atol=1e-6)


def test_the_input_is_the_bundles_preprocessing_of_the_dataset_image(trained, run_cli, tmp_path,
                                                                      small_npz):
    from cnnviz.data import load_dataset
    from cnnviz.model import load_model

    run_cli("activations", "--image", "17", "--layer", "conv1", "--save-arrays",
            "--trained-dir", trained, "--outputs-dir", tmp_path)
    saved = np.load(tmp_path / "a2" / "activations" / "test-image-00017.npz")["input"]
    prep = load_model("a2", trained).preprocessing
    expected = prep.apply(load_dataset("mnist", small_npz).x_test[17:18])
    np.testing.assert_array_equal(saved, expected)


def test_files_and_manifest(trained, run_cli, tmp_path):
    out = tmp_path / "out"
    assert run_cli("activations", "--image", "5", "--layer", "conv2,dense1", "--trained-dir",
                   trained, "--outputs-dir", out).code == 0
    result = run_cli("activations", "--digit", "4", "--count", "3", "--layer", "conv2",
                     "--scale", "layer", "--trained-dir", trained, "--outputs-dir", out)
    assert result.code == 0, result.output
    assert "data: mnist from" in result.out
    gallery = out / "a2"
    expected = {"activations/conv2/test-image-00005-conv2.png",
                "activations/dense1/test-image-00005-dense1.png",
                "activations/conv2/test-digit-4-first3-conv2.png"}
    manifest = json.loads((gallery / "manifest.json").read_text())
    assert {e["path"] for e in manifest["entries"]} == expected  # the second run kept the first's
    for entry in manifest["entries"]:
        assert entry["kind"] and entry["caption"] and entry["layer"] in ("conv2", "dense1")
        image = matplotlib.image.imread(gallery / entry["path"])
        assert image.shape[0] > 100 and image.std() > 0.01
    digit_entry = next(e for e in manifest["entries"] if "digit" in e["path"])
    assert len(digit_entry["image"]) == 3
    assert manifest["model"]["name"] == "a2"


def test_class_means_equal_a_direct_numpy_mean(trained, run_cli, tmp_path, small_npz):
    from cnnviz.data import load_dataset
    from cnnviz.model import load_model
    from cnnviz.probes.activations import activations, class_means

    loaded = load_model("a2", trained)
    data = load_dataset("mnist", small_npz)
    layers = ["conv3", "dense1"]
    direct = activations(loaded.model, layers, loaded.preprocessing.apply(data.x_test))
    for batch in (7, 512):
        means = class_means(loaded.model, layers, data.x_test, data.y_test, loaded.preprocessing,
                            batch_size=batch)
        for layer in layers:
            for c in range(10):
                np.testing.assert_allclose(means.layers[layer][c],
                                           direct.layers[layer][data.y_test == c].mean(axis=0),
                                           rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(means.counts, np.bincount(data.y_test, minlength=10))

    result = run_cli("activations", "--class-mean", "--layer", "conv3,dense1",
                     "--trained-dir", trained, "--outputs-dir", tmp_path)
    assert result.code == 0, result.output
    files = sorted(p.name for p in (tmp_path / "a2" / "activations").rglob("*.png"))
    assert files == ["class-mean-test-heatmap-conv3.png", "class-mean-test-heatmap-dense1.png",
                     "class-mean-test-maps-conv3.png"]


def test_your_own_image(trained, run_cli, tmp_path, sample):
    from skimage import io, transform

    digit = sample["x_test"][0]
    drawing = 255 - np.rint(transform.resize(digit / 255.0, (84, 84)) * 255).astype(np.uint8)
    rgb = np.stack([drawing] * 3, axis=-1)  # black ink on white paper, in colour
    path = tmp_path / "my digit.png"
    io.imsave(path, rgb)
    result = run_cli("activations", "--input", path, "--layer", "conv1", "--save-arrays",
                     "--trained-dir", trained, "--outputs-dir", tmp_path / "out")
    assert result.code == 0, result.output
    folder = tmp_path / "out" / "a2" / "activations"
    assert (folder / "conv1" / "input-my_digit-conv1.png").is_file()
    arrays = np.load(folder / "input-my_digit.npz")
    np.testing.assert_array_equal(arrays["index"], [-1])
    from cnnviz.data import read_image_file

    back = read_image_file(path).astype(float)
    assert np.corrcoef(back.ravel(), digit.astype(float).ravel())[0, 1] > 0.95


BAD = [
    (["--layer", "conv9"], 2, r"unknown layer conv9; valid: conv1, pool1, conv2, pool2, conv3, dense1, output, all"),
    (["--image", "2000"], 2, r"--image 2000 out of range: the test split has 300 images \(0–299\)"),
    (["--image", "-1"], 2, r"--image -1 out of range"),
    (["--image", "1,x"], 2, r"--image takes integers separated by commas"),
    (["--digit", "12"], 2, r"--digit 12: classes are 0–9"),
    (["--digit", "3", "--count", "0"], 2, r"--count must be ≥ 1, got 0"),
    (["--count", "3"], 2, r"--count goes with --digit"),
    (["--image", "1", "--digit", "3"], 2, r"--image and --digit exclude each other"),
    (["--input", "{tmp}/none.png"], 2, r"--input .*none.png: no such file"),
    (["--input", "{tmp}/text.png"], 1, r"--input .*text.png: not a readable image"),
    (["--split", "val"], 2, r"'val' is not one of 'test', 'train'"),
    (["nope"], 2, r"no model bundle 'nope'"),
]


@pytest.mark.parametrize("args, code, message", BAD, ids=[" ".join(a[0][:2]) for a in BAD])
def test_bad_input(args, code, message, trained, run_cli, tmp_path):
    (tmp_path / "text.png").write_text("not an image")
    out = tmp_path / "out"
    result = run_cli("activations", *[a.format(tmp=tmp_path) for a in args],
                     "--trained-dir", trained, "--outputs-dir", out)
    assert_one_line_error(result, code, message)
    assert not out.exists()


def test_absent_digit_and_a_model_without_image_input(trained, run_cli, tmp_path, sample):
    no_sevens = tmp_path / "no7.npz"
    keep = sample["y_test"][:300] != 7
    np.savez(no_sevens, x_train=sample["x_train"][:100], y_train=sample["y_train"][:100],
             x_test=sample["x_test"][:300][keep], y_test=sample["y_test"][:300][keep])
    result = run_cli("activations", "a2", "--digit", "7", "--data", no_sevens,
                     "--trained-dir", trained, "--outputs-dir", tmp_path / "o")
    assert_one_line_error(result, 2, r"--digit 7: no image of class 7 in the test split")

    import keras

    inputs = keras.Input((10,))
    flat = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    flat.save(tmp_path / "flat.keras")
    result = run_cli("activations", tmp_path / "flat.keras", "--outputs-dir", tmp_path / "o")
    assert_one_line_error(result, 2, r"input shape \(None, 10\); cnnviz needs images of a fixed size")
    assert not (tmp_path / "o").exists()
