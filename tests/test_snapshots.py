"""Watching a network learn (issue 32): snapshots against models rebuilt here from the stored
weights and the bundle's own files, the series across an interrupt and a resume, the size
bound, the live curves of a notebook, TensorBoard's summaries."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

import cnnviz
from cnnviz import snapshots
from cnnviz.data import Dataset
from cnnviz.model import read_keras


@pytest.fixture(scope="module")
def twenty(tmp_path_factory, sample):
    """article2 trained 20 epochs on 200 digits with a snapshot after every epoch (through
    train_bundle and the Snapshots callback, as cnnviz.train does, without drawing curves)."""
    from cnnviz.spec import resolve_settings, specs_from_settings
    from cnnviz.training import train_bundle
    from cnnviz.watching import Snapshots

    root = tmp_path_factory.mktemp("snap")
    data = root / "tiny.npz"
    np.savez(data, x_train=sample["x_train"][:200], y_train=sample["y_train"][:200],
             x_test=sample["x_test"][:100], y_test=sample["y_test"][:100])
    dataset = Dataset("mnist", sample["x_train"][:200], sample["y_train"][:200].astype(np.int32),
                      sample["x_test"][:100], sample["y_test"][:100].astype(np.int32), str(data))
    network, training = specs_from_settings(resolve_settings("article2", overrides={
        "epochs": 20, "batch_size": 50})[1])
    train_bundle(root / "s20", network, training, dataset, verbose=0,
                 callbacks=[Snapshots(root / "s20", 1, dataset)])
    return cnnviz.load("s20", trained_dir=root, data=data), root, data


def sub_outputs(model, layers, inputs):
    """Every layer's output from a Keras model built here."""
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in layers])
    found = probe([inputs])
    return [np.asarray(v) for v in (found if isinstance(found, (list, tuple)) else [found])]


def test_twenty_epochs_give_twenty_one_snapshots_within_the_size_bound(twenty):
    m, root, _ = twenty
    folder = root / "s20"
    assert snapshots.epochs(folder) == list(range(21))
    sizes = [p.stat().st_size for p in (folder / "snapshots").iterdir()]
    assert len(sizes) == 21 and sum(sizes) < 20 * 2**20  # the stated bound: under 20 MB
    last = snapshots.read(folder, 20)  # the last snapshot holds the model the bundle keeps
    for stored, kept in zip(snapshots.weights(last), read_keras(folder / "model.keras").get_weights()):
        np.testing.assert_array_equal(stored, kept)
    first = snapshots.read(folder, 0)  # and the first one the initial weights
    initial = keras.models.clone_model(m.model)
    initial.load_weights(folder / "initial.weights.h5")
    for stored, kept in zip(snapshots.weights(first), initial.get_weights()):
        np.testing.assert_array_equal(stored, kept)
    assert float(last["metric/val_accuracy"]) == pytest.approx(
        json.loads((folder / "run.json").read_text())["metrics"]["test_accuracy"])


def test_a_snapshots_outputs_are_those_of_the_model_rebuilt_from_its_weights(twenty):
    m, root, data = twenty
    stored = snapshots.read(root / "s20", 5)
    rebuilt = keras.models.clone_model(m.model)
    rebuilt.set_weights(snapshots.weights(stored))
    x_test = m.data().split("test")[0]
    probe_index = stored["plan/probe_index"]
    assert sorted(m.data().split("test")[1][probe_index].tolist()) == list(range(10))
    layers = list(map(str, stored["plan/layers"]))
    fed = m.loaded.preprocessing.apply(x_test[probe_index].astype(np.float32))
    for name, value in zip(layers, sub_outputs(rebuilt, layers, fed)):
        np.testing.assert_allclose(stored[f"probe/{name}"].astype(np.float32), value,
                                   rtol=2e-3, atol=2e-3)  # stored in float16
    # the same model through the public door: cnnviz.load(name, epoch=k)
    then = cnnviz.load("s20", trained_dir=root, data=data, epoch=5)
    assert then.name == "s20-epoch-5"
    found = then.activations(x_test[probe_index], layers="all")
    for name in layers:
        np.testing.assert_allclose(found[name], stored[f"probe/{name}"].astype(np.float32),
                                   rtol=2e-3, atol=2e-3)
    # top examples and dead maps over the training subset, computed here
    subset = stored["plan/subset_index"]
    x_train = m.data().split("train")[0]
    conv3 = sub_outputs(rebuilt, ["conv3"], m.loaded.preprocessing.apply(
        x_train[subset].astype(np.float32)))[0]
    strongest = conv3.reshape(len(subset), -1, conv3.shape[-1]).max(axis=1)  # (images, maps)
    top = stored["top/conv3"]  # training indices, best first
    position = {int(i): k for k, i in enumerate(subset)}
    at_top = strongest[[position[int(i)] for i in top[:, 0]], np.arange(top.shape[0])]
    np.testing.assert_allclose(at_top, strongest.max(axis=0), rtol=1e-5, atol=1e-6)
    dead = int(stored["dead/conv3"])
    assert np.sum(strongest.max(axis=0) <= 1e-6) >= dead >= np.sum(strongest.max(axis=0) < 0)
    np.testing.assert_allclose(float(stored["mean/conv3"]), conv3.mean(), rtol=1e-4)


def test_each_snapshot_pattern_raises_its_maps_mean(twenty):
    """Against the grey image: the map's mean output rises, or, for a map silent on both,
    its pre-activation's mean (the layer's input convolved with its kernel, plus its bias,
    computed here)."""
    import tensorflow as tf

    m, root, _ = twenty
    stored = snapshots.read(root / "s20", 20)
    rebuilt = keras.models.clone_model(m.model)
    rebuilt.set_weights(snapshots.weights(stored))
    for layer in map(str, stored["plan/conv_layers"]):
        patterns = stored[f"pattern/{layer}"].astype(np.float32)
        assert patterns.min() >= 0 and patterns.max() <= 255 and len(patterns) == 4
        conv = rebuilt.get_layer(layer)
        into = keras.Model(rebuilt.inputs, conv.input)
        for k, pattern in enumerate(patterns):
            fed = m.loaded.preprocessing.apply(np.stack([pattern, np.full_like(pattern, 127.5)]))
            inputs = np.asarray(into([fed]))
            pre = tf.nn.conv2d(inputs, conv.kernel, 1, "VALID").numpy() + conv.bias.numpy()
            post = np.maximum(pre, 0)[..., k].mean(axis=(1, 2))
            assert post[0] > post[1] or (post[1] == 0 and pre[0, ..., k].mean() >
                                         pre[1, ..., k].mean()), (layer, k, post)


def test_a_resumed_run_continues_the_series_without_a_gap_or_a_duplicate(tmp_path, sample,
                                                                          run_cli):
    from cnnviz.spec import resolve_settings, specs_from_settings
    from cnnviz.training import TrainingInterrupted, train_bundle
    from cnnviz.watching import Snapshots

    data = Dataset("mnist", sample["x_train"][:256], sample["y_train"][:256].astype(np.int32),
                   sample["x_test"][:64], sample["y_test"][:64].astype(np.int32), "slice")
    network, training = specs_from_settings(resolve_settings("article2", overrides={
        "epochs": 5, "batch_size": 64})[1])

    class StopAt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 4:
                raise KeyboardInterrupt

    folder = tmp_path / "cut"
    with pytest.raises(TrainingInterrupted, match="keeps epoch 4 of 5"):
        train_bundle(folder, network, training, data, verbose=0,
                     callbacks=[Snapshots(folder, 2, data), StopAt()])
    assert snapshots.epochs(folder) == [0, 2, 4]
    # as if the process had been killed after epoch 4's checkpoint, before its snapshot
    snapshots.path_of(folder, 4).unlink()
    kept = {e: snapshots.path_of(folder, e).stat().st_mtime_ns for e in (0, 2)}
    epoch4 = read_keras(folder / "model.keras").get_weights()
    train_bundle(folder, network, training, data, resume=True, verbose=0,
                 callbacks=[Snapshots(folder, 2, data)])
    assert snapshots.epochs(folder) == [0, 2, 4, 5]  # every 2 epochs and the last, each once
    assert {e: snapshots.path_of(folder, e).stat().st_mtime_ns for e in (0, 2)} == kept
    for stored, weights in zip(snapshots.weights(snapshots.read(folder, 4)), epoch4):
        np.testing.assert_array_equal(stored, weights)  # taken as the resumed run started
    plans = [snapshots.read(folder, e)["plan/subset_index"] for e in (0, 5)]
    np.testing.assert_array_equal(*plans)  # the same images all along
    # the series' models through the command line: --epoch K
    done = run_cli("activations", "cut", "--epoch", "2", "--image", "0", "--layer", "conv1",
                   "--trained-dir", tmp_path, "--outputs-dir", tmp_path / "out")
    assert done.code == 0, done.output
    assert (tmp_path / "out" / "cut-epoch-2").is_dir()
    missing = run_cli("activations", "cut", "--epoch", "3", "--trained-dir", tmp_path,
                      "--outputs-dir", tmp_path / "out")
    assert missing.code == 2 and "has no snapshot of that epoch; it has epochs 0, 2, 4, 5" in missing.err
    assert "Traceback" not in missing.output


def test_tensorboard_gets_the_snapshots_as_images_and_histograms(tmp_path, small_npz):
    """Read back with TensorBoard's own event reader: kernels, maps and patterns for its
    Images tab, weights and activations for Histograms, one step per snapshot."""
    pytest.importorskip("tensorboard")
    import tensorflow as tf
    from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator

    cnnviz.train(name="tb", data=small_npz, trained_dir=tmp_path, epochs=2, snapshots=1,
                 tensorboard=tmp_path / "logs", live=False)
    events = EventAccumulator(str(tmp_path / "logs" / "snapshots"), size_guidance={"tensors": 0})
    events.Reload()
    assert len(list((tmp_path / "logs" / "snapshots").iterdir())) == 1  # one event file
    plugin = {tag: events.SummaryMetadata(tag).plugin_data.plugin_name
              for tag in events.Tags()["tensors"]}
    for tag in ("kernels/conv1", "kernels/conv3", "patterns/conv2", "maps/conv1", "maps/pool2"):
        assert plugin.get(tag) == "images", (tag, plugin)
    for tag in ("weights/conv1/0", "weights/dense1/1", "activations/dense1", "activations/output"):
        assert plugin.get(tag) == "histograms", (tag, plugin)
    assert [e.step for e in events.Tensors("kernels/conv1")] == [0, 1, 2]
    width, height, *pngs = tf.make_ndarray(events.Tensors("kernels/conv1")[0].tensor_proto)
    assert (int(width), int(height), len(pngs)) == (4 * (6 * 4 - 1), 4 * (6 * 4 - 1), 1)  # 32 3×3
    _, _, *maps = tf.make_ndarray(events.Tensors("maps/conv1")[2].tensor_proto)
    assert len(maps) == 10  # one mosaic per probe image, one image per class
    stored = snapshots.weights(snapshots.read(tmp_path / "tb", 2))[0]
    buckets = tf.make_ndarray(events.Tensors("weights/conv1/0")[-1].tensor_proto)  # (k, 3)
    assert buckets[:, 2].sum() == pytest.approx(stored.size)
    assert buckets[0, 0] == pytest.approx(float(stored.min()), abs=1e-6)
    assert buckets[-1, 1] == pytest.approx(float(stored.max()), abs=1e-6)


def test_the_epochs_command_end_to_end_and_without_snapshots(snapped, trained, small_npz,
                                                             tmp_path, run_cli):
    done = run_cli("epochs", "a2", "--trained-dir", snapped, "--data", small_npz,
                   "--outputs-dir", tmp_path)
    assert done.code == 0, done.output
    gallery = tmp_path / "a2"
    listed = {e["path"] for e in json.loads((gallery / "manifest.json").read_text())["entries"]}
    assert {"epochs/conv2/over-training.png", "epochs/conv2/epoch-0000.png",
            "epochs/conv2/epoch-0001.png", "epochs/dense1/activity.png",
            "epochs/epochs.json"} <= listed
    assert all((gallery / p).is_file() for p in listed)
    numbers = json.loads((gallery / "epochs" / "epochs.json").read_text())
    stored = snapshots.read(snapped / "a2", 1)
    assert numbers["epochs"] == [0, 1] and numbers["dead"]["conv3"][1] == int(stored["dead/conv3"])
    assert run_cli("gallery", "a2", "--trained-dir", snapped, "--outputs-dir", tmp_path).code == 0
    page = (gallery / "index.html").read_text()
    assert 'type="range"' in page and "epoch-0001.png" in page
    card = (gallery / "cards" / "conv2" / "map-002.html").read_text()  # the map's card
    assert "Over training" in card and "../../epochs/conv2/map-002.png" in card
    refused = run_cli("epochs", "a2", "--trained-dir", trained, "--data", small_npz,
                      "--outputs-dir", tmp_path / "none")
    assert refused.code == 2 and refused.err.count("\n") == 1, refused.err
    assert "a2 has no snapshots to show: train it with --snapshots K" in refused.err
    assert not (tmp_path / "none").exists()


def test_train_serve_refuses_a_taken_port_and_several_runs_before_training(tmp_path, small_npz,
                                                                           run_cli):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli("train", "--name", "t", "--data", small_npz, "--epochs", "1", "--quiet",
                       "--serve", port, "--trained-dir", tmp_path)
    assert done.code == 1 and f"--serve {port}: cannot listen there" in done.err, done.err
    assert "Traceback" not in done.output and not (tmp_path / "t").exists()
    done = run_cli("train", "--name", "t", "--data", small_npz, "--runs", "2", "--serve", "0",
                   "--trained-dir", tmp_path)
    assert done.code == 2 and "--serve follows one run; --runs 2 must be 1" in done.err, done.err
    done = run_cli("train", "--name", "t", "--data", small_npz, "--snapshots", "0",
                   "--trained-dir", tmp_path)
    assert done.code == 2 and "--snapshots must be ≥ 1" in done.err, done.err
