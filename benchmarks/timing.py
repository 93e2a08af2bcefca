"""Shared timing for the benchmark scripts."""

from __future__ import annotations

import time
from typing import Callable


def interleaved(variants: dict[str, Callable[[], object]], repeats: int,
                after_repeat: Callable[[int, dict[str, list[float]]], None] | None = None
                ) -> dict[str, list[float]]:
    """Seconds of every run of every variant; variants take turns within each repeat, so
    drift of a noisy machine hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for rep in range(repeats):
        for name, run in variants.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
        if after_repeat:
            after_repeat(rep, times)
    return times
