"""Activation galleries: one NumPy mosaic vs 64 matplotlib subplots, and the command end to end.

    python benchmarks/bench_activations.py [--repeats 3] [--model NAME --trained-dir DIR]

Without --model, a 1-epoch article2 bundle is trained on the embedded sample first (not timed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cnnviz.render.activations import image_activation_figure  # noqa: E402
from timing import interleaved  # noqa: E402


def subplots_grid(values: np.ndarray, image: np.ndarray, path: Path) -> None:
    """The straightforward way: one axes per map."""
    fig, axes = plt.subplots(8, 9, figsize=(12, 10))
    axes = axes.ravel()
    axes[0].imshow(image, cmap="gray")
    for i in range(values.shape[-1]):
        axes[i + 1].imshow(values[..., i], cmap="viridis", interpolation="nearest")
        axes[i + 1].set_title(str(i), fontsize=6)
    for ax in axes:
        ax.set_axis_off()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model")
    parser.add_argument("--trained-dir", default="trained")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rng = np.random.default_rng(0)
        values = np.maximum(rng.normal(size=(11, 11, 64)), 0).astype(np.float32)
        image = rng.integers(0, 255, size=(28, 28)).astype(np.uint8)
        figures = interleaved({
            "mosaic": lambda: image_activation_figure(
                values, image, "conv2", "test image 0", ["true 7, predicted 7", "top-3: …"],
                "map", tmp / "mosaic.png"),
            "subplots": lambda: subplots_grid(values, image, tmp / "grid.png")}, args.repeats)
        mosaic_t, grid_t = figures["mosaic"], figures["subplots"]
        print(f"64-map gallery, median of {args.repeats}: one mosaic {statistics.median(mosaic_t):.3f} s,"
              f" 64 subplots {statistics.median(grid_t):.3f} s, ratio "
              f"{statistics.median(grid_t) / statistics.median(mosaic_t):.1f}x")

        env = dict(os.environ, CNNVIZ_OFFLINE="1")
        trained, model = Path(args.trained_dir), args.model
        if model is None:
            trained, model = tmp / "trained", "bench"
            subprocess.run([sys.executable, "-m", "cnnviz", "train", "--epochs", "1", "--quiet",
                            "--name", model, "--trained-dir", str(trained)], check=True, env=env,
                           stdout=subprocess.DEVNULL)
        command = [sys.executable, "-m", "cnnviz", "activations", model, "--layer", "all",
                   "--image", "0", "--trained-dir", str(trained), "--outputs-dir", str(tmp / "out")]
        end_to_end = interleaved({"command": lambda: subprocess.run(
            command, check=True, env=env, stdout=subprocess.DEVNULL)}, args.repeats)["command"]
        print(f"cnnviz activations --layer all --image 0 (new process, TensorFlow import "
              f"included): median {statistics.median(end_to_end):.2f} s, best {min(end_to_end):.2f} s")


if __name__ == "__main__":
    main()
