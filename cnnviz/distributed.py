"""tf.distribute for cnnviz: choosing the strategy, and one pass over a dataset shared out
among its replicas (the devices of this machine and of the other workers).

    strategy = make_strategy("mirrored")
    with sharing(strategy):            # the probes below split their work
        m.stats()

A pass gives step s to global replica g the items [s·G + g·b, s·G + (g+1)·b) (b the batch
per replica, G = b × replicas), padded to b, so every replica of every worker runs every
step (collectives never wait for a worker with nothing left). Each worker keeps its own
replicas' partial sums; `everyone` gathers them across workers at the end, so every worker
merges the same numbers in the same order.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
import tempfile
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from cnnviz.cluster import CLUSTER_TIMEOUT, bounded_wait, read_cluster
from cnnviz.errors import UsageError
from cnnviz.runtime import import_tensorflow, stderr_silenced

tf = import_tensorflow()

STRATEGIES = ("auto", "default", "mirrored", "multi-worker")
_made: dict[str, Any] = {}
_active: contextvars.ContextVar = contextvars.ContextVar("cnnviz_strategy", default=None)


def make_strategy(name: str = "auto", cluster_timeout: float = CLUSTER_TIMEOUT):
    """The tf.distribute strategy called `name`: default (one device), mirrored (every GPU of
    this machine, else every logical CPU device), multi-worker (the cluster in TF_CONFIG),
    auto (mirrored when more than one GPU is visible, else default).

    multi-worker waits for every worker of TF_CONFIG to start: at most `cluster_timeout`
    seconds, after which the process ends with exit status 1 (cnnviz.cluster says why)."""
    if name not in STRATEGIES:
        raise UsageError(f"unknown strategy {name!r}; valid: {', '.join(STRATEGIES)}", "strategy")
    if name == "auto":
        name = "mirrored" if len(tf.config.list_logical_devices("GPU")) > 1 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name not in _made:
        _made[name] = _mirrored() if name == "mirrored" else _multi_worker(cluster_timeout)
    return _made[name]


def _mirrored():
    devices = (tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU"))
    with stderr_silenced():
        return tf.distribute.MirroredStrategy([d.name for d in devices])


def _multi_worker(timeout: float):
    cluster = read_cluster(os.environ.get("TF_CONFIG"))
    try:
        with bounded_wait(cluster, timeout), stderr_silenced():
            return tf.distribute.MultiWorkerMirroredStrategy()
    except (RuntimeError, ValueError) as exc:
        raise UsageError(f"multi-worker: {str(exc).splitlines()[0]} (the strategy must be made "
                         "before TensorFlow runs anything in the process)", "strategy") from None


def resolve(strategy) -> Any:
    """A strategy object from a name, an object, or None (the active one, else default)."""
    if strategy is None:
        return active()
    return make_strategy(strategy) if isinstance(strategy, str) else strategy


@contextlib.contextmanager
def sharing(strategy) -> Iterator[Any]:
    """Within the block, the probes share their work out over `strategy`'s replicas."""
    token = _active.set(resolve(strategy))
    try:
        yield _active.get()
    finally:
        _active.reset(token)


def active():
    """The strategy set by `sharing`, else TensorFlow's default (one device)."""
    return _active.get() or tf.distribute.get_strategy()


def active_scope():
    """The strategy whose scope the caller is in (TensorFlow's default outside any)."""
    return tf.distribute.get_strategy()


def replicas(strategy) -> int:
    return int(strategy.num_replicas_in_sync)


def _resolver(strategy):
    return getattr(strategy, "cluster_resolver", None)


def workers(strategy) -> int:
    resolver = _resolver(strategy)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return 1
    spec = resolver.cluster_spec().as_dict()
    return sum(len(spec.get(job, ())) for job in ("chief", "worker"))


def worker_index(strategy) -> int:
    """This worker's place among the workers (the chief first)."""
    resolver = _resolver(strategy)
    if workers(strategy) == 1:
        return 0
    chiefs = len(resolver.cluster_spec().as_dict().get("chief", ()))
    return int(resolver.task_id) + (0 if resolver.task_type == "chief" else chiefs)


def is_chief(strategy) -> bool:
    """Whether this process writes files: the only process, or the cluster's chief (the
    `chief` task, else worker 0)."""
    return worker_index(strategy) == 0


@contextlib.contextmanager
def writes_to(folder: Path, strategy) -> Iterator[Path]:
    """Where this process writes `folder`: the folder itself, or, on a worker that is not
    the chief, a temporary folder removed when the block ends (it computes its share like
    every worker; only the chief's files are kept)."""
    if is_chief(strategy):
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="cnnviz-worker-") as scratch:
        yield Path(scratch) / folder.name


def local_replicas(strategy) -> int:
    return replicas(strategy) // workers(strategy)


def local_devices(strategy) -> list[str]:
    """The devices this worker's replicas run on."""
    try:
        return list(strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy
        return [""]


def describe(strategy) -> str:
    """One line: which strategy, how many replicas, which worker this is."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        role = "the chief" if is_chief(strategy) else "not the chief: it writes nothing"
        return (f"strategy multi-worker: {workers(strategy)} workers × {local_replicas(strategy)} "
                f"device(s), {replicas(strategy)} replicas; this is worker "
                f"{worker_index(strategy)}, {role}")
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        names = ", ".join(d.rsplit("/", 1)[-1].replace("device:", "") for d in local_devices(strategy))
        return f"strategy mirrored: {replicas(strategy)} replicas ({names})"
    return "strategy default: one device"


@dataclass(frozen=True)
class Shard:
    """One replica's part of one step of a pass."""

    replica: int  # the global replica id
    start: int    # dataset index of its first item
    count: int    # real items; the rest of its batch is padding


def shards(strategy, n: int, batch: int) -> list[list[Shard]]:
    """Every step's shards for every global replica (the same list on every worker)."""
    total = replicas(strategy)
    step_items = batch * total
    steps = max(1, math.ceil(n / step_items))
    return [[Shard(g, min(s * step_items + g * batch, n),
                   max(0, min(batch, n - s * step_items - g * batch))) for g in range(total)]
            for s in range(steps)]


def replicated(strategy, step: Callable[..., Any]) -> Callable[..., Any]:
    """`step` compiled to run on every replica of `strategy` (keep it to call it again
    without tracing: `sharded_pass(..., run=...)`)."""
    return tf.function(lambda *args: strategy.run(step, args=args))


def sharded_pass(strategy, n: int, batch: int, load: Callable[[Shard], tuple],
                 step: Callable[..., Any] | None = None,
                 run: Callable[..., Any] | None = None) -> Iterator[tuple[Shard, Any]]:
    """Run `step` on every replica over its shards of items 0..n-1.

    load(shard) → a tuple of NumPy arrays of the same shapes for every shard (`padded` makes
    a shard's `count` rows into `batch`); step(*tensors) runs on the replica's device.
    Yields (shard, the step's results as NumPy) for this worker's replicas, step by step,
    in replica order. run: `replicated(strategy, step)` made earlier, instead of step."""
    first = worker_index(strategy) * local_replicas(strategy)
    mine = range(first, first + local_replicas(strategy))
    run = run or replicated(strategy, step)
    for step_shards in shards(strategy, n, batch):
        parts = {s.replica: tuple(load(s)) for s in step_shards if s.replica in mine}
        inputs = strategy.experimental_distribute_values_from_function(
            lambda ctx: parts[ctx.replica_id_in_sync_group])
        found = run(*inputs)
        local = [strategy.experimental_local_results(v) for v in tf.nest.flatten(found)]
        for i, replica in enumerate(mine):
            yield step_shards[replica], tf.nest.pack_sequence_as(
                found, [np.asarray(values[i]) for values in local])


def padded(array: np.ndarray, size: int) -> np.ndarray:
    """The array with zero rows appended up to `size` rows."""
    array = np.asarray(array)
    if len(array) == size:
        return array
    pad = np.zeros((size - len(array), *array.shape[1:]), array.dtype)
    return np.concatenate([array, pad])


def everyone(strategy, local: list[np.ndarray]) -> list[np.ndarray]:
    """One array per local replica in; one per global replica out, on every worker (a
    collective across workers; their lengths may differ, nothing else)."""
    if workers(strategy) == 1:
        return list(local)
    first = worker_index(strategy) * local_replicas(strategy)
    sizes = _sizes(strategy, [len(a) for a in local])
    value = strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(local[ctx.replica_id_in_sync_group - first]))
    stacked = strategy.gather(value, axis=0).numpy()
    return np.split(stacked, np.cumsum(sizes)[:-1])


def _sizes(strategy, sizes: list[int]) -> list[int]:
    first = worker_index(strategy) * local_replicas(strategy)
    value = strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant([sizes[ctx.replica_id_in_sync_group - first]], tf.float64))
    return [int(v) for v in strategy.gather(value, axis=0).numpy()]


def in_order(strategy, n: int, batch: int, local_rows: list[np.ndarray]) -> np.ndarray:
    """Per-item rows of a pass back in dataset order on every worker. local_rows: for each
    of this worker's replicas, the real rows of its shards one after another."""
    rows = everyone(strategy, local_rows)
    index = [[] for _ in rows]
    for step_shards in shards(strategy, n, batch):
        for s in step_shards:
            index[s.replica].append(np.arange(s.start, s.start + s.count))
    out = np.zeros((n, *rows[0].shape[1:]), rows[0].dtype)
    for where, values in zip(index, rows):
        out[np.concatenate(where)] = values
    return out
