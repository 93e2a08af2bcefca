"""The atlas with its figures drawn by a worker process while the next stage computes,
against the same atlas drawing every figure in this process, in one run.

    python benchmarks/bench_atlas_overlap.py [--repeats 3] [--model NAME --trained-dir DIR]

Each repeat runs both variants in turn (after one untimed atlas that compiles everything)
and reports wall seconds and CPU use ((user + system) / wall, children included: 200 % is
both cores busy). The two galleries hold the same files and the same arrays (checked).
Without --model, article2 is trained for 1 epoch on the embedded sample first (not timed).
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from timing import bench_model, model_arguments

import cnnviz
from cnnviz.render import parallel


def cpu_seconds() -> float:
    own, children = (resource.getrusage(w) for w in (resource.RUSAGE_SELF,
                                                     resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    args = model_arguments(__doc__.splitlines()[0])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        trained, name = bench_model(args, tmp)
        m = cnnviz.load(name, trained_dir=trained)
        m.atlas(tmp / "warm", progress=False)
        results: dict[str, list[tuple[float, float]]] = {"drawn behind": [], "drawn inline": []}
        for rep in range(args.repeats):
            for label in results:
                parallel.BEHIND = label == "drawn behind"
                cpu, start = cpu_seconds(), time.perf_counter()
                m.atlas(tmp / f"{label}-{rep}", progress=False)
                wall = time.perf_counter() - start
                results[label].append((wall, (cpu_seconds() - cpu) / wall))
        parallel.BEHIND = True
        same(tmp / "drawn behind-0", tmp / "drawn inline-0")
        base = statistics.median(w for w, _ in results["drawn inline"])
        for label, runs in results.items():
            wall = statistics.median(w for w, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            print(f"{label:<13} {wall:6.1f} s  CPU {cpu:5.0%}  ({wall / base:.2f}× inline)")


def same(a: Path, b: Path) -> None:
    """The same files, and equal arrays in every .npz."""
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in (f for f in files if f.suffix == ".npz"):
        with np.load(a / rel) as x, np.load(b / rel) as y:
            assert all(np.array_equal(x[k], y[k]) for k in x.files), rel


if __name__ == "__main__":
    main()
