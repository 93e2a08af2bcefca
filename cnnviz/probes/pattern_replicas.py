"""The pattern ascent shared out over a tf.distribute strategy: each replica climbs its own
share of the objectives on its own device; the shares are gathered (across workers too)
and joined in objective order, so every worker ends with every pattern."""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Callable

import numpy as np
import tensorflow as tf

from cnnviz import distributed

if TYPE_CHECKING:
    from cnnviz.probes.patterns import Patterns

# Fields of probes.patterns.Patterns indexed by objective (their first axis)
PER_OBJECTIVE = ("maps", "objective", "start_objective", "best_inputs", "group_inputs", "curve",
                 "reference", "reference_index", "saturated", "diverse")


def over_replicas(strategy, texts: tuple[str, ...],
                  climb: Callable[[np.ndarray], Patterns]) -> Patterns:
    """climb(rows) → the Patterns of objectives `rows` (indices into texts, every objective
    as text). With one replica, or fewer objectives than replicas, every worker climbs them
    all itself."""
    count = len(texts)
    total = distributed.replicas(strategy)
    if total == 1 or count < total:
        return climb(np.arange(count))
    begin = time.perf_counter()
    shares = np.array_split(np.arange(count), total)
    first = distributed.worker_index(strategy) * distributed.local_replicas(strategy)
    devices = distributed.local_devices(strategy)

    def on_device(i: int):
        with tf.device(devices[i]):
            return climb(shares[first + i])

    if all("GPU" in d.upper() for d in devices):  # each GPU climbs at the same time
        with ThreadPoolExecutor(len(devices)) as pool:
            mine = list(pool.map(on_device, range(len(devices))))
    else:  # logical CPU devices share the same cores: one after another
        mine = [on_device(i) for i in range(len(devices))]
    return _joined(strategy, mine, texts, time.perf_counter() - begin)


def _joined(strategy, mine: list, texts: tuple[str, ...], seconds: float):
    """Every replica's share, in objective order, on every worker."""
    first = mine[0]
    joined = {}
    for name in PER_OBJECTIVE:
        if getattr(first, name) is not None:
            joined[name] = np.concatenate(distributed.everyone(
                strategy, [np.asarray(getattr(p, name)) for p in mine]))
    joined["snapshots"] = {step: np.concatenate(distributed.everyone(
        strategy, [p.snapshots[step] for p in mine])) for step in first.snapshots}
    return dataclasses.replace(first, objectives=texts, seconds=seconds, **joined)
