"""What snapshots cost (issue 32): `cnnviz train` of article2 for 5 epochs on the embedded
sample, with `--snapshots 1` (a snapshot at the start and after every epoch) against the same
command without, interleaved in one run (goal: at most 1.15×).

    python benchmarks/bench_snapshots.py [--repeats 3] [--epochs 5]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import interleaved  # noqa: E402


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    env = dict(os.environ, CNNVIZ_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="3")
    with tempfile.TemporaryDirectory() as tmp:
        def train(*extra: str):
            def go() -> None:
                subprocess.run([sys.executable, "-m", "cnnviz", "train", "--epochs",
                                str(args.epochs), "--quiet", "--name", "bench", "--force",
                                "--trained-dir", tmp, *extra], check=True, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return go

        times = interleaved({"plain": train(), "snapshots": train("--snapshots", "1")},
                            args.repeats)
        size = sum(p.stat().st_size for p in (Path(tmp) / "bench" / "snapshots").iterdir())
    plain, snapped = (statistics.median(times[k]) for k in ("plain", "snapshots"))
    print(f"cnnviz train, article2, {args.epochs} epochs on the embedded sample (medians of "
          f"{args.repeats}): {plain:.1f} s plain, {snapped:.1f} s with --snapshots 1: "
          f"{snapped / plain:.2f}× (goal ≤ 1.15×); {args.epochs + 1} snapshots, "
          f"{size / 2**20:.1f} MB")


if __name__ == "__main__":
    main()
