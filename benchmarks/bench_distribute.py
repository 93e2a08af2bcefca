"""The cost of tf.distribute: a one-replica mirrored strategy against none (goal ≤ 10 %).

    python benchmarks/bench_distribute.py [--repeats 3] [--images 10000] [--all-gpus]

Same model (article2), same images, measured in the same run, the variants taking turns:
  train     an epoch of cnnviz's fit (`train.fit`) with the model built outside any
            strategy / inside a MirroredStrategy of one device (after an untimed first
            epoch that traces: the cost per step);
  stats     the statistics pass of every layer (`layer_stats`);
  means     the class means of every layer (`class_means`);
  patterns  gradient ascent for the 64 maps of conv3 (30 steps).
The one device is the first GPU when there is one, else the CPU. --all-gpus adds a mirrored
strategy over every GPU (the speed-up of several, where a machine has them).
"""

from __future__ import annotations

import argparse
import statistics
import time

from cnnviz.runtime import import_tensorflow
from timing import interleaved

tf = import_tensorflow()

import keras  # noqa: E402

from cnnviz import training  # noqa: E402
from cnnviz.data import Preprocessing, load_dataset  # noqa: E402
from cnnviz.graph import graph_of  # noqa: E402
from cnnviz.model import build_model, compile_model  # noqa: E402
from cnnviz.probes.activations import class_means  # noqa: E402
from cnnviz.probes.patterns import PatternSettings, optimal_patterns  # noqa: E402
from cnnviz.probes.stats import layer_stats  # noqa: E402
from cnnviz.spec import resolve_settings, specs_from_settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--all-gpus", action="store_true")
    parser.add_argument("--only", default="", help="a comma list of workloads to run")
    args = parser.parse_args()

    try:
        data = load_dataset("fashion")
    except Exception:  # noqa: BLE001 - a machine without it: the embedded MNIST sample
        data = load_dataset("mnist")
    print(data.describe())
    network, spec = specs_from_settings(resolve_settings("article2", overrides={"epochs": 1})[1])
    prep = Preprocessing.fit(spec.normalize, data.x_train)
    x, y = data.x_train[:args.images], data.y_train[:args.images]
    xs, xt, yt = prep.apply(x), prep.apply(data.x_test[:2000]), data.y_test[:2000]
    gpus = tf.config.list_logical_devices("GPU")
    device = (gpus or tf.config.list_logical_devices("CPU"))[0].name
    strategies = {"none": tf.distribute.get_strategy(),
                  "mirrored-1": tf.distribute.MirroredStrategy([device])}
    if args.all_gpus and len(gpus) > 1:
        strategies[f"mirrored-{len(gpus)}"] = tf.distribute.MirroredStrategy([g.name for g in gpus])
    print(f"one device: {device}; {len(x):,} images; {args.repeats} repeats\n")
    keras.utils.set_random_seed(0)
    probe_model = build_model(network, spec)
    layers = graph_of(probe_model).addresses
    settings = PatternSettings(steps=30, data_starts=0)

    def train(strategy):
        with strategy.scope():  # built once: the warm-up epoch traces, the timed ones reuse it
            model = build_model(network, spec)
            compile_model(model, spec, training.STEPS_PER_EXECUTION)

        def run():
            with strategy.scope():
                training.fit(model, xs, y, xt, yt, batch_size=spec.batch_size, seed=spec.seed,
                             epochs=1, verbose=0)
        return run

    workloads = {
        "train": train,
        "stats": lambda s: lambda: layer_stats(probe_model, layers, x, y, prep, strategy=s),
        "means": lambda s: lambda: class_means(probe_model, layers, x, y, prep, strategy=s),
        "patterns": lambda s: lambda: optimal_patterns(probe_model, "conv3", range(64), prep,
                                                       settings, strategy=s),
    }
    print(f"{'workload':<9} " + " ".join(f"{name:>12}" for name in strategies)
          + "   one replica vs none")
    chosen = args.only.split(",") if args.only else list(workloads)
    for label, make in [(k, v) for k, v in workloads.items() if k in chosen]:
        variants = {name: make(s) for name, s in strategies.items()}
        first = {}
        for name, run in variants.items():  # the first call traces: timed apart, once
            start = time.perf_counter()
            run()
            first[name] = time.perf_counter() - start
        times = interleaved(variants, args.repeats)
        median = {name: statistics.median(t) for name, t in times.items()}
        overhead = median["mirrored-1"] / median["none"] - 1
        print(f"{label:<9} " + " ".join(f"{median[n]:>11.2f}s" for n in strategies)
              + f"   {overhead:+.1%}   (first call: "
              + ", ".join(f"{first[n]:.2f}s" for n in strategies) + ")", flush=True)
    print("\n(seconds: the median of the repeats after a first call that traces, timed once "
          "apart; the goal is an overhead ≤ +10 %)")


if __name__ == "__main__":
    main()
