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


def bench_model(args, tmp, epochs: int = 1) -> tuple:
    """(trained_dir, name) of the model a benchmark measures: --model in --trained-dir, or
    article2 trained here for `epochs` on the embedded sample (not timed)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    if args.model is not None:
        return Path(args.trained_dir), args.model
    subprocess.run([sys.executable, "-m", "cnnviz", "train", "--epochs", str(epochs), "--quiet",
                    "--name", "bench", "--trained-dir", str(Path(tmp) / "trained")], check=True,
                   stdout=subprocess.DEVNULL, env=dict(os.environ, CNNVIZ_OFFLINE="1"))
    return Path(tmp) / "trained", "bench"


def model_arguments(description: str, **extra):
    """The parser every model benchmark shares: --repeats, --model, --trained-dir."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model")
    parser.add_argument("--trained-dir", default="trained")
    for flag, default in extra.items():
        parser.add_argument(f"--{flag.replace('_', '-')}", type=type(default), default=default)
    return parser.parse_args()
