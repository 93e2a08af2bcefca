"""End to end through the real `cnnviz` entry point: train, info, list, and every bad input."""

import json
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest

from conftest import assert_one_line_error, train_with_cli

SMALL_RUN = ["--conv", "8,16,16", "--dense", "16", "--epochs", "1", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_npz):
    """One real `cnnviz train` of one epoch on a slice of the embedded sample."""
    return train_with_cli(tmp_path_factory.mktemp("trained"), small_npz, "e2e")


def test_help_does_not_import_tensorflow():
    code = ("import sys; import cnnviz.cli; from click.testing import CliRunner; "
            "r = CliRunner().invoke(cnnviz.cli.cli, ['--help']); "
            "assert r.exit_code == 0 and 'train' in r.output, r.output; "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_python_dash_m_and_version():
    out = subprocess.run([sys.executable, "-m", "cnnviz", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.startswith("cnnviz, version")


def test_train_writes_a_complete_bundle(trained, small_npz):
    folder = trained / "e2e"
    assert sorted(p.name for p in folder.iterdir()) == ["curves.png", "history.csv",
                                                        "initial.weights.h5", "model.keras",
                                                        "run.json"]
    run = json.loads((folder / "run.json").read_text())
    assert run["status"] == "complete" and run["epochs_completed"] == 1
    assert run["network"]["convs"][0] == {"filters": 32, "kernel": 3, "activation": "relu"}
    assert run["data"]["source"] == str(small_npz) and run["data"]["train_images"] == 1000
    assert 0.5 < run["metrics"]["test_accuracy"] <= 1.0  # one epoch on 1,000 real digits
    assert run["preprocessing"]["kind"] == "standardize" and len(run["preprocessing"]["mean"]) == 28
    history = (folder / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,") and len(history) == 2
    image = matplotlib.image.imread(folder / "curves.png")
    assert image.ndim == 3 and image.shape[0] > 200 and image.std() > 0


def test_the_bundle_predicts_as_its_metrics_say(trained, small_npz):
    from cnnviz.data import load_dataset
    from cnnviz.model import load_model

    loaded = load_model("e2e", trained)
    data = load_dataset("mnist", small_npz)
    probs = loaded.model.predict(loaded.preprocessing.apply(data.x_test), verbose=0)
    accuracy = float(np.mean(probs.argmax(1) == data.y_test))
    assert accuracy == pytest.approx(loaded.run["metrics"]["test_accuracy"], abs=1e-6)


def test_info_reads_the_bundle_back(trained, run_cli, tmp_path):
    result = run_cli("info", "--trained-dir", trained, "--outputs-dir", tmp_path)
    assert result.code == 0, result.output
    out = result.out
    assert "using the most recent bundle 'e2e'" in out
    assert "total parameters: 96,844" in out
    for layer, field in (("conv1", "3x3"), ("pool1", "4x4"), ("conv2", "8x8"), ("pool2", "10x10"),
                         ("conv3", "18x18")):
        line = next(line for line in out.splitlines() if line.startswith(layer + " "))
        assert field in line
    assert "status: complete, 1 of 1 epochs" in out and "test accuracy 0." in out
    assert "per-pixel standardisation fitted on the training split" in out
    assert "(none yet)" in out


def test_list_shows_the_bundle(trained, run_cli):
    result = run_cli("list", "--trained-dir", trained)
    assert result.code == 0
    header, row = result.out.splitlines()
    assert header.split()[:5] == ["name", "dataset", "epochs", "test", "acc"]
    assert row.split()[:3] == ["e2e", "mnist", "1"] and "complete" in row


def test_list_of_an_empty_folder(run_cli, tmp_path):
    assert "no bundles in" in run_cli("list", "--trained-dir", tmp_path).out


def test_environment_variable_sets_the_trained_root(trained, run_cli, monkeypatch):
    monkeypatch.setenv("CNNVIZ_TRAINED", str(trained))
    assert "e2e" in run_cli("list").out


def test_resume_extends_a_finished_run(tmp_path, small_npz, run_cli):
    args = ["--data", small_npz, "--name", "r", "--trained-dir", tmp_path, *SMALL_RUN]
    assert run_cli("train", *args).code == 0
    result = run_cli("train", "--name", "r", "--resume", "--epochs", "2", "--quiet",
                     "--trained-dir", tmp_path)
    assert result.code == 0, result.output
    assert "resuming r after epoch 1 of 2" in result.out and "done: r: 2 epochs" in result.out
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert run["epochs_completed"] == 2 and run["network"]["convs"][0]["filters"] == 8
    nothing = run_cli("train", "--name", "r", "--resume", "--trained-dir", tmp_path)
    assert_one_line_error(nothing, 2, "has finished 2 of 2 epochs; pass --epochs N with N > 2")
    changed = run_cli("train", "--name", "r", "--resume", "--lr", "0.1", "--trained-dir", tmp_path)
    assert changed.code == 2


def test_from_initial_via_cli(tmp_path, small_npz, run_cli):
    base = ["--data", small_npz, "--trained-dir", tmp_path, *SMALL_RUN]
    assert run_cli("train", "--name", "a", *base).code == 0
    result = run_cli("train", "--name", "b", "--from-initial", "a", "--seed", "5", *base)
    assert result.code == 0, result.output
    run = json.loads((tmp_path / "b" / "run.json").read_text())
    assert run["initial_weights_from"] == str(tmp_path / "a" / "initial.weights.h5")
    assert (tmp_path / "a" / "initial.weights.h5").read_bytes() != b""


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.fixture
def bad_files(tmp_path, sample):
    x, y = sample["x_train"][:20], sample["y_train"][:20]
    gz_folder = tmp_path / "idx"
    gz_folder.mkdir()
    from test_data import write_idx_folder

    write_idx_folder(gz_folder, sample, True)
    (gz_folder / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x00broken")
    return {
        "keys": write_npz(tmp_path / "keys.npz", images=x, labels=y),
        "shape": write_npz(tmp_path / "shape.npz", x_train=np.zeros((4, 28, 27), np.uint8),
                           y_train=y[:4], x_test=x[:2], y_test=y[:2]),
        "gz": gz_folder,
    }


BAD_TRAIN = [
    (["--preset", "article9"], 2, r"Invalid value for '--preset'.*'article9'.*article2"),
    (["--optimizer", "adagrad"], 2, r"'adagrad' is not one of 'rmsprop', 'adam'"),
    (["--schedule", "cosine"], 2, r"'cosine' is not one of 'none', 'inverse-time', 'exponential'"),
    (["--conv-activation", "gelu"], 2, r"unknown conv1 activation 'gelu'; valid: relu, sigmoid"),
    (["--epochs", "0"], 2, r"epochs must be an integer ≥ 1, got 0"),
    (["--batch-size", "0"], 2, r"batch_size must be an integer ≥ 1, got 0"),
    (["--conv", "32,0"], 2, r"conv2 filters must be an integer ≥ 1, got 0"),
    (["--conv", "8,8,8", "--kernel", "5", "--pools", "1,1,0"], 2, r"conv3: kernel 5 does not fit"),
    (["--data", "{tmp}/missing.npz"], 2, r"--data .*missing.npz: no such file or folder"),
    (["--data", "{keys}"], 1, r"missing x_train, y_train, x_test, y_test"),
    (["--data", "{shape}"], 1, r"x_train has shape \(4, 28, 27\); expected \(N, 28, 28\)"),
    (["--data", "{gz}"], 1, r"train-images-idx3-ubyte.gz: corrupt gzip file"),
    (["--name", "a/b"], 2, r"invalid bundle name 'a/b'.*no path separators"),
    (["--name", ".."], 2, r"invalid bundle name '..'"),
    (["--resume", "--name", "ghost"], 2, r"nothing to resume: no bundle .*ghost"),
    (["--from-initial", "ghost"], 2, r"no model bundle 'ghost'"),
    (["--epochs", "x"], 2, r"'x' is not a valid integer"),
]


@pytest.mark.parametrize("args, code, message", BAD_TRAIN, ids=[" ".join(a[0][:2]) for a in BAD_TRAIN])
def test_bad_train_input(args, code, message, run_cli, tmp_path, bad_files, small_npz):
    root = tmp_path / "trained"
    fill = {"tmp": tmp_path, **bad_files}
    args = [a.format(**fill) for a in args]
    if "--data" not in args:
        args += ["--data", str(small_npz)]
    result = run_cli("train", *args, "--trained-dir", root, "--quiet")
    assert_one_line_error(result, code, message)
    assert not root.exists() or not any(root.iterdir())  # nothing half-written


def test_existing_bundle_needs_force(trained, run_cli, small_npz):
    before = (trained / "e2e" / "run.json").read_bytes()
    result = run_cli("train", "--name", "e2e", "--data", small_npz, "--trained-dir", trained)
    assert_one_line_error(result, 2, r"bundle .*e2e exists; replace it \(--force")
    assert (trained / "e2e" / "run.json").read_bytes() == before


def test_gpu_requested_without_a_gpu(run_cli, tmp_path, small_npz):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    result = run_cli("train", "--device", "gpu", "--data", small_npz, "--trained-dir", tmp_path)
    assert_one_line_error(result, 1, r"--device gpu: TensorFlow sees no GPU here")
    assert not any(tmp_path.iterdir())


def test_corrupt_model_file(trained, run_cli, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(trained / "e2e", broken)
    (broken / "model.keras").write_bytes(b"not a zip")
    result = run_cli("info", str(broken), "--trained-dir", tmp_path)
    assert_one_line_error(result, 1, r"cannot load .*model.keras: not a .keras \(zip\) archive")


def test_corrupt_run_json(trained, run_cli, tmp_path):
    import shutil

    broken = tmp_path / "b2"
    shutil.copytree(trained / "e2e", broken)
    (broken / "run.json").write_text("{")
    result = run_cli("info", "b2", "--trained-dir", tmp_path)
    assert_one_line_error(result, 1, r"run.json is corrupt")


def test_info_of_an_unknown_bundle_lists_the_known_ones(trained, run_cli):
    result = run_cli("info", "nope", "--trained-dir", trained)
    assert_one_line_error(result, 2, r"no model bundle 'nope' .*\(bundles there: e2e\)")


def test_tensorboard_without_the_package(run_cli, tmp_path, small_npz, monkeypatch):
    import cnnviz.runtime

    monkeypatch.setattr(cnnviz.runtime, "has_module", lambda name: False)
    result = run_cli("train", "--tensorboard", tmp_path / "tb", "--data", small_npz,
                     "--trained-dir", tmp_path / "t")
    assert_one_line_error(result, 1, r"--tensorboard needs the tensorboard package")

