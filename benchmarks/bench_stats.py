"""`cnnviz stats` over Fashion-MNIST: speed against a plain model.predict, and peak memory.

    python benchmarks/bench_stats.py [--model NAME --trained-dir DIR] [--repeats 3]

Part 1 (same process, same run): statistics of all layers over the 10,000 test images,
end to end (compute, tables, figures), next to `model.predict` of an intermediate model with
the same layers over the same preprocessed images. Part 2 (a fresh process): the statistics
of all layers over all 70,000 images (train and test concatenated), reporting peak RSS.
Without --model, a 1-epoch article2 model is trained on Fashion-MNIST first (not timed).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cnnviz.runtime import import_tensorflow
from timing import interleaved

import_tensorflow()
import keras  # noqa: E402
import numpy as np  # noqa: E402

from cnnviz.data import Dataset, class_names, load_dataset  # noqa: E402
from cnnviz.galleries import stats as gallery  # noqa: E402
from cnnviz.model import load_model, resolve_layers  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--trained-dir", default="trained")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trained, name = Path(args.trained_dir), args.model
        if name is None:
            trained, name = Path(tmp), "bench"
            subprocess.run([sys.executable, "-m", "cnnviz", "train", "--dataset", "fashion",
                            "--epochs", "1", "--quiet", "--name", name, "--trained-dir",
                            str(trained)], check=True, stdout=subprocess.DEVNULL,
                           env=dict(os.environ, CNNVIZ_OFFLINE="1"))
        loaded = load_model(name, trained)
        data = load_dataset("fashion")
        layers = resolve_layers(loaded.model, "all")
        if args.memory_only:
            return memory(loaded, layers, data)
        speed(loaded, layers, data, args.repeats, Path(tmp))
        child = subprocess.run([sys.executable, __file__, "--memory-only", "--model", name,
                                "--trained-dir", str(trained)], capture_output=True, text=True)
        print(child.stdout.strip() or child.stderr.strip().splitlines()[-1])


def speed(loaded, layers, data: Dataset, repeats: int, tmp: Path) -> None:
    probe = keras.Model(loaded.model.inputs, [loaded.model.get_layer(n).output for n in layers])
    x = loaded.preprocessing.apply(data.x_test)

    def predict() -> None:
        probe.predict(x, batch_size=500, verbose=0)

    def stats() -> None:
        result = gallery.compute(loaded, layers, data, "test", None, 9)
        gallery.write_stats(loaded, result, data, "test", tmp / "out", class_names(data.name))

    def stats_only() -> None:
        gallery.compute(loaded, layers, data, "test", None, 9)

    variants = {"model.predict of the same layers": predict,
                "cnnviz stats, computation only": stats_only,
                "cnnviz stats, end to end with files": stats}
    times = interleaved(variants, repeats)
    base = statistics.median(times["model.predict of the same layers"])
    n = len(data.x_test)
    print(f"all {len(layers)} layers over {n:,} test images, median of {repeats}:")
    for k, ts in times.items():
        med = statistics.median(ts)
        print(f"  {k:<38} {med:6.2f} s  {n / med:7.0f} images/s  {med / base:4.2f}x predict")


def memory(loaded, layers, data: Dataset) -> None:
    everything = Dataset(data.name, data.x_train[:1], data.y_train[:1],
                         np.concatenate([data.x_train, data.x_test]),
                         np.concatenate([data.y_train, data.y_test]), data.source)
    start = time.perf_counter()
    gallery.compute(loaded, layers, everything, "test", None, 9)
    peak = peak_rss_mb()
    print(f"all layers over {len(everything.x_test):,} images (train + test): "
          f"{time.perf_counter() - start:.1f} s, peak RSS {peak:.0f} MB")


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss it is not inherited
    from the parent across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
