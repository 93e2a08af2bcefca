"""`cnnviz atlas` with its defaults on keras.applications.MobileNetV2 (weights=None,
96×96×3, fed `--preprocess symmetric`): seconds per stage and in all, against the same
atlas of the article network (article2, untrained) in the same run as the baseline.

    python benchmarks/bench_any_model.py [--repeats 1] [--side 96]

Bar (issue #14): the MobileNetV2 atlas under 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

STAGE = re.compile(r"^(\S+): [\d,]+ files? in ([\d.]+) s$")
TOTAL = re.compile(r"^atlas done in ([\d.]+) s$")


def save_models(folder: Path, side: int) -> dict[str, Path]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from cnnviz.model import build_model
    from cnnviz.spec import resolve_settings, specs_from_settings

    keras.utils.set_random_seed(0)
    paths = {"mobilenetv2": folder / "mobilenetv2.keras", "article2": folder / "article2.keras"}
    keras.applications.MobileNetV2(weights=None, input_shape=(side, side, 3),
                                   classes=10).save(paths["mobilenetv2"])
    network, _ = specs_from_settings(resolve_settings("article2")[1])
    build_model(network).save(paths["article2"])
    return paths


def atlas(path: Path, out: Path, extra: list[str]) -> tuple[dict[str, float], float]:
    env = {**os.environ, "CNNVIZ_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "cnnviz", "atlas", str(path),
                           "--outputs-dir", str(out), *extra],
                          env=env, check=True, capture_output=True, text=True)
    stages, total = {}, float("nan")
    for line in done.stdout.splitlines():
        if (m := STAGE.match(line.strip())):
            stages[m.group(1)] = float(m.group(2))
        if (m := TOTAL.match(line.strip())):
            total = float(m.group(1))
    return stages, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--side", type=int, default=96)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = save_models(Path(tmp), args.side)
        for rep in range(args.repeats):
            for name, extra in (("article2", []), ("mobilenetv2", ["--preprocess", "symmetric"])):
                stages, total = atlas(paths[name], Path(tmp) / f"out-{rep}", extra)
                parts = ", ".join(f"{k} {v:.1f} s" for k, v in stages.items())
                print(f"repeat {rep + 1} {name:<12} atlas {total:7.1f} s   ({parts})", flush=True)


if __name__ == "__main__":
    main()
