"""`cnnviz stats` on keras.applications.MobileNetV2 (weights=None, 96×96×3, MNIST digits
converted to 96×96×3 on the fly, `--preprocess symmetric`) for several image counts, with
article2 on the same images as the baseline in the same run: the time should grow with the
images (and the layers), not with maps × images.

    python benchmarks/bench_big_stats.py [--limits 300,1000,3000]

Bar (issue #29): 300 images under 60 s on 2 cores (it ran for more than 30 minutes when each
map's top images were converted again for every map and layer).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def save_models(folder: Path) -> dict[str, Path]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from cnnviz.model import build_model
    from cnnviz.spec import resolve_settings, specs_from_settings

    keras.utils.set_random_seed(0)
    paths = {"mobilenetv2": folder / "mobilenetv2.keras", "article2": folder / "article2.keras"}
    keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3),
                                   classes=10).save(paths["mobilenetv2"])
    network, _ = specs_from_settings(resolve_settings("article2")[1])
    build_model(network).save(paths["article2"])
    return paths


def stats(path: Path, out: Path, limit: int, extra: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cnnviz", "stats", str(path), "--limit", str(limit),
                           "--outputs-dir", str(out), *extra], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limits", default="300,1000,3000")
    args = parser.parse_args()
    limits = [int(v) for v in args.limits.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        paths = save_models(Path(tmp))
        print(f"{'images':>7} {'article2 s':>11} {'MobileNetV2 s':>14} {'ratio':>6} {'ms/image':>9}")
        for limit in limits:
            base = stats(paths["article2"], Path(tmp) / "a", limit, [])
            big = stats(paths["mobilenetv2"], Path(tmp) / "m", limit, ["--preprocess", "symmetric"])
            print(f"{limit:>7} {base:>11.1f} {big:>14.1f} {big / base:>6.1f} {1000 * big / limit:>9.1f}")


if __name__ == "__main__":
    main()
