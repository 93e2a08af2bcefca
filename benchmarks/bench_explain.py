"""Explanations: cnnviz's batched integrated gradients and SmoothGrad against per-image loops.

    python benchmarks/bench_explain.py [--images 1000] [--model NAME --trained-dir DIR]

Integrated gradients (50 steps) and SmoothGrad (50 samples) of the predicted class's logit
for the first N test images of article2: images per second for
- cnnviz: `explain(...)`, every image × step in batches of 256 (one compiled gradient);
- an eager per-image loop: for each image its 50 inputs in one GradientTape, eagerly (how
  the peers' examples run);
- a compiled per-image loop: the same with the gradient in one tf.function;
- the ceiling: the same number of gradients of the logit, batches of 256 of ready-made
  inputs through one compiled gradient and nothing else — what this machine can do at all,
  so `ceiling / eager loop` bounds the speed-up any batching can give over the loop.
Each variant runs in its own process, which reports its peak resident memory (VmHWM), so
memory is compared too. Without --model, article2 is trained for 3 epochs first (not timed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = ("cnnviz", "eager loop", "compiled loop", "ceiling")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--model")
    parser.add_argument("--trained-dir", default="trained")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        return measure(args)
    with tempfile.TemporaryDirectory() as tmp:
        trained, name = Path(args.trained_dir), args.model
        if name is None:
            trained, name = Path(tmp), "bench"
            subprocess.run([sys.executable, "-m", "cnnviz", "train", "--epochs", "3", "--quiet",
                            "--name", name, "--trained-dir", str(trained)], check=True,
                           env=dict(os.environ, CNNVIZ_OFFLINE="1"), stdout=subprocess.DEVNULL)
        results = {}
        for variant in VARIANTS:
            done = subprocess.run([sys.executable, __file__, "--variant", variant, "--images",
                                   str(args.images), "--model", name, "--trained-dir", str(trained)],
                                  check=True, capture_output=True, text=True)
            results[variant] = json.loads(done.stdout.strip().splitlines()[-1])
    base = results["eager loop"]
    print(f"integrated gradients (50 steps) + SmoothGrad (50 samples), {args.images} test images "
          f"of article2, 2 × 50 × {args.images:,} gradients")
    print("| variant | seconds | images/s | × eager loop | × compiled loop | peak memory MB |")
    print("|---|---|---|---|---|---|")
    for variant, r in results.items():
        print(f"| {variant} | {r['seconds']:.1f} | {args.images / r['seconds']:.0f} | "
              f"×{base['seconds'] / r['seconds']:.1f} | "
              f"×{results['compiled loop']['seconds'] / r['seconds']:.1f} | {r['peak_mb']:.0f} |")
    ceiling = results["ceiling"]["seconds"]
    print(f"(ceiling / eager loop: ×{base['seconds'] / ceiling:.1f}, the most any batching can give "
          f"here; cnnviz runs at {ceiling / results['cnnviz']['seconds']:.0%} of the ceiling)")


def measure(args) -> None:
    from cnnviz.runtime import import_tensorflow

    tf = import_tensorflow()
    import numpy as np

    from cnnviz import bundle
    from cnnviz.data import load_dataset
    from cnnviz.model import load_model
    from cnnviz.probes.attribution import ExplainSettings, explain, logits_of

    loaded = load_model(args.model, Path(args.trained_dir))
    prep = loaded.preprocessing
    pixels = np.asarray(load_dataset(*bundle.dataset_of(loaded.run)).x_test[:args.images], np.float32)
    x = prep.apply(pixels)
    targets = np.asarray(loaded.model.predict(x, verbose=0)).argmax(axis=1)
    run = logits_of(loaded.model)
    sigma = 0.15 * (prep.apply(np.full((1, 28, 28), 255.0)) - prep.apply(np.zeros((1, 28, 28))))[0]
    alphas = ((np.arange(50) + 0.5) / 50).astype(np.float32).reshape(-1, 1, 1, 1)
    base = prep.apply(np.zeros((1, 28, 28)))[0]

    def gradient(inputs, target):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            total = tf.reduce_sum(run(inputs)[1][:, target])
        return tape.gradient(total, inputs)

    compiled = tf.function(gradient)

    @tf.function
    def batch_gradient(inputs, chosen):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            total = tf.reduce_sum(tf.gather(run(inputs)[1], chosen, axis=1, batch_dims=1))
        return tape.gradient(total, inputs)

    start = time.perf_counter()
    if args.variant == "cnnviz":
        explain(loaded.model, prep, pixels, targets,
                ExplainSettings(methods=("integrated-gradients", "smoothgrad"), steps=50, samples=50))
    elif args.variant == "ceiling":
        items = np.repeat(np.arange(len(x)), 100)  # 50 path steps + 50 noisy samples each
        for first in range(0, len(items), 256):
            chunk = items[first:first + 256]
            batch_gradient(tf.constant(x[chunk]), tf.constant(targets[chunk])).numpy()
    else:
        step = gradient if args.variant == "eager loop" else compiled
        rng = np.random.default_rng(0)
        for i in range(len(x)):
            path = tf.constant(base + alphas * (x[i] - base))
            ig = (x[i] - base) * step(path, int(targets[i])).numpy().mean(axis=0)
            noisy = tf.constant(x[i] + sigma * rng.normal(size=(50, *x.shape[1:])).astype(np.float32))
            smooth = step(noisy, int(targets[i])).numpy().mean(axis=0)
            del ig, smooth
    seconds = time.perf_counter() - start
    peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
    print(json.dumps({"seconds": seconds, "peak_mb": peak / 1024}))


if __name__ == "__main__":
    main()
