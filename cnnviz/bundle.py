"""Model bundles on disk (trained/NAME/): names, files, run.json, history.csv, listing.

No TensorFlow here, so `cnnviz list` and name checks stay instant; `model.py` loads the
Keras model itself.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

from cnnviz.atomic import write_json, write_text
from cnnviz.errors import CnnvizError, UsageError

MODEL_FILE = "model.keras"
INITIAL_WEIGHTS_FILE = "initial.weights.h5"
RUN_FILE = "run.json"
HISTORY_FILE = "history.csv"
CURVES_FILE = "curves.png"
BUNDLE_FILES = (MODEL_FILE, INITIAL_WEIGHTS_FILE, RUN_FILE, HISTORY_FILE, CURVES_FILE)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_name(name: str) -> str:
    """A bundle name is one folder name: letters, digits, '.', '_', '-' (no path separators)."""
    if not _NAME.match(name or "") or name in (".", ".."):
        raise UsageError(f"invalid bundle name {name!r}: use letters, digits, '.', '_' and '-' "
                         "only, starting with a letter or digit (no path separators)")
    return name


@dataclass(frozen=True)
class ModelRef:
    """Where a model comes from: a bundle folder, or a plain .keras file."""

    name: str
    model_path: Path
    bundle_dir: Path | None
    note: str = ""


def resolve(ref: str | None, trained_root: Path) -> ModelRef:
    """Turn a bundle name, bundle folder or .keras path (or None: the newest bundle) into a ModelRef."""
    if ref is None:
        bundles = [b for b in list_bundles(trained_root) if (b.path / MODEL_FILE).is_file()]
        if not bundles:
            raise UsageError(f"no trained model in {trained_root}; run `cnnviz train` first "
                             "or name a bundle or .keras file")
        newest = max(bundles, key=lambda b: b.updated)
        return ModelRef(newest.name, newest.path / MODEL_FILE, newest.path,
                        note=f"using the most recent bundle {newest.name!r} ({newest.path})")
    path = Path(ref)
    if path.suffix == ".keras" or path.is_file():
        if not path.is_file():
            raise UsageError(f"model file {path} does not exist")
        return ModelRef(path.stem, path, None)
    folder = path if path.is_dir() and (path / RUN_FILE).exists() else trained_root / ref
    if not (folder / MODEL_FILE).is_file():
        names = ", ".join(b.name for b in list_bundles(trained_root)) or "none"
        raise UsageError(f"no model bundle {ref!r} in {trained_root} (bundles there: {names}); "
                         "give a bundle name, a bundle folder or a .keras file")
    return ModelRef(folder.name, folder / MODEL_FILE, folder)


def read_run(folder: Path) -> dict:
    """Read a bundle's run.json."""
    path = folder / RUN_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CnnvizError(f"{path} is missing: not a cnnviz bundle") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CnnvizError(f"{path} is corrupt ({str(exc).splitlines()[0]}); retrain with --force") from None
    if not isinstance(data, dict):
        raise CnnvizError(f"{path} is corrupt (not a JSON object); retrain with --force")
    return data


def dataset_of(run: dict) -> tuple[str, str | None]:
    """(dataset name, explicit data path or None) a bundle was trained on; mnist for plain models."""
    data = run.get("data", {})
    return data.get("dataset", "mnist"), data.get("path")


def write_run(folder: Path, run: dict) -> None:
    write_json(folder / RUN_FILE, run)


@dataclass(frozen=True)
class BundleSummary:
    name: str
    path: Path
    dataset: str
    epochs: int
    test_accuracy: float | None
    updated: str
    status: str


def list_bundles(trained_root: Path) -> list[BundleSummary]:
    """Every folder in trained_root with a readable run.json, sorted by name."""
    out = []
    if not trained_root.is_dir():
        return out
    for folder in sorted(p for p in trained_root.iterdir() if p.is_dir()):
        try:
            run = read_run(folder)
        except CnnvizError:
            continue
        out.append(BundleSummary(
            name=folder.name, path=folder, dataset=run.get("data", {}).get("dataset", "?"),
            epochs=int(run.get("epochs_completed", 0)),
            test_accuracy=run.get("metrics", {}).get("test_accuracy"),
            updated=str(run.get("updated", "")), status=str(run.get("status", "?"))))
    return out


def write_history(folder: Path, history: dict[str, list]) -> None:
    """history.csv: one row per epoch, one column per logged quantity."""
    keys = list(history)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["epoch", *keys])
    for i in range(len(history[keys[0]]) if keys else 0):
        writer.writerow([i + 1, *(f"{history[k][i]:.8g}" for k in keys)])
    write_text(folder / HISTORY_FILE, buf.getvalue())


def read_history(folder: Path) -> dict[str, list[float]]:
    """Inverse of write_history (an absent file is an empty history)."""
    path = folder / HISTORY_FILE
    if not path.is_file():
        return {}
    try:
        rows = list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))
        keys = [k for k in (rows[0] if rows else {}) if k != "epoch"]
        return {k: [float(r[k]) for r in rows] for k in keys}
    except (ValueError, KeyError, TypeError) as exc:
        raise CnnvizError(f"{path} is corrupt ({exc}); retrain with --force") from None


def describe_run(run: dict) -> list[str]:
    """Human lines about a bundle's run.json."""
    if not run:
        return []
    t, d, m = run.get("training", {}), run.get("data", {}), run.get("metrics", {})
    lines = [f"\nstatus: {run.get('status', '?')}, {run.get('epochs_completed', 0)} of "
             f"{t.get('epochs', '?')} epochs, updated {run.get('updated', '?')}"]
    if m:
        lines.append(f"test accuracy {m['test_accuracy']:.4f}, test loss {m['test_loss']:.4f}; "
                     f"last-epoch train accuracy {m.get('train_accuracy') or 0:.4f}")
    lines.append(f"data: {d.get('dataset', '?')} from {d.get('source', '?')} "
                 f"({d.get('train_images', 0):,} train / {d.get('test_images', 0):,} test)")
    prep = run.get("preprocessing", {}).get("kind", "unit")
    lines.append("preprocessing: " + ("per-pixel standardisation fitted on the training split"
                                      if prep == "standardize" else "pixels / 255"))
    schedule = t.get("schedule", "none")
    lines.append(
        f"training: {t.get('optimizer')} lr {t.get('learning_rate')} momentum {t.get('momentum')}"
        f", schedule {schedule}" + (f" (steps {t.get('decay_steps')}, rate {t.get('decay_rate')})"
                                    if schedule != "none" else "")
        + f", regularizer {t.get('regularizer')}"
        + (f" {t.get('reg_factor')} on {t.get('reg_scope')}" if t.get("regularizer") != "none" else "")
        + f", batch {t.get('batch_size')}, seed {t.get('seed')}, preset {run.get('preset') or '-'}")
    secs = run.get("epoch_seconds") or []
    if secs:
        lines.append(f"seconds per epoch: {sum(secs) / len(secs):.1f} (device {run.get('device')})")
    v = run.get("versions", {})
    lines.append("versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    return lines
