"""`cnnviz atlas` end to end, with seconds per stage, against the same galleries made by the
separate commands (one process and one TensorFlow import each) in the same run.

    python benchmarks/bench_atlas.py [--repeats 3] [--model NAME --trained-dir DIR] [--no-baseline]

Without --model, article2 is trained for 10 epochs on the embedded sample first (not timed),
the model the issue's bar names. Bar: the atlas under 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from timing import interleaved

STAGE = re.compile(r"^(\S+): [\d,]+ files? in ([\d.]+) s$")


def run(args: list[str], env: dict, log: list[str] | None = None) -> None:
    done = subprocess.run([sys.executable, "-m", "cnnviz", *args], env=env, check=True,
                          capture_output=True, text=True)
    if log is not None:
        log.append(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model")
    parser.add_argument("--trained-dir", default="trained")
    parser.add_argument("--no-baseline", action="store_true", help="time the atlas only")
    args = parser.parse_args()

    env = dict(os.environ, CNNVIZ_OFFLINE="1")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        trained, model = Path(args.trained_dir), args.model
        if model is None:
            trained, model = tmp / "trained", "bench"
            run(["train", "--epochs", "10", "--quiet", "--name", model, "--trained-dir",
                 str(trained)], env)
        common = ["--trained-dir", str(trained)]
        logs: list[str] = []

        def atlas() -> None:
            run(["atlas", model, *common, "--outputs-dir", str(tmp / "atlas")], env, logs)

        def separate() -> None:
            out = ["--outputs-dir", str(tmp / "separate")]
            run(["activations", model, "--layer", "all", "--image", "0",
                 "--save-arrays", *common, *out], env)
            run(["filters", model, "--starts", "1", "--snapshots", "0,10,30,100",
                 "--save-arrays", *common, *out], env)
            run(["kernels", model, *common, *out], env)
            run(["stats", model, *common, *out], env)
            run(["gallery", model, *common, *out], env)

        variants = {"atlas": atlas} if args.no_baseline else {"atlas": atlas, "separate": separate}
        times = interleaved(variants, args.repeats)

    stages: dict[str, list[float]] = {}
    for text in logs:
        for line in text.splitlines():
            if (m := STAGE.match(line.strip())):
                stages.setdefault(m.group(1), []).append(float(m.group(2)))
    print("cnnviz atlas, seconds per stage (median of "
          f"{args.repeats}): " + ", ".join(f"{k} {statistics.median(v):.1f}" for k, v in stages.items()))
    t = times["atlas"]
    print(f"cnnviz atlas end to end (new process, TensorFlow import included): median "
          f"{statistics.median(t):.1f} s, best {min(t):.1f} s (bar: < 60 s)")
    if "separate" in times:
        s = times["separate"]
        print(f"the same galleries by 5 separate commands (activations for one image only): median {statistics.median(s):.1f} s; "
              f"ratio {statistics.median(s) / statistics.median(t):.2f}x")


if __name__ == "__main__":
    main()
