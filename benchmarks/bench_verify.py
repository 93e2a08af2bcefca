"""How much the way you write a convolution matters, and what `verify` costs.

    python benchmarks/bench_verify.py [--model NAME --trained-dir DIR] [--repeats 3]

In one run, on article2's conv2 (11×11×64 outputs of 3×3×32 windows) over 100 test images:
the naive loop (cnnviz.probes.forward64.conv2d_naive, the tests' reference; timed on
--naive-images images and scaled to 100, it is that slow), the vectorised NumPy
convolution (sliding windows and one einsum: what `verify` uses) and Keras (TensorFlow's
oneDNN kernel). Then `m.verify(100)` end to end. Without --model, a 1-epoch article2 model
is trained first on the embedded sample (not timed).
"""

from __future__ import annotations

import statistics
import tempfile
import time

from cnnviz.runtime import import_tensorflow
from timing import bench_model, interleaved, model_arguments

import_tensorflow()
import keras  # noqa: E402
import numpy as np  # noqa: E402

import cnnviz  # noqa: E402
from cnnviz.probes.forward64 import conv2d, conv2d_naive  # noqa: E402


def main() -> None:
    args = model_arguments(__doc__.splitlines()[0], naive_images=2)
    with tempfile.TemporaryDirectory() as tmp:
        trained, name = bench_model(args, tmp)
        m = cnnviz.load(name, trained_dir=trained)
        pixels = m.images_of(list(range(100)))[0]
        inputs = m.loaded.preprocessing.apply(pixels)
        fed = np.asarray(keras.Model(m.model.inputs, m.model.get_layer("pool1").output)(
            [inputs]), np.float64)
        conv = m.model.get_layer("conv2")
        kernel = np.asarray(conv.kernel, np.float64)
        n = args.naive_images
        start = time.perf_counter()
        conv2d_naive(fed[:n], kernel)
        naive = (time.perf_counter() - start) * 100 / n
        times = interleaved({
            "vectorised NumPy (float64)": lambda: conv2d(fed, kernel),
            "Keras Conv2D (float32)": lambda: np.asarray(conv.convolution_op(
                fed.astype(np.float32), conv.kernel)),
            "verify(100), every layer": lambda: m.verify(100, progress=False),
        }, args.repeats)
        keras_s = statistics.median(times["Keras Conv2D (float32)"])
        print(f"conv2 over 100 images ({args.repeats} repeats, median):")
        print(f"  naive loop               {naive:9.2f} s  ({naive / keras_s:,.0f}× Keras; "
              f"measured on {n} images, scaled to 100)")
        for label, seconds in times.items():
            s = statistics.median(seconds)
            print(f"  {label:<26} {s:7.3f} s  ({s / keras_s:,.1f}× Keras)")


if __name__ == "__main__":
    main()
