"""Faults real users cause: Ctrl-C in long probes, two commands at once, a full or read-only
disk, a writer failing mid-training. Training killed or interrupted and resumed is in
test_interrupt.py.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.image
import pytest

from conftest import assert_one_line_error


def cnnviz(*args, **popen) -> subprocess.Popen:
    env = dict(os.environ, CNNVIZ_OFFLINE="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "cnnviz", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"ended before {path} appeared: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{path} did not appear in time")
        time.sleep(0.05)


def assert_gallery_intact(gallery: Path) -> list[str]:
    """No temporary file left, every PNG decodes, the manifest parses and lists only
    files that exist; returns the listed paths."""
    leftovers = [p.name for p in gallery.rglob("*") if p.name.startswith((".tmp", ".cards-"))]
    assert leftovers == []
    for png in gallery.rglob("*.png"):
        assert matplotlib.image.imread(png).size > 0, png
    if not (gallery / "manifest.json").exists():
        return []
    listed = [e["path"] for e in json.loads((gallery / "manifest.json").read_text())["entries"]]
    assert all((gallery / path).is_file() for path in listed)
    return listed


def test_ctrl_c_during_filters_keeps_finished_layers_and_nothing_half_written(trained, tmp_path):
    proc = cnnviz("filters", "a2", "--layer", "conv1,conv3", "--maps", "0-3", "--scales", "7",
                  "--starts", "1", "--steps", "3000", "--trained-dir", trained, "--outputs-dir",
                  tmp_path)
    wait_for(tmp_path / "a2" / "manifest.json", proc)  # conv1 is done and recorded
    proc.send_signal(signal.SIGINT)  # conv3's 3,000 steps have just begun
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "error: interrupted" and "Traceback" not in err
    listed = assert_gallery_intact(tmp_path / "a2")
    assert "filters/conv1/patterns-conv1.png" in listed
    assert not any(path.startswith("filters/conv3/") for path in listed)


def test_ctrl_c_during_stats_leaves_no_half_written_file(trained, tmp_path, sample):
    import numpy as np

    data = tmp_path / "more.npz"  # 8,000 train images: long enough to be interrupted
    np.savez(data, **sample)
    proc = cnnviz("stats", "a2", "--split", "train", "--data", data, "--trained-dir", trained,
                  "--outputs-dir", tmp_path)
    wait_for(tmp_path / "a2" / "stats" / "stats.json", proc)
    time.sleep(0.3)  # among the figures
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert assert_gallery_intact(tmp_path / "a2") == []  # recorded only when all is written


def test_two_commands_writing_one_gallery_at_once_keep_both(trained, tmp_path):
    procs = [cnnviz("activations", "a2", "--image", "1,2", "--layer", "conv1,conv2",
                    "--trained-dir", trained, "--outputs-dir", tmp_path),
             cnnviz("kernels", "a2", "--trained-dir", trained, "--outputs-dir", tmp_path),
             cnnviz("filters", "a2", "--layer", "conv1", "--steps", "3", "--scales", "7",
                    "--trained-dir", trained, "--outputs-dir", tmp_path)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    listed = assert_gallery_intact(tmp_path / "a2")
    commands = {path.split("/")[0] for path in listed}
    assert commands == {"activations", "kernels", "filters"}
    assert len(listed) == 4 + 6 + 2  # images; kernels; patterns and their report


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 400 KB tmpfs (needs root and mount rights; skipped otherwise)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_a_clear_error_and_keeps_the_gallery(trained, tiny_disk, run_cli):
    result = run_cli("kernels", "a2", "--layer", "conv1", "--trained-dir", trained,
                     "--outputs-dir", tiny_disk)
    assert result.code == 0, result.output
    before = (tiny_disk / "a2" / "manifest.json").read_text()
    result = run_cli("activations", "a2", "--image", "0,1,2,3,4,5,6,7", "--layer", "all",
                     "--trained-dir", trained, "--outputs-dir", tiny_disk)
    assert_one_line_error(result, 1, "No space left on device")
    assert (tiny_disk / "a2" / "manifest.json").read_text() == before
    assert assert_gallery_intact(tiny_disk / "a2") == ["kernels/conv1/kernels-conv1.npz",
                                                       "kernels/conv1/kernels-conv1.png"]


def test_a_read_only_gallery_is_a_clear_error_and_loses_nothing(trained, tiny_disk, run_cli):
    assert run_cli("kernels", "a2", "--layer", "conv1", "--trained-dir", trained,
                   "--outputs-dir", tiny_disk).code == 0
    before = {p: p.read_bytes() for p in tiny_disk.rglob("*") if p.is_file()}
    remount = subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], capture_output=True)
    if remount.returncode != 0:
        pytest.skip("cannot remount read-only here")
    for command in (["kernels", "a2"], ["atlas", "a2"], ["gallery", "a2"]):
        result = run_cli(*command, "--trained-dir", trained, "--outputs-dir", tiny_disk)
        assert_one_line_error(result, 1, "(cannot write|Read-only file system)")
    assert {p: p.read_bytes() for p in tiny_disk.rglob("*") if p.is_file()} == before


def test_a_writer_failing_mid_training_keeps_the_last_good_epoch(tmp_path, small_npz, run_cli,
                                                                 monkeypatch):
    root = tmp_path / "trained"
    real_replace, calls = os.replace, {"model": 0}

    def disk_full_at_second_checkpoint(src, dst, *args, **kwargs):
        if str(dst).endswith("full/model.keras"):
            calls["model"] += 1
            if calls["model"] == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", disk_full_at_second_checkpoint)
    result = run_cli("train", "--name", "full", "--epochs", "3", "--data", small_npz, "--quiet",
                     "--trained-dir", root)
    monkeypatch.setattr(os, "replace", real_replace)
    assert_one_line_error(result, 1, "full/model.keras: No space left on device")
    run = json.loads((root / "full" / "run.json").read_text())
    assert run["epochs_completed"] == 1
    assert len((root / "full" / "history.csv").read_text().splitlines()) == 2
    assert not [p.name for p in (root / "full").iterdir() if p.name.startswith(".tmp")]
    result = run_cli("train", "--name", "full", "--resume", "--quiet", "--trained-dir", root)
    assert result.code == 0, result.output
    assert json.loads((root / "full" / "run.json").read_text())["epochs_completed"] == 3


def test_a_trained_folder_that_cannot_be_created(tmp_path, small_npz, run_cli):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("keep me")
    result = run_cli("train", "--name", "x", "--epochs", "1", "--data", small_npz, "--quiet",
                     "--trained-dir", blocker / "trained")
    assert_one_line_error(result, 1, "not-a-folder")
    assert blocker.read_text() == "keep me"


def test_same_seed_same_accuracy_and_patterns(tmp_path, small_npz, run_cli):
    """Determinism on CPU: the same settings and seed give bit-identical weights, hence the
    same test accuracy, and the same patterns (tolerance: exact for weights and accuracy;
    patterns within 1e-5, as float reductions may be ordered differently between calls)."""
    import numpy as np

    for name in ("one", "two"):
        result = run_cli("train", "--name", name, "--epochs", "1", "--seed", "7", "--data",
                         small_npz, "--quiet", "--trained-dir", tmp_path / "t")
        assert result.code == 0, result.output
    runs = [json.loads((tmp_path / "t" / n / "run.json").read_text()) for n in ("one", "two")]
    assert runs[0]["metrics"]["test_accuracy"] == runs[1]["metrics"]["test_accuracy"]
    assert runs[0]["metrics"]["test_loss"] == runs[1]["metrics"]["test_loss"]
    arrays = []
    for name in ("one", "two"):
        result = run_cli("filters", name, "--layer", "conv2", "--steps", "20", "--pixel-starts", "1",
                         "--data-starts", "1", "--save-arrays",
                         "--trained-dir", tmp_path / "t", "--outputs-dir", tmp_path / "o")
        assert result.code == 0, result.output
        with np.load(tmp_path / "o" / name / "filters" / "conv2" / "patterns-conv2.npz") as z:
            arrays.append((z["input"], z["objective"]))
    np.testing.assert_allclose(arrays[0][0], arrays[1][0], atol=1e-5)
    np.testing.assert_allclose(arrays[0][1], arrays[1][1], rtol=1e-5)


def test_interrupted_atlas_cleans_its_card_folder(trained, tmp_path):
    shutil.rmtree(tmp_path / "a2", ignore_errors=True)
    proc = cnnviz("atlas", "a2", "--steps", "3000", "--trained-dir", trained,
                  "--outputs-dir", tmp_path)
    wait_for(tmp_path / "a2" / "stats", proc)  # the first stage with many figures
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err
    assert_gallery_intact(tmp_path / "a2")


def test_killed_between_history_and_run_json_resumes_consistently(tmp_path, small_npz, run_cli):
    """A checkpoint writes model.keras, history.csv, then run.json: a kill just before
    run.json leaves history one row ahead; resuming trusts run.json and history stays one
    row per epoch."""
    root = tmp_path / "trained"
    result = run_cli("train", "--name", "k", "--epochs", "2", "--data", small_npz, "--quiet",
                     "--trained-dir", root)
    assert result.code == 0, result.output
    run_file = root / "k" / "run.json"
    run = json.loads(run_file.read_text())
    run.update(epochs_completed=1, status="running")  # as if killed before the second run.json
    run_file.write_text(json.dumps(run))
    result = run_cli("train", "--name", "k", "--resume", "--quiet", "--trained-dir", root)
    assert result.code == 0, result.output
    rows = (root / "k" / "history.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["epoch", "1", "2"]
    assert json.loads(run_file.read_text())["epochs_completed"] == 2
