"""Shared fixtures: offline data sources, a small real slice of MNIST, a CLI runner."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

os.environ["CNNVIZ_OFFLINE"] = "1"  # never try a download from the tests
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from cnnviz.data import EMBEDDED_SAMPLE  # noqa: E402


def _two_logical_cpus() -> None:
    """Split the CPU into two logical devices before TensorFlow starts, so that the mirrored
    strategy has two replicas here (tests/test_distribute.py); everything else still runs
    on the first, as before."""
    from cnnviz.runtime import import_tensorflow

    tf = import_tensorflow()
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


_two_logical_cpus()


@pytest.fixture(autouse=True)
def isolated_keras_home(tmp_path, monkeypatch):
    """No test sees the machine's ~/.keras cache."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))


@pytest.fixture(scope="session")
def sample() -> dict[str, np.ndarray]:
    with np.load(EMBEDDED_SAMPLE) as npz:
        return {k: npz[k] for k in npz.files}


@pytest.fixture(scope="session")
def small_npz(tmp_path_factory, sample) -> Path:
    """The first 1,000 train and 300 test images of the embedded real sample."""
    path = tmp_path_factory.mktemp("data") / "small.npz"
    np.savez(path, x_train=sample["x_train"][:1000], y_train=sample["y_train"][:1000],
             x_test=sample["x_test"][:300], y_test=sample["y_test"][:300])
    return path


def train_with_cli(root: Path, data: Path, name: str, epochs: int = 1) -> Path:
    """A real `cnnviz train` of article2 for `epochs` on `data`; returns the trained root."""
    from cnnviz.cli import main

    with pytest.raises(SystemExit) as done:
        main(["train", "--data", str(data), "--name", name, "--epochs", str(epochs), "--quiet",
              "--trained-dir", str(root)])
    assert done.value.code == 0
    return root


@pytest.fixture(scope="session")
def trained(tmp_path_factory, small_npz) -> Path:
    """article2 trained for one epoch on 1,000 real digits as bundle `a2`, once per session:
    tests that change a bundle work on a copy."""
    return train_with_cli(tmp_path_factory.mktemp("trained"), small_npz, "a2")


@pytest.fixture(scope="session")
def snapped(trained, small_npz, tmp_path_factory) -> Path:
    """A copy of bundle `a2` with two snapshots (epochs 0 and 1, recorded by the real
    recorder from its final weights): a trained root for the `epochs` technique."""
    import shutil

    from cnnviz import snapshots
    from cnnviz.data import dataset_for
    from cnnviz.layers import layers_for
    from cnnviz.model import load_model
    from cnnviz.probes.snapshot import SnapshotRecorder, plan_for

    root = tmp_path_factory.mktemp("snapped")
    shutil.copytree(trained / "a2", root / "a2")
    loaded = load_model("a2", root)
    data = dataset_for(loaded, path=small_npz)
    plan = plan_for(layers_for(loaded.model, "activations"), layers_for(loaded.model, "kernels"),
                    data.y_test, len(data.x_train))
    recorder = SnapshotRecorder(loaded.model, loaded.preprocessing, plan,
                                data.x_test[plan.probe_index], data.x_train[plan.subset_index])
    for epoch in (0, 1):
        snapshots.write(root / "a2", epoch, recorder.record() | plan.arrays())
    return root


def atlas_with_cli(trained: Path, out: Path, *options: str) -> Path:
    """A real `cnnviz atlas` of bundle `a2` (few steps, few images); returns its gallery."""
    from cnnviz.cli import main

    with pytest.raises(SystemExit) as done:
        main(["atlas", "a2", "--steps", "6", "--scales", "7,14", "--top", "3", "--limit", "200",
              *options, "--trained-dir", str(trained), "--outputs-dir", str(out)])
    assert done.value.code == 0
    return out / "a2"


@pytest.fixture(scope="session")
def atlas(trained, tmp_path_factory) -> Path:
    """A small but complete atlas of the one-epoch bundle, shared by the session (tests that
    change it work on a copy)."""
    return atlas_with_cli(trained, tmp_path_factory.mktemp("outputs"))


@dataclass
class LiveServer:
    url: str
    inspected: object  # the cnnviz.Inspected the server answers for
    atlas: Path


@pytest.fixture(scope="session")
def live_server(trained, small_npz, atlas):
    """`cnnviz serve`'s server for bundle a2 (and its atlas) on a free port: `cnnviz.live`."""
    import cnnviz

    inspected = cnnviz.load("a2", trained_dir=trained, data=small_npz)
    running = cnnviz.live(inspected, port=0, atlas=atlas)
    yield LiveServer(running.url, inspected, atlas)
    running.stop()


@pytest.fixture(scope="session")
def loaded(trained):
    from cnnviz.model import load_model

    return load_model("a2", trained)


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def output(self) -> str:
        return self.out + self.err


_MODELS: dict = {}


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """Run `cnnviz ARGS…` in-process through the real entry point; returns code and output.

    A .keras file is read once per test session while it is unchanged (same path, inode,
    size, time and trust): each real command is a new process that reads it; here the
    reading is tested once, not in every test (MobileNetV2 takes 4 s to load)."""
    from cnnviz import model as model_module
    from cnnviz.cli import main

    read = model_module.read_keras

    def read_once(path, compile=False, trust=None):
        if compile or not path.is_file():
            return read(path, compile, trust)
        stat = path.stat()
        key = (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns, bool(trust))
        if key not in _MODELS:
            _MODELS[key] = read(path, compile, trust)
        return _MODELS[key]

    monkeypatch.setattr(model_module, "read_keras", read_once)

    def run(*args: str) -> Result:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def assert_one_line_error(result: Result, code: int, *fragments: str) -> None:
    """Exit code, a single `error:` line on stderr naming the problem, no traceback."""
    assert result.code == code, result.output
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert re.search(fragment, lines[0]), (fragment, lines[0])
