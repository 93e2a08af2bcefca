"""TF_CONFIG checked field by field, and a peer that never starts (issue 26, item 15)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from conftest import assert_one_line_error

BAD_CONFIGS = [
    ({"cluster": {"worker": "127.0.0.1:2222"}, "task": {"type": "worker", "index": 0}},
     "cluster.worker must be a list"),
    ({"cluster": {"worker": ["127.0.0.1:2222"]}, "task": {"type": "worker", "index": -1}},
     "task.index -1 must be 0–0"),
    ({"cluster": {"worker": ["127.0.0.1"]}, "task": {"type": "worker", "index": 0}},
     "cluster.worker\\[0\\] is \"127.0.0.1\"; give \"host:port\""),
    ({"cluster": {"worker": ["127.0.0.1:99999"]}, "task": {"type": "worker", "index": 0}},
     "with a port 1–65535"),
    ({"cluster": {"worker": ["127.0.0.1:2222"]}, "task": {"type": "chief", "index": 0}},
     "task.type \"chief\" is not a role"),
    ({"cluster": [], "task": {}}, "\"cluster\" must be an object"),
    ("not json", "TF_CONFIG is not JSON"),
]


@pytest.mark.parametrize("config, fragment", BAD_CONFIGS, ids=[b[1][:24] for b in BAD_CONFIGS])
def test_a_wrong_field_is_named_in_one_line(run_cli, trained, tmp_path, monkeypatch, config,
                                            fragment):
    monkeypatch.setenv("TF_CONFIG", config if isinstance(config, str) else json.dumps(config))
    result = run_cli("stats", "a2", "--strategy", "multi-worker", "--trained-dir", trained,
                     "--outputs-dir", tmp_path / "out")
    assert_one_line_error(result, 2, fragment)
    assert not (tmp_path / "out").exists()


def test_a_taken_port_is_named(run_cli, trained, tmp_path, monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("TF_CONFIG", json.dumps(
            {"cluster": {"worker": [f"127.0.0.1:{port}", "127.0.0.1:1"]},
             "task": {"type": "worker", "index": 0}}))
        result = run_cli("stats", "a2", "--strategy", "multi-worker", "--trained-dir", trained,
                         "--outputs-dir", tmp_path / "out")
    assert_one_line_error(result, 2, f"this task's port {port} .* is in use")


def test_a_peer_that_never_starts_is_waited_for_a_bounded_time(trained, tmp_path):
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    env = dict(os.environ, CNNVIZ_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="3", TF_CONFIG=json.dumps(
        {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
         "task": {"type": "worker", "index": 0}}))
    done = subprocess.run([sys.executable, "-m", "cnnviz", "stats", "a2", "--strategy",
                           "multi-worker", "--cluster-timeout", "4", "--trained-dir", str(trained),
                           "--outputs-dir", str(tmp_path / "out")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert any(line.startswith("warning: worker 0 waits up to 4 s for worker 1 "
                               f"(127.0.0.1:{ports[1]})") for line in lines), lines
    assert lines[-1].startswith(f"error: no answer from worker 1 (127.0.0.1:{ports[1]}) of "
                                "TF_CONFIG after 4 s"), lines
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()
