"""Layer geometry (issue 30): its time, and the memory of CKA streamed in batches against a
full-Gram-matrix NumPy computation of the same matrix.

    python benchmarks/bench_geometry.py [--images 10000] [--gram-images 4000]

1. `m.geometry()` of article2, every layer, over the 2,000 test images (the probe fits on
   the 8,000 training images): seconds (goal < 30 s on 2 cores), median of --repeats.
2. `cka_between` of two article2 runs (seeds 1 and 2), every layer × every layer, over
   --images images: seconds and peak RSS of the process (goal < 1.5 GB).
3. The same A×B matrix over --gram-images images, streamed and from full n × n Gram
   matrices (the textbook formula, every layer's centred Gram matrix held): time and peak
   RSS ratios, each measured in a fresh process, and the largest difference of the values.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time



def child(kind: str, trained: str, images: int) -> dict:
    """Runs one measurement in this script, in a fresh process: its numbers and peak RSS."""
    done = subprocess.run([sys.executable, __file__, "--child", kind, trained, str(images)],
                          check=True, capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CNNVIZ_OFFLINE="1"))
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(kind: str, trained: str, images: int) -> None:
    import numpy as np

    import cnnviz
    from cnnviz.probes.geometry import cka_between, features_of
    from cnnviz.graph import graph_of

    a, b = (cnnviz.load(name, trained_dir=trained) for name in ("a", "b"))
    data = a.data()
    x = np.concatenate([data.split("train")[0], data.split("test")[0]])[:images]
    layers = list(a.layers)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    if kind == "geometry":
        found = a.geometry(layers="all")
        result = {"probe": found.probe, "model": found.model_accuracy}
    elif kind == "streamed":
        found = cka_between((a.model, a.loaded.preprocessing), (b.model, b.loaded.preprocessing),
                            (layers, layers), x)
        result = {"cka": found.tolist()}
    else:  # every layer's centred n × n Gram matrix, then the biased CKA of each pair
        grams = []
        for m in (a, b):
            values = graph_of(m.model).run(m.loaded.preprocessing.apply(x.astype(np.float32)),
                                           layers)
            for v in values:
                f = features_of(np.asarray(v))
                k = f @ f.T
                mean_rows = k.mean(axis=0)
                k -= mean_rows[None, :] + mean_rows[:, None] - mean_rows.mean()
                grams.append(k)
        L = len(layers)
        found = np.array([[np.sum(grams[i] * grams[L + j]) /
                           np.sqrt(np.sum(grams[i] ** 2) * np.sum(grams[L + j] ** 2))
                           for j in range(L)] for i in range(L)])
        result = {"cka": found.tolist()}
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({**result, "seconds": seconds, "peak_mb": peak / 1024,
                      "growth_mb": (peak - before) / 1024}))


def main() -> None:
    import argparse

    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--gram-images", type=int, default=4_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name, seed in (("a", 1), ("b", 2)):
            subprocess.run([sys.executable, "-m", "cnnviz", "train", "--epochs", "1", "--quiet",
                            "--name", name, "--seed", str(seed), "--trained-dir", tmp],
                           check=True, stdout=subprocess.DEVNULL,
                           env=dict(os.environ, CNNVIZ_OFFLINE="1"))
        runs = [child("geometry", tmp, 0) for _ in range(args.repeats)]
        seconds = sorted(r["seconds"] for r in runs)[len(runs) // 2]
        print(f"geometry, article2, 7 layers, 8,000 + 2,000 images: {seconds:.1f} s "
              f"(median of {len(runs)}; goal < 30 s); probes "
              + ", ".join(f"{k} {v:.3f}" for k, v in runs[0]["probe"].items())
              + f"; the network {runs[0]['model']:.3f}")
        big = child("streamed", tmp, args.images)
        print(f"CKA A×B, 7 × 7 layers, {args.images:,} images, streamed: {big['seconds']:.1f} s, "
              f"peak RSS {big['peak_mb']:,.0f} MB (goal < 1,500 MB)")
        streamed = child("streamed", tmp, args.gram_images)
        gram = child("gram", tmp, args.gram_images)
        gap = np.max(np.abs(np.array(streamed["cka"]) - np.array(gram["cka"])))
        print(f"CKA A×B over {args.gram_images:,} images: streamed {streamed['seconds']:.1f} s, "
              f"{streamed['peak_mb']:,.0f} MB; full Gram matrices {gram['seconds']:.1f} s, "
              f"{gram['peak_mb']:,.0f} MB; time ratio {streamed['seconds'] / gram['seconds']:.2f}, "
              f"memory ratio {streamed['peak_mb'] / gram['peak_mb']:.2f}; "
              f"largest difference {gap:.4f} (minibatch unbiased vs full biased estimate)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        measure(*sys.argv[2:4], int(sys.argv[4]))
    else:
        main()
