"""tf.distribute: the same numbers on two replicas as on one device, training under a
strategy, and a real two-process multi-worker cluster on 127.0.0.1 (TF_CONFIG).

The mirrored tests use the two logical CPU devices that conftest.py makes before TensorFlow
starts; the multi-worker tests start `python -m cnnviz` twice, bounded in time, and kill
whatever is left."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cnnviz import distributed
from cnnviz.errors import UsageError
from cnnviz.probes.activations import activations, class_means
from cnnviz.probes.similarity import functional_similarity, untrained_copy
from cnnviz.probes.stats import layer_stats

LAYERS = ["conv1", "conv3", "dense1"]


GPUS = len(distributed.tf.config.list_logical_devices("GPU"))
MIRRORED = GPUS or 2  # replicas of the mirrored strategy: the GPUs, else conftest's two CPUs


def test_the_strategies_here():
    assert distributed.replicas(distributed.make_strategy("mirrored")) == MIRRORED
    assert distributed.replicas(distributed.make_strategy("auto")) == (GPUS if GPUS > 1 else 1)
    assert distributed.describe(distributed.make_strategy("mirrored")).startswith(
        f"strategy mirrored: {MIRRORED} replicas")
    with pytest.raises(UsageError, match="valid: auto, default, mirrored, multi-worker"):
        distributed.make_strategy("tpu")


def test_every_item_is_in_exactly_one_shard_and_every_replica_runs_every_step():
    strategy = distributed.make_strategy("mirrored")
    if MIRRORED != 2:
        pytest.skip("the plan below is for two replicas")
    plan = distributed.shards(strategy, 301, 64)
    assert [len(step) for step in plan] == [2, 2, 2]
    covered = np.concatenate([np.arange(s.start, s.start + s.count) for step in plan for s in step])
    assert sorted(covered) == list(range(301))
    assert plan[-1][1].count == 0  # the last step leaves replica 1 only padding


@pytest.fixture(scope="module")
def test_images(loaded, sample):
    return sample["x_test"][:301], sample["y_test"][:301].astype(np.int64)


def test_mirrored_statistics_equal_the_single_device_pass_and_numpy(loaded, test_images):
    x, y = test_images
    one = layer_stats(loaded.model, LAYERS, x, y, loaded.preprocessing, top=5, batch_size=64,
                      strategy="default")
    two = layer_stats(loaded.model, LAYERS, x, y, loaded.preprocessing, top=5, batch_size=64,
                      strategy="mirrored")
    values = activations(loaded.model, LAYERS, loaded.preprocessing.apply(x)).layers
    for name in LAYERS:
        a, b = one[name], two[name]
        for field in ("mean", "std", "max", "active_fraction", "image_active_fraction",
                      "class_mean", "top_score"):
            np.testing.assert_allclose(getattr(b, field), getattr(a, field), rtol=1e-9, atol=1e-12)
        # the top-k lists are the same images wherever the scores are not (near) ties
        clear = np.abs(np.diff(a.top_score, axis=1, append=-np.inf)) > 1e-6
        clear &= np.abs(np.diff(a.top_score, axis=1, prepend=np.inf)) > 1e-6
        assert (a.top_index[clear] == b.top_index[clear]).all()
        # and both are what a plain NumPy reduction of the layer's outputs gives
        flat = values[name].reshape(len(x), -1, values[name].shape[-1]).astype(np.float64)
        np.testing.assert_allclose(b.mean, flat.mean(axis=(0, 1)), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(b.max, flat.max(axis=(0, 1)), rtol=1e-6)
        per_image = flat.mean(axis=1)
        np.testing.assert_allclose(b.top_score[:, 0], per_image.max(axis=0), rtol=1e-5)
        np.testing.assert_allclose(b.class_mean[3], per_image[y == 3].mean(axis=0), rtol=1e-5,
                                   atol=1e-7)


def test_mirrored_class_means_and_similarities_equal_the_single_device_pass(loaded, test_images):
    x, y = test_images
    prep = loaded.preprocessing
    other = untrained_copy(loaded.model)
    found = {}
    for name in ("default", "mirrored"):
        found[name] = (class_means(loaded.model, LAYERS, x, y, prep, batch_size=64, strategy=name),
                       functional_similarity((loaded.model, prep), (other, prep), (other, prep),
                                             LAYERS, x, batch_size=64, strategy=name))
    (means_a, sim_a), (means_b, sim_b) = found["default"], found["mirrored"]
    for name in LAYERS:
        np.testing.assert_allclose(means_b.layers[name], means_a.layers[name], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(sim_b.pair[name], sim_a.pair[name], atol=1e-9)
        np.testing.assert_allclose(sim_b.baseline[name], sim_a.baseline[name], atol=1e-9)
        np.testing.assert_allclose(sim_b.means[0][name], sim_a.means[0][name], rtol=1e-6,
                                   atol=1e-7)  # in image order
        assert sim_b.constant[name] == sim_a.constant[name]
    assert (means_b.counts == np.bincount(y, minlength=10)).all()


def test_patterns_split_across_replicas_are_the_patterns_each_map_gets_alone(trained):
    import cnnviz

    m = cnnviz.load("a2", trained_dir=trained)
    alone = m.patterns("conv2", maps=range(5), steps=12, strategy="default")
    shared = m.patterns("conv2", maps=range(5), steps=12, strategy="mirrored")
    assert list(shared.maps) == list(alone.maps) == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(shared.all_objectives, alone.all_objectives, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(shared.pixels, alone.pixels, atol=0.05)


def test_training_under_a_strategy(tmp_path, small_npz):
    import cnnviz

    settings = {"epochs": 1, "batch_size": 64, "conv": [8, 16], "dense": [16]}
    plain = cnnviz.train(name="plain", data=small_npz, trained_dir=tmp_path, **settings)
    mirrored = cnnviz.train(name="two", data=small_npz, trained_dir=tmp_path,
                            strategy="mirrored", **settings)
    one = cnnviz.train(name="one", data=small_npz, trained_dir=tmp_path,
                       strategy=distributed.tf.distribute.MirroredStrategy(["/cpu:0"]), **settings)
    accuracy = {m.name: m.run["metrics"]["test_accuracy"] for m in (plain, mirrored, one)}
    assert accuracy["plain"] > 0.5
    assert abs(accuracy["two"] - accuracy["plain"]) < 0.1   # the same band
    # one replica under a strategy: the default path's result
    np.testing.assert_allclose(accuracy["one"], accuracy["plain"], atol=0.01)
    for got, want in zip(one.model.get_weights(), plain.model.get_weights()):
        np.testing.assert_allclose(got, want, atol=1e-4)
    if MIRRORED == 1:
        return
    with pytest.raises(UsageError, match=f"it must split evenly over the {MIRRORED} replicas"):
        cnnviz.train(name="odd", data=small_npz, trained_dir=tmp_path, strategy="mirrored",
                     **settings | {"batch_size": 64 * MIRRORED - 1})


def test_stats_command_with_a_mirrored_strategy_writes_what_one_device_writes(run_cli, trained, tmp_path):
    results = {}
    for name in ("default", "mirrored"):
        out = tmp_path / name
        done = run_cli("stats", "a2", "--layer", "conv2,dense1", "--limit", "150", "--top", "4",
                       "--batch-size", "32", "--strategy", name, "--trained-dir", str(trained),
                       "--outputs-dir", str(out))
        assert done.code == 0, done.output
        said = f"strategy mirrored: {MIRRORED} replicas" in done.err
        assert said == (name == "mirrored" and MIRRORED > 1)
        results[name] = json.loads((out / "a2" / "stats" / "stats.json").read_text())
        assert (out / "a2" / "stats" / "conv2" / "top-examples-conv2.png").is_file()
    for layer in ("conv2", "dense1"):
        a, b = (results[n]["layers"][layer]["maps"] for n in ("default", "mirrored"))
        for key in ("mean", "std", "max", "active_fraction"):
            np.testing.assert_allclose(b[key], a[key], rtol=1e-9, atol=1e-12)


def test_multi_worker_without_a_cluster_is_a_usage_error(run_cli, trained, tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    done = run_cli("stats", "a2", "--strategy", "multi-worker", "--trained-dir", str(trained),
                   "--outputs-dir", str(tmp_path))
    assert done.code == 2
    assert "TF_CONFIG" in done.err and len(done.err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


# ---- a real cluster: two worker processes on 127.0.0.1 ------------------------------------

def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


class Cluster:
    """`python -m cnnviz ARGS` once per worker, each with its TF_CONFIG; killed at the end."""

    def __init__(self, tmp: Path, workers: int = 2):
        self.tmp, self.ports = tmp, _free_ports(workers)
        self.running: list[subprocess.Popen] = []

    def start(self, index: int, *args: str, log: str,
              program: tuple[str, ...] = ("-m", "cnnviz")) -> subprocess.Popen:
        (self.tmp / "tmp").mkdir(exist_ok=True)  # the workers' temporary folders
        env = dict(os.environ, CNNVIZ_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="3",
                   TMPDIR=str(self.tmp / "tmp"), TF_CONFIG=json.dumps(
            {"cluster": {"worker": [f"127.0.0.1:{p}" for p in self.ports]},
             "task": {"type": "worker", "index": index}}))
        with open(self.tmp / f"{log}-{index}.log", "w") as out:
            process = subprocess.Popen([sys.executable, *program, *args], env=env,
                                       stdout=out, stderr=subprocess.STDOUT, cwd=self.tmp)
        self.running.append(process)
        return process

    def all(self, *args: str, log: str, timeout: float = 150) -> list[str]:
        processes = [self.start(i, *args, log=log) for i in range(len(self.ports))]
        for p in processes:
            p.wait(timeout=timeout)
        outputs = [(self.tmp / f"{log}-{i}.log").read_text() for i in range(len(self.ports))]
        assert [p.returncode for p in processes] == [0] * len(processes), outputs
        return outputs

    def stop(self) -> None:
        for p in self.running:
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.fixture
def cluster(tmp_path):
    found = Cluster(tmp_path)
    yield found
    found.stop()


def test_multi_worker_stats_equal_one_device_and_only_the_chief_writes(cluster, trained, tmp_path):
    common = ("stats", "a2", "--layer", "conv3,dense1", "--limit", "203", "--top", "5",
              "--batch-size", "32", "--strategy", "multi-worker", "--trained-dir", str(trained))
    processes = [cluster.start(i, *common, "--outputs-dir", str(tmp_path / f"out-{i}"), log="stats")
                 for i in range(2)]
    for p in processes:
        p.wait(timeout=150)
    logs = [(tmp_path / f"stats-{i}.log").read_text() for i in range(2)]
    assert [p.returncode for p in processes] == [0, 0], logs
    assert "this is worker 0, the chief" in logs[0] and "worker 1, not the chief" in logs[1]
    assert "note: this worker's copy of a2 goes to" in logs[1] and "note:" not in logs[0]
    assert not (tmp_path / "out-1").exists()                       # the other worker wrote nothing
    assert not any((tmp_path / "tmp").iterdir())                  # nor left anything behind
    chief = json.loads((tmp_path / "out-0" / "a2" / "stats" / "stats.json").read_text())
    assert chief["images"] == 203
    from cnnviz.model import load_model

    loaded = load_model("a2", trained)
    x, y = load_model_data(loaded)
    one = layer_stats(loaded.model, ["conv3", "dense1"], x[:203], y[:203], loaded.preprocessing,
                      top=5, batch_size=32, strategy="default")
    for layer in ("conv3", "dense1"):
        got = chief["layers"][layer]
        np.testing.assert_allclose(got["maps"]["mean"], one[layer].mean, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(got["maps"]["std"], one[layer].std, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(got["class_mean"], one[layer].class_mean, rtol=1e-6, atol=1e-9)
        scores = one[layer].top_score
        clear = (np.abs(np.diff(scores, axis=1, append=-np.inf)) > 1e-6) & (
            np.abs(np.diff(scores, axis=1, prepend=np.inf)) > 1e-6)
        assert (np.asarray(got["top_index"])[clear] == one[layer].top_index[clear]).all()


def test_multi_worker_class_means_similarities_and_patterns_equal_one_device(cluster, trained,
                                                                           tmp_path):
    worker = str(Path(__file__).with_name("cluster_worker.py"))
    processes = [cluster.start(i, str(trained), str(tmp_path / f"found-{i}.npz"), log="probes",
                               program=(worker,)) for i in range(2)]
    for p in processes:
        p.wait(timeout=150)
    logs = [(tmp_path / f"probes-{i}.log").read_text() for i in range(2)]
    assert [p.returncode for p in processes] == [0, 0], logs
    from cluster_worker import probe_results

    one = probe_results(str(trained), "default")
    for i in range(2):  # every worker ends with every number, in order
        with np.load(tmp_path / f"found-{i}.npz") as found:
            np.testing.assert_allclose(found["means"], one["means"], rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(found["dense"], one["dense"], rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(found["pair"], one["pair"], atol=1e-9)
            np.testing.assert_allclose(found["image_means"], one["image_means"],
                                       rtol=1e-6, atol=1e-7)  # in image order
            assert list(found["maps"]) == [0, 1, 2, 3, 4]
            np.testing.assert_allclose(found["objectives"], one["objectives"], rtol=1e-4,
                                       atol=1e-5)
            np.testing.assert_allclose(found["pixels"], one["pixels"], atol=0.05)


def load_model_data(loaded):
    from cnnviz.data import dataset_for

    return dataset_for(loaded).split("test")


def test_multi_worker_training_survives_a_killed_worker(cluster, tmp_path, small_npz):
    root = tmp_path / "trained"
    common = ("train", "--data", str(small_npz), "--name", "mw", "--epochs", "3", "--quiet",
              "--conv", "8,16", "--dense", "16", "--strategy", "multi-worker",
              "--trained-dir", str(root))
    chief = cluster.start(0, *common, log="first")
    worker = cluster.start(1, *common, log="first")
    run_json = root / "mw" / "run.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and chief.poll() is None:
        if run_json.is_file() and json.loads(run_json.read_text())["epochs_completed"] >= 1:
            break
        time.sleep(0.2)
    assert json.loads(run_json.read_text())["epochs_completed"] == 1
    worker.send_signal(signal.SIGKILL)                    # dies in the middle of epoch 2
    chief.wait(timeout=90)
    said = (tmp_path / "first-0.log").read_text()
    assert chief.returncode == 1, said
    assert "a worker of the cluster stopped answering" in said and "Traceback" not in said
    assert json.loads(run_json.read_text())["status"] == "interrupted"

    logs = cluster.all(*common, "--resume", log="again")  # the cluster comes back
    assert "resuming mw after epoch 1 of 3" in logs[0] and "resuming mw after epoch 1" in logs[1]
    run = json.loads(run_json.read_text())
    assert run["status"] == "complete" and run["epochs_completed"] == 3
    assert len((root / "mw" / "history.csv").read_text().splitlines()) == 4
    assert sorted(p.name for p in root.iterdir()) == ["mw"]  # nothing else in trained/
    import cnnviz

    alone = cnnviz.train(name="alone", data=small_npz, trained_dir=tmp_path / "single",
                         epochs=3, conv=[8, 16], dense=[16])
    assert abs(run["metrics"]["test_accuracy"] - alone.run["metrics"]["test_accuracy"]) < 0.05
