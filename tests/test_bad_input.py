"""The bad-input matrix: every command, every kind of mistake a user makes.

Each row is checked for: the exit code (2: the request was invalid, 1: something failed),
one `error:` line that names the problem and what is valid, no traceback, and no new file
anywhere under the test's folders (nothing half-written).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_one_line_error

# (command and arguments, exit code, regular expression the one error line must match)
# {m}: a good bundle; {broken-…}: damaged bundles; {f-…}: damaged input files; {out}: outputs
MATRIX = [
    # unknown names
    ("info ghost", 2, r"no model bundle 'ghost' in .*trained \(bundles there: .*good\)"),
    ("activations {m} --layer conv9", 2, r"unknown layer conv9; valid: conv1, pool1, conv2, pool2, conv3, dense1, output, all"),
    ("filters {m} --layer flatten", 2, r"unknown layer flatten; valid: .*conv1"),
    ("kernels {m} --layer pool1", 2, r"pool1 is not a convolution; kernels exist for: conv1, conv2, conv3"),
    ("stats {m} --compare ghost", 2, r"no model bundle 'ghost'"),
    ("compare {m} ghost", 2, r"no model bundle 'ghost'"),
    ("gallery ghost", 2, r"no model bundle 'ghost'"),
    ("train --preset article9", 2, r"'article9' is not one of 'article2', 'article3'"),
    ("activations {m} --split validation", 2, r"'validation' is not one of 'test', 'train'"),
    ("stats {m} --split validation", 2, r"unknown split 'validation'; valid: test, train"),
    # out-of-range indices and ranges
    ("activations {m} --image 300", 2, r"--image 300 out of range: the test split has 300 images \(0–299\)"),
    ("activations {m} --digit 12", 2, r"--digit 12: classes are 0–9"),
    ("filters {m} --layer conv1 --maps 0-40", 2, r"--maps: map 32 out of range; this layer has maps 0–31"),
    ("filters {m} --layer conv1 --maps 9-3", 2, r"--maps '9-3'.*range"),
    ("filters {m} --layer conv1 --scales 0", 2, r"scale"),
    ("filters {m} --layer conv1 --scales 29", 2, r"scale"),
    ("filters {m} --layer conv1 --steps 0", 2, r"steps"),
    ("filters {m} --layer conv1 --steps 10 --snapshots 0,50", 2, r"--snapshots: step 50 is outside 0–10"),
    ("stats {m} --top 0", 2, r"--top must be ≥ 1, got 0"),
    ("stats {m} --top 301", 2, r"--top 301 is larger than the 300 images used; choose --top ≤ 300"),
    ("atlas {m} --limit 0", 2, r"--limit must be ≥ 1, got 0"),
    ("compare {m} {m} --limit 1", 2, r"--limit must be ≥ 2"),
    ("train --runs 0", 2, r"--runs must be ≥ 1, got 0"),
    # malformed lists and wrong types
    ("activations {m} --image 1,x", 2, r"--image takes integers separated by commas, got '1,x'"),
    ("filters {m} --layer conv1 --maps 1,,a", 2, r"--maps"),
    ("filters {m} --scales 3,seven", 2, r"--scales takes integers separated by commas, got '3,seven'"),
    ("atlas {m} --scales ,", 2, r"--scales takes integers separated by commas, got ','"),
    ("filters {m} --steps many", 2, r"'many' is not a valid integer"),
    ("train --epochs 2.5", 2, r"'2.5' is not a valid integer"),
    ("train --learning-rate fast", 2, r"'fast' is not a valid float"),
    ("train --config {f-config-syntax}", 2, r"bad.toml"),
    ("train --config {f-config-key}", 2, r"key.json: unknown setting\(s\) colour; valid: conv, kernel"),
    # missing, corrupt and empty files of every kind
    ("info {broken-model}", 1, r"cannot load .*model.keras: not a .keras \(zip\) archive; retrain"),
    ("info {broken-empty}", 1, r"cannot load .*model.keras: an empty file; retrain"),
    ("activations {broken-run}", 1, r"run.json is corrupt"),
    ("info {f-missing}", 2, r"model file .*missing.keras does not exist"),
    ("stats {m} --data {f-npz-garbage}", 1, r"garbage.npz: not a readable .npz file"),
    ("stats {m} --data {f-npz-empty}", 1, r"empty.npz"),
    ("train --data {f-idx-short}", 1, r"train-images-idx3-ubyte"),
    ("activations {m} --input {f-image-garbage}", 1, r"--input .*garbage.png: not a readable image file .*give a PNG, JPEG"),
    ("activations {m} --input {f-missing}", 2, r"missing.keras"),
    ("activations {m} --image 0 --out-of-place", 2, r"No such option '--out-of-place'. \(see `cnnviz activations --help`\)"),
    ("activations {m-corrupt-manifest} --image 0", 1, r"manifest.json is corrupt"),
    # contradictory options
    ("activations {m} --image 3 --digit 4", 2, r"--image and --digit"),
    ("train --name good --resume --preset article3", 2, r"--resume continues with the bundle's own settings"),
    ("train --runs 2 --resume --name good", 2, r"--runs cannot be combined with"),
]


@pytest.fixture(scope="module")
def world(trained, tmp_path_factory, small_npz):
    """Bundles (a good one, damaged ones) and damaged input files."""
    root = tmp_path_factory.mktemp("world")
    bundles = root / "trained"
    shutil.copytree(trained / "a2", bundles / "good")
    shutil.copytree(trained / "a2", bundles / "corrupt-manifest")
    for name, damage in (("broken-model", "model.keras"), ("broken-empty", "model.keras"),
                         ("broken-run", "run.json")):
        shutil.copytree(trained / "a2", bundles / name)
        (bundles / name / damage).write_bytes(b"" if name == "broken-empty" else b"not a zip {")
    out = root / "outputs"
    (out / "corrupt-manifest").mkdir(parents=True)
    (out / "corrupt-manifest" / "manifest.json").write_text("{ half")
    files = root / "files"
    files.mkdir()
    (files / "garbage.npz").write_bytes(b"PK\x03\x04 not really")
    np.savez(files / "empty.npz")
    idx = files / "idx"
    idx.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (idx / name).write_bytes(b"\x00\x00\x08\x03\x00\x00")
    (files / "garbage.png").write_bytes(b"\x89PNG but not")
    (files / "bad.toml").write_text("epochs = = 3\n")
    (files / "key.json").write_text(json.dumps({"colour": "red"}))
    fill = {"m": "good", "m-corrupt-manifest": "corrupt-manifest", "out": str(out),
            "broken-model": "broken-model", "broken-empty": "broken-empty",
            "broken-run": "broken-run", "f-missing": str(files / "missing.keras"),
            "f-npz-garbage": str(files / "garbage.npz"), "f-npz-empty": str(files / "empty.npz"),
            "f-idx-short": str(idx), "f-image-garbage": str(files / "garbage.png"),
            "f-config-syntax": str(files / "bad.toml"), "f-config-key": str(files / "key.json")}
    return root, bundles, out, fill, small_npz


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".manifest.lock" not in p.name}


def test_the_matrix_is_large_enough():
    assert len(MATRIX) >= 30
    commands = {row[0].split()[0] for row in MATRIX}
    assert commands == {"train", "info", "activations", "filters", "kernels", "stats", "atlas",
                        "compare", "gallery"}


@pytest.mark.parametrize("command, code, message", MATRIX, ids=[row[0] for row in MATRIX])
def test_bad_input(command, code, message, world, run_cli):
    root, bundles, out, fill, small_npz = world
    args = [part.format(**fill) for part in command.split()]
    if args[0] == "train" and "--data" not in args:
        args += ["--data", str(small_npz), "--quiet"]
    args += ["--trained-dir", bundles] + ([] if args[0] == "train" else ["--outputs-dir", out])
    before = snapshot(root)
    result = run_cli(*args)
    assert_one_line_error(result, code, message)
    assert snapshot(root) == before, "the failed command changed files"
    if os.environ.get("CNNVIZ_MATRIX_REPORT"):  # the table in the closing note
        with open(os.environ["CNNVIZ_MATRIX_REPORT"], "a", encoding="utf-8") as report:
            line = result.err.strip().replace(str(root) + "/", "").replace("|", "\\|")
            report.write(f"| `{command}` | {result.code} | {line} |\n")
