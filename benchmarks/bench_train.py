"""One epoch of full Fashion-MNIST: cnnviz's training path against a plain `model.fit`.

Same model (article2), data, preprocessing, batch size and validation on the test split,
measured in the same run, repeated; prints images/s and the ratio cnnviz / plain.

    python benchmarks/bench_train.py [--repeats 3] [--explore 1,8,32,64]

`--explore` also times cnnviz's pipeline at several steps_per_execution values.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from cnnviz.runtime import import_tensorflow
from timing import interleaved

import_tensorflow()

import keras  # noqa: E402

from cnnviz import train  # noqa: E402
from cnnviz.data import Preprocessing, load_dataset  # noqa: E402
from cnnviz.model import build_model, compile_model  # noqa: E402
from cnnviz.spec import resolve_settings, specs_from_settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--explore", default="", help="steps_per_execution values to try")
    args = parser.parse_args()

    data = load_dataset("fashion")
    print(data.describe())
    network, training = specs_from_settings(resolve_settings("article2", overrides={"epochs": 1})[1])
    prep = Preprocessing.fit(training.normalize, data.x_train)
    x, xt = prep.apply(data.x_train), prep.apply(data.x_test)
    y, yt = data.y_train, data.y_test
    n, bs = len(x), training.batch_size

    def plain() -> None:
        # the same standardisation as cnnviz, timed too, then a plain fit with validation
        p = Preprocessing.fit(training.normalize, data.x_train)
        xs, xts = p.apply(data.x_train), p.apply(data.x_test)
        model = fresh_model(network, training, steps=1)
        model.fit(xs, y, batch_size=bs, epochs=1, validation_data=(xts, yt), verbose=0)

    def pipeline(steps: int):  # the fit alone, on preprocessed arrays
        def run() -> None:
            model = fresh_model(network, training, steps)
            train.fit(model, x, y, xt, yt, batch_size=bs, seed=training.seed, epochs=1, verbose=0)
        return run

    def bundle() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            train.train_bundle(Path(tmp) / "bench", network, training, data, verbose=0,
                               log=lambda _: None)

    variants = {"plain model.fit": plain,
                f"cnnviz fit (steps_per_execution={train.STEPS_PER_EXECUTION})":
                    pipeline(train.STEPS_PER_EXECUTION),
                "cnnviz train_bundle (end to end: checkpoints, curves, final test)": bundle}
    for steps in [int(s) for s in args.explore.split(",") if s]:
        variants[f"cnnviz fit (steps_per_execution={steps})"] = pipeline(steps)

    times = interleaved(variants, args.repeats, lambda rep, times: print(
        f"repeat {rep + 1}: " + ", ".join(f"{t[-1]:.1f}s" for t in times.values())))

    base = statistics.median(times["plain model.fit"])
    best_base = min(times["plain model.fit"])
    print(f"\none epoch of {n:,} images + validation on {len(xt):,}, batch {bs}, "
          f"{args.repeats} repeats; ratio = throughput / plain model.fit (> 1: faster)")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:<68} median {med:6.2f} s {n / med:6.0f} img/s ratio {base / med:.2f}"
              f" | best {min(ts):6.2f} s ratio {best_base / min(ts):.2f}")


def fresh_model(network, training, steps: int) -> keras.Model:
    keras.utils.set_random_seed(training.seed)
    model = build_model(network, training)
    compile_model(model, training, steps)
    return model


if __name__ == "__main__":
    main()
