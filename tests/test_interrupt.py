"""A real `cnnviz train` process stopped mid-run (Ctrl-C or SIGKILL), then resumed."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest


def start_training(root, extra=()):
    env = dict(os.environ, CNNVIZ_OFFLINE="1", PYTHONUNBUFFERED="1")
    # the full embedded sample: epochs take seconds, so the signal lands inside a run
    cmd = [sys.executable, "-m", "cnnviz", "train", "--name", "cut", "--epochs", "40",
           "--conv", "8,16,16", "--dense", "16", "--quiet", "--trained-dir", str(root), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)


def epochs_completed(root) -> int:
    try:
        return json.loads((root / "cut" / "run.json").read_text())["epochs_completed"]
    except (OSError, ValueError, KeyError):
        return 0


def wait_for_first_epoch(proc, root, timeout=120):
    """Until run.json (written last in each checkpoint) records a completed epoch."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if epochs_completed(root) >= 1:
            return
        if proc.poll() is not None:
            pytest.fail(f"training ended early: {proc.communicate()}")
        time.sleep(0.2)
    proc.kill()
    pytest.fail("no epoch completed in time")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill"])
def test_stopped_run_resumes_from_its_last_completed_epoch(tmp_path, sig, run_cli):
    proc = start_training(tmp_path)
    wait_for_first_epoch(proc, tmp_path)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    run = json.loads((tmp_path / "cut" / "run.json").read_text())
    done = run["epochs_completed"]
    assert 1 <= done < 40
    if sig == signal.SIGINT:
        assert proc.returncode == 130
        assert f"keeps epoch {done} of 40; continue with `cnnviz train --name cut --resume`" in err
        assert "Traceback" not in err and run["status"] == "interrupted"
        assert not [p.name for p in (tmp_path / "cut").iterdir() if p.name.startswith(".tmp")]
    else:
        assert proc.returncode == -signal.SIGKILL and run["status"] == "running"

    result = run_cli("train", "--name", "cut", "--resume", "--epochs", str(done + 1), "--quiet",
                     "--trained-dir", tmp_path)
    assert result.code == 0, result.output
    assert f"resuming cut after epoch {done} of {done + 1}" in result.out
    run = json.loads((tmp_path / "cut" / "run.json").read_text())
    assert run["status"] == "complete" and run["epochs_completed"] == done + 1
    assert len((tmp_path / "cut" / "history.csv").read_text().splitlines()) == done + 2
    from cnnviz.model import load_model

    assert load_model("cut", tmp_path).model.count_params() > 0
