"""Data sources, readers and preprocessing, each against files the test writes itself."""

import gzip
import hashlib
import struct

import numpy as np
import pytest

from cnnviz import data
from cnnviz.data import Preprocessing, load_dataset, read_idx
from cnnviz.errors import CnnvizError, UsageError


def write_idx(path, array, compress=False):
    """An IDX file written by hand: magic (0, 0, 0x08, ndim), big-endian dims, bytes."""
    array = np.asarray(array, dtype=np.uint8)
    raw = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def write_idx_folder(folder, sample, compress, n_train=50, n_test=20):
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    write_idx(folder / f"train-images-idx3-ubyte{suffix}", sample["x_train"][:n_train], compress)
    write_idx(folder / f"train-labels-idx1-ubyte{suffix}", sample["y_train"][:n_train], compress)
    write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", sample["x_test"][:n_test], compress)
    write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", sample["y_test"][:n_test], compress)
    return folder


def test_embedded_sample_is_the_real_10000_digits():
    digest = hashlib.sha256(data.EMBEDDED_SAMPLE.read_bytes()).hexdigest()
    assert digest == "982c58bf610df36ca951de2a1ec2ef196b5f97871826ae7b5515f00b711d8547"
    ds = load_dataset("mnist")  # offline, no cache: the embedded sample is the last source
    assert "embedded sample" in ds.source
    assert (len(ds.x_train), len(ds.x_test)) == (8000, 2000)
    assert ds.x_train.dtype == np.uint8 and ds.x_train.shape[1:] == (28, 28)
    assert np.bincount(ds.y_test, minlength=10).min() >= 150  # every digit present
    assert ds.describe().endswith("8,000 train / 2,000 test images")


def test_npz_keeps_its_split_and_order(tmp_path, sample):
    path = tmp_path / "d.npz"
    np.savez(path, x_train=sample["x_train"][:30], y_train=sample["y_train"][:30],
             x_test=sample["x_test"][:10], y_test=sample["y_test"][:10])
    ds = load_dataset("mnist", path)
    np.testing.assert_array_equal(ds.x_test, sample["x_test"][:10])
    np.testing.assert_array_equal(ds.y_train, sample["y_train"][:30])
    assert ds.source == str(path) and ds.path == str(path)


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzipped"])
def test_idx_folder(tmp_path, sample, compress):
    folder = write_idx_folder(tmp_path / "idx", sample, compress)
    ds = load_dataset("fashion", folder)
    np.testing.assert_array_equal(ds.x_train, sample["x_train"][:50])
    np.testing.assert_array_equal(ds.y_test, sample["y_test"][:20])
    assert ds.name == "fashion"


def test_keras_cache_comes_before_the_embedded_sample(tmp_path, sample, monkeypatch):
    cache = tmp_path / "keras-home" / "datasets"
    cache.mkdir(parents=True)
    np.savez(cache / "mnist.npz", x_train=sample["x_train"][:40], y_train=sample["y_train"][:40],
             x_test=sample["x_test"][:12], y_test=sample["y_test"][:12])
    ds = load_dataset("mnist")
    assert ds.source.startswith("Keras cache") and len(ds.x_train) == 40


def test_fashion_from_keras_cache_then_debian(tmp_path, sample, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_FASHION_DIR", write_idx_folder(tmp_path / "deb", sample, True, 20, 5))
    assert load_dataset("fashion").source.startswith("Debian dataset-fashion-mnist")
    write_idx_folder(tmp_path / "keras-home" / "datasets" / "fashion-mnist", sample, True, 30, 6)
    ds = load_dataset("fashion")
    assert ds.source.startswith("Keras cache") and len(ds.x_train) == 30


def test_fashion_without_any_source_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_FASHION_DIR", tmp_path / "absent")
    with pytest.raises(CnnvizError, match="no fashion data found: pass data=PATH"):  # the CLI: --data
        load_dataset("fashion")


def test_download_is_tried_only_when_the_network_answers(monkeypatch, sample):
    calls = []

    def fake_load_data():
        calls.append(1)
        return (sample["x_train"][:10], sample["y_train"][:10]), (sample["x_test"][:4], sample["y_test"][:4])

    import keras.datasets.mnist

    monkeypatch.setattr(keras.datasets.mnist, "load_data", fake_load_data)
    monkeypatch.setattr(data, "network_answers", lambda *a, **k: False)
    assert "embedded" in load_dataset("mnist", download=True).source and not calls
    monkeypatch.setattr(data, "network_answers", lambda *a, **k: True)
    assert load_dataset("mnist", download=True).source.startswith("Keras download") and calls
    assert "embedded" in load_dataset("mnist", download=False).source  # offline switch


def test_a_failed_download_falls_through(monkeypatch):
    import keras.datasets.mnist

    def broken():
        raise OSError("connection reset")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", broken)
    monkeypatch.setattr(data, "network_answers", lambda *a, **k: True)
    assert "embedded" in load_dataset("mnist", download=True).source


def test_standardisation_is_fitted_on_the_training_split_only(sample):
    x_train, x_test = sample["x_train"][:500], sample["x_test"][:200]
    prep = Preprocessing.fit("standardize", x_train)
    ref_mean = x_train.astype(np.float64).mean(axis=0)
    ref_std = np.maximum(x_train.astype(np.float64).std(axis=0), data.STD_FLOOR)
    np.testing.assert_allclose(prep.mean, ref_mean, rtol=1e-6)
    np.testing.assert_allclose(prep.std, ref_std, rtol=1e-6)
    both = np.concatenate([x_train, x_test]).astype(np.float64).mean(axis=0)
    assert np.abs(prep.mean - both).max() > 0.5  # differs from a fit that saw the test split
    out = prep.apply(x_test)
    assert out.dtype == np.float32 and out.shape == (200, 28, 28, 1)
    np.testing.assert_allclose(out[..., 0], (x_test - ref_mean) / ref_std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(prep.invert(out), x_test, atol=1e-3)
    again = Preprocessing.from_json(prep.to_json())
    np.testing.assert_array_equal(again.apply(x_test), out)


def test_unit_normalisation(sample):
    prep = Preprocessing.fit("unit", sample["x_train"])
    out = prep.apply(sample["x_test"][:3])
    np.testing.assert_allclose(out[..., 0], sample["x_test"][:3] / 255.0, rtol=1e-6)
    assert Preprocessing.from_json(None).kind == "unit"


def test_bad_files(tmp_path, sample):
    wrong_keys = tmp_path / "keys.npz"
    np.savez(wrong_keys, images=sample["x_train"][:5], labels=sample["y_train"][:5])
    with pytest.raises(CnnvizError, match="missing x_train, y_train, x_test, y_test"):
        load_dataset("mnist", wrong_keys)

    wrong_shape = tmp_path / "shape.npz"
    np.savez(wrong_shape, x_train=np.zeros((5, 32, 32), np.uint8), y_train=np.zeros(5, np.uint8),
             x_test=np.zeros((2, 32, 32), np.uint8), y_test=np.zeros(2, np.uint8))
    assert load_dataset("mnist", wrong_shape).image_shape == (32, 32)  # any image shape is data
    mixed = tmp_path / "mixed.npz"
    np.savez(mixed, x_train=np.zeros((5, 32, 32), np.uint8), y_train=np.zeros(5, np.uint8),
             x_test=np.zeros((2, 28, 28), np.uint8), y_test=np.zeros(2, np.uint8))
    with pytest.raises(CnnvizError, match=r"x_train has shape \(5, 32, 32\); expected \(N, 28, 28\)"):
        load_dataset("mnist", mixed)

    bad_labels = tmp_path / "labels.npz"
    np.savez(bad_labels, x_train=sample["x_train"][:5], y_train=np.full(5, 12),
             x_test=sample["x_test"][:2], y_test=sample["y_test"][:2])
    with pytest.raises(CnnvizError, match="integer labels 0–9"):
        load_dataset("mnist", bad_labels)

    folder = write_idx_folder(tmp_path / "corrupt", sample, True)
    gz = folder / "t10k-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:200])
    with pytest.raises(CnnvizError, match="corrupt gzip file"):
        load_dataset("mnist", folder)

    not_npz = tmp_path / "text.npz"
    not_npz.write_text("hello")
    with pytest.raises(CnnvizError, match="not a readable .npz"):
        load_dataset("mnist", not_npz)

    with pytest.raises(UsageError, match="no such file or folder"):
        load_dataset("mnist", tmp_path / "nothing")

    with pytest.raises(CnnvizError, match="need exactly one file matching t10k-images"):
        write_idx_folder(tmp_path / "partial", sample, False)
        (tmp_path / "partial" / "t10k-images-idx3-ubyte").unlink()
        load_dataset("mnist", tmp_path / "partial")


def test_idx_header_is_checked(tmp_path):
    bad = tmp_path / "x-idx3-ubyte"
    bad.write_bytes(bytes([0, 0, 0x0D, 1, 0, 0, 0, 2, 1, 2]))
    with pytest.raises(CnnvizError, match="bad magic number"):
        read_idx(bad)
    short = write_idx(tmp_path / "s-idx1-ubyte", np.arange(5))
    short.write_bytes(short.read_bytes()[:-1])
    with pytest.raises(CnnvizError, match="truncated"):
        read_idx(short)


def test_unknown_dataset_and_split():
    with pytest.raises(UsageError, match="unknown dataset 'cifar'; valid: mnist, fashion"):
        load_dataset("cifar")
    with pytest.raises(UsageError, match="unknown split 'val'; valid: train, test"):
        load_dataset("mnist").split("val")
