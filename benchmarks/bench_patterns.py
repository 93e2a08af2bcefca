"""Optimal input patterns: quality on a trained article2 model, and batching speed-ups.

    python benchmarks/bench_patterns.py [--model NAME --trained-dir DIR] [--repeats 3]

Quality: for conv1, conv2, conv3, the share of maps whose best pattern, fed back through the
network, gives a post-ReLU mean activation > 0 and above the mean that map reaches on the
real test images. Speed (conv3, 64 maps × 4 scales × 2 starts × 100 steps): one batch of all
maps vs a compiled one-map-at-a-time loop doing the same work, and vs the Keras-example
style (a Python loop over filters, the filter index a Python int, so one trace per filter).
Without --model, article2 is trained for 10 epochs on the embedded sample first (not timed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from cnnviz.runtime import import_tensorflow
from timing import interleaved

tf = import_tensorflow()
import keras  # noqa: E402
import numpy as np  # noqa: E402

from cnnviz.data import load_dataset  # noqa: E402
from cnnviz.model import load_model  # noqa: E402
from cnnviz.probes import patterns  # noqa: E402
from cnnviz.probes.activations import activations  # noqa: E402
from cnnviz.probes.patterns import (PatternSettings, _compiled_step, optimal_patterns,  # noqa: E402
                                    response, starting_images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--trained-dir", default="trained")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trained, name = Path(args.trained_dir), args.model
        if name is None:
            trained, name = Path(tmp), "bench"
            subprocess.run([sys.executable, "-m", "cnnviz", "train", "--epochs", "10", "--quiet",
                            "--name", name, "--trained-dir", str(trained)], check=True,
                           env=dict(os.environ, CNNVIZ_OFFLINE="1"), stdout=subprocess.DEVNULL)
        loaded = load_model(name, trained)
        if not args.skip_quality:
            quality(loaded)
        speed(loaded, args.repeats, PatternSettings())
        speed(loaded, args.repeats, PatternSettings(scales=(7,), starts=1))


def quality(loaded) -> None:
    from cnnviz import bundle

    data = load_dataset(*bundle.dataset_of(loaded.run))
    real = activations(loaded.model, ["conv1", "conv2", "conv3"], loaded.preprocessing.apply(data.x_test))
    settings = PatternSettings()
    print(f"quality, default settings ({len(settings.scales)} scales × {settings.starts} starts × "
          f"{settings.steps} steps), real means over {len(data.x_test):,} test images of {data.name}:")
    for layer in ("conv1", "conv2", "conv3"):
        maps = np.arange(loaded.model.get_layer(layer).output.shape[-1])
        result = optimal_patterns(loaded.model, layer, maps, loaded.preprocessing, settings)
        fed_back = np.asarray(keras.Model(loaded.model.inputs, loaded.model.get_layer(layer).output)(
            result.best_inputs)).mean(axis=(1, 2))[maps, maps]
        real_mean = real.layers[layer].mean(axis=(0, 1, 2))
        dead_starts = int((result.start_objective == 0).sum())
        print(f"  {layer}: {int((fed_back > 0).sum())}/{len(maps)} maps > 0, "
              f"{int((fed_back > real_mean).sum())}/{len(maps)} above their real-image mean "
              f"(median pattern {np.median(fed_back):.2f} vs real {np.median(real_mean):.2f}); "
              f"{dead_starts} of {result.start_objective.size} starts began at exactly 0; "
              f"{result.seconds:.1f} s")


def speed(loaded, repeats: int, settings: PatternSettings) -> None:
    maps = np.arange(64)
    prep = loaded.preprocessing
    per_map = len(settings.scales) * settings.starts
    respond = response(loaded.model, "conv3")
    lo = np.minimum(prep.apply(np.zeros((1, 28, 28))), prep.apply(np.full((1, 28, 28), 255.0)))
    hi = np.maximum(prep.apply(np.zeros((1, 28, 28))), prep.apply(np.full((1, 28, 28), 255.0)))
    lo, hi, rate = tf.constant(lo), tf.constant(hi), tf.constant(settings.step_size)
    items = np.arange(64 * per_map)
    starts = prep.apply(starting_images(items // per_map, settings,
                                        (items // settings.starts) % len(settings.scales),
                                        items % settings.starts)).reshape(64, per_map, 28, 28, 1)

    def batched() -> None:
        patterns.PARALLEL_CHUNKS = 1
        optimal_patterns(loaded.model, "conv3", maps, prep, settings)

    def chunks_side_by_side() -> None:  # before issue 12: fast, but crashed branched models
        patterns.PARALLEL_CHUNKS = max(2, os.cpu_count() or 2)
        try:
            optimal_patterns(loaded.model, "conv3", maps, prep, settings)
        finally:
            patterns.PARALLEL_CHUNKS = 1

    def one_at_a_time() -> None:
        step = _compiled_step(respond, "mean", "auto")  # compiled once, reused for every map
        step(tf.Variable(starts[0]), tf.zeros(per_map, tf.int32), lo, hi, rate)  # warm-up trace
        for m in maps:
            x = tf.Variable(starts[m])
            targets = tf.constant(np.full(per_map, m, np.int32))
            for _ in range(settings.steps):
                step(x, targets, lo, hi, rate)

    def keras_example_style() -> None:
        feed = keras.Model(loaded.model.inputs, loaded.model.get_layer("conv3").output)

        @tf.function
        def step(x, filter_index):  # filter_index is a Python int: a new trace per filter
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_mean(feed(x)[..., filter_index])
            grad = tape.gradient(loss, x)
            grad = grad / (tf.sqrt(tf.reduce_mean(tf.square(grad))) + 1e-12)
            return tf.clip_by_value(x + rate * grad, lo, hi)

        for m in maps:
            x = tf.constant(starts[m])
            for _ in range(settings.steps):
                x = step(x, int(m))

    variants = {"one batch (cnnviz)": batched,
                "one batch, parallel chunks": chunks_side_by_side,
                "compiled one map at a time": one_at_a_time,
                "Keras-example style loop": keras_example_style}
    times = interleaved(variants, repeats)
    base = statistics.median(times["one batch (cnnviz)"])
    print(f"speed, conv3, 64 maps × {per_map} starts × {settings.steps} steps, median of {repeats}:")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:<28} {med:6.2f} s   batch speed-up {med / base:5.1f}x")


if __name__ == "__main__":
    main()
