"""The cluster of a multi-worker run: TF_CONFIG read and checked field by field, and the
wait for the other workers bounded in time.

TensorFlow's MultiWorkerMirroredStrategy blocks in C++, holding the GIL, until every worker
of TF_CONFIG has started: no Python thread, signal handler or exception can end that wait.
`bounded_wait` says at once whom it waits for and for how long; a watchdog process prints
one line when the time is up, and `faulthandler`'s C-level timer ends this process with exit
status 1 (TensorFlow offers no way to cancel the wait).
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import os
import socket
import subprocess
import sys
import warnings
from dataclasses import dataclass
from typing import Iterator

from cnnviz.errors import CnnvizWarning, UsageError

CLUSTER_TIMEOUT = 300.0  # seconds to wait for the other workers to start
EXAMPLE = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
           '"task": {"type": "worker", "index": 0}}')


@dataclass(frozen=True)
class Cluster:
    """TF_CONFIG, checked: every role's addresses, and this task's role and index."""

    roles: dict[str, list[str]]
    role: str
    index: int

    @property
    def address(self) -> str:
        return self.roles[self.role][self.index]

    def others(self) -> list[str]:
        """Every other task, as 'worker 1 (host:port)'."""
        return [f"{role} {k} ({address})" for role, addresses in self.roles.items()
                for k, address in enumerate(addresses) if (role, k) != (self.role, self.index)]


def read_cluster(text: str | None) -> Cluster:
    """TF_CONFIG's text → a Cluster; a UsageError naming the field that is wrong."""
    if not text:
        raise UsageError("strategy multi-worker reads the cluster from the TF_CONFIG "
                         "environment variable, which is not set; see the README, \"More than "
                         "one GPU or machine\"", "strategy")
    try:
        config = json.loads(text)
    except (ValueError, RecursionError):
        raise UsageError(f"TF_CONFIG is not JSON; expected {EXAMPLE}", "strategy") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not cluster:
        raise UsageError(f"TF_CONFIG: \"cluster\" must be an object of roles, e.g. {EXAMPLE}",
                         "strategy")
    for role, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses:
            raise UsageError(f"TF_CONFIG: cluster.{role} must be a list of \"host:port\" "
                             f"strings, got {json.dumps(addresses)[:60]}", "strategy")
        for k, address in enumerate(addresses):
            _check_address(address, f"cluster.{role}[{k}]")
    if not isinstance(task, dict):
        raise UsageError("TF_CONFIG: \"task\" must be an object like {\"type\": \"worker\", "
                         "\"index\": 0}", "strategy")
    role, index = task.get("type"), task.get("index")
    if role not in cluster:
        raise UsageError(f"TF_CONFIG: task.type {json.dumps(role)} is not a role of the "
                         f"cluster ({', '.join(cluster)})", "strategy")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[role]):
        raise UsageError(f"TF_CONFIG: task.index {json.dumps(index)} must be 0–"
                         f"{len(cluster[role]) - 1} (the cluster has {len(cluster[role])} "
                         f"{role} address(es))", "strategy")
    found = Cluster(cluster, role, index)
    _check_port_free(found.address)
    return found


def _check_address(address, field: str) -> None:
    host, _, port = address.rpartition(":") if isinstance(address, str) else ("", "", "")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UsageError(f"TF_CONFIG: {field} is {json.dumps(address)}; give \"host:port\" "
                         "with a port 1–65535", "strategy")


def _check_port_free(address: str) -> None:
    host, _, port = address.rpartition(":")
    with socket.socket(socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a server binds it
        try:
            probe.bind(("", int(port)))
        except OSError as exc:
            if exc.errno in (98, 48, 10048):  # in use
                raise UsageError(f"TF_CONFIG: this task's port {port} ({address}) is in use on "
                                 "this machine; choose another in TF_CONFIG", "strategy") from None


@contextlib.contextmanager
def bounded_wait(cluster: Cluster, timeout: float) -> Iterator[None]:
    """Inside the block the strategy waits for the other workers: said at once, and ended
    (one line, exit status 1) after `timeout` seconds."""
    if not timeout > 0:
        raise UsageError(f"cluster_timeout must be > 0 seconds, got {timeout}", "cluster_timeout")
    others = cluster.others()
    if not others:
        yield
        return
    warnings.warn(CnnvizWarning(f"{cluster.role} {cluster.index} waits up to {timeout:g} s for "
                                f"{', '.join(others)} of TF_CONFIG to start"), stacklevel=3)
    message = (f"error: no answer from {', '.join(others)} of TF_CONFIG after {timeout:g} s; "
               "start every worker (or raise the cluster timeout)\n")
    watchdog = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; time.sleep(float(sys.argv[1])); "
         "sys.stderr.write(sys.argv[2]); sys.stderr.flush()", str(timeout), message],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    sink = open(os.devnull, "w")
    faulthandler.dump_traceback_later(timeout + 1.0, exit=True, file=sink)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        sink.close()
        watchdog.kill()
        watchdog.wait()
