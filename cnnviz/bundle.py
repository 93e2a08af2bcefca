"""Model bundles on disk (trained/NAME/): names, files, run.json, history.csv, listing.

No TensorFlow here, so `cnnviz list` and name checks stay instant; `model.py` loads the
Keras model itself.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

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
        bundles = [b for b in list_bundles(trained_root)
                   if (b.path / MODEL_FILE).is_file() and not b.problem]
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
    if (folder / RUN_FILE).is_file() and not (folder / MODEL_FILE).is_file():
        run = read_run(folder)
        raise UsageError(f"bundle {ref!r} ({folder}) has no trained model: status "
                         f"{run.get('status', '?')}, {run.get('epochs_completed') or 0} epochs "
                         f"completed; train it again (name={folder.name} force=True)")
    if not (folder / MODEL_FILE).is_file():
        names = ", ".join(b.name for b in list_bundles(trained_root)) or "none"
        raise UsageError(f"no model bundle {ref!r} in {trained_root} (bundles there: {names}); "
                         "give a bundle name, a bundle folder or a .keras file")
    return ModelRef(folder.name, folder / MODEL_FILE, folder)


def read_run(folder: Path) -> dict:
    """Read and validate a bundle's run.json (errors name the file and the field)."""
    path = folder / RUN_FILE
    try:
        if path.stat().st_size > MAX_RUN_BYTES:
            raise ValueError(f"over {MAX_RUN_BYTES // 2**20} MB")
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CnnvizError(f"{path} is missing: not a cnnviz bundle") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CnnvizError(f"{path} is corrupt ({(str(exc).splitlines() or ['?'])[0]}); "
                          "retrain with force=True") from None
    if not isinstance(data, dict):
        raise CnnvizError(f"{path} is corrupt (not a JSON object); retrain with force=True")
    validate_run(path, data)
    return data


MAX_RUN_BYTES = 16 * 2**20
_NUMBER = (int, float)


def validate_run(path: Path, run: dict) -> None:
    """The fields cnnviz reads from run.json, with the types it needs."""
    def field(name: str, value, ok: bool, want: str) -> None:
        if not ok:
            raise CnnvizError(f"{path}: field {name} is {value!r}, expected {want}; retrain "
                              "with force=True")

    def typed(name: str, value, kinds, want: str, optional: bool = True) -> None:
        ok = (value is None and optional) or (isinstance(value, kinds) and not isinstance(value, bool))
        field(name, value, ok, want)

    done = run.get("epochs_completed", 0)
    field("epochs_completed", done, done is None or (isinstance(done, int) and not
                                                     isinstance(done, bool) and done >= 0),
          "an integer ≥ 0")
    for key in ("status", "updated", "preset", "name", "device"):
        typed(key, run.get(key), str, "text")
    for key in ("metrics", "training", "network", "data", "versions"):
        typed(key, run.get(key), dict, "an object")
    for key, value in (run.get("metrics") or {}).items():
        if key != "train_metrics_note":
            typed(f"metrics.{key}", value, _NUMBER, "a number or null")
    seconds = run.get("epoch_seconds") or []
    field("epoch_seconds", seconds, isinstance(seconds, list)
          and all(isinstance(v, _NUMBER) for v in seconds), "a list of numbers")
    data = run.get("data") or {}
    typed("data.dataset", data.get("dataset"), str, "a dataset name")
    typed("data.path", data.get("path"), str, "a path or null")
    for key in ("train_images", "test_images"):
        typed(f"data.{key}", data.get(key), int, "an integer")
    training = run.get("training") or {}
    typed("training.epochs", training.get("epochs"), int, "an integer")
    if run.get("network") is not None or run.get("training") is not None:
        field("preprocessing", run.get("preprocessing"), isinstance(run.get("preprocessing"), dict),
              "an object saying how pixels become input (a cnnviz bundle always records it)")
    if run.get("preprocessing") is not None:
        from cnnviz.data import Preprocessing

        Preprocessing.from_json(run["preprocessing"], str(path))  # refuses what it cannot use


def dataset_of(run: dict) -> tuple[str, str | None]:
    """(dataset name, recorded data path or None) a bundle was trained on; mnist for plain models."""
    data = run.get("data") or {}
    return data.get("dataset") or "mnist", data.get("path")


def recorded_data(run: dict) -> str | None:
    """The data path a bundle recorded, refused (exit 2) when it is gone."""
    recorded = dataset_of(run)[1]
    if recorded is not None and not Path(recorded).exists():
        raise UsageError(f"the data this bundle was trained on, {recorded}, is gone; pass "
                         "data=PATH", "data")
    return recorded


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
    problem: str = ""  # why the bundle cannot be used (empty: it can)


def list_bundles(trained_root: Path) -> list[BundleSummary]:
    """Every folder in trained_root with a run.json, sorted by name; a broken one is listed
    with status `broken` and its problem."""
    out = []
    if not trained_root.is_dir():
        return out
    for folder in sorted(p for p in trained_root.iterdir() if p.is_dir()):
        if not (folder / RUN_FILE).is_file():
            continue
        try:
            run = read_run(folder)
        except CnnvizError as exc:
            out.append(BundleSummary(folder.name, folder, "?", 0, None, "", "broken", str(exc)))
            continue
        out.append(BundleSummary(
            name=folder.name, path=folder, dataset=dataset_of(run)[0],
            epochs=int(run.get("epochs_completed") or 0),
            test_accuracy=(run.get("metrics") or {}).get("test_accuracy"),
            updated=str(run.get("updated", "")), status=str(run.get("status", "?"))))
    return out


@contextlib.contextmanager
def writing(folder: Path) -> Iterator[None]:
    """Hold the bundle's lock while it is written: trained/.NAME.lock (beside the folder, so
    that --force may replace it), holding the writer's process id, removed on release. A
    second writer is told which process holds it."""
    lock = folder.parent / f".{folder.name}.lock"
    folder.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = open(lock, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise CnnvizError(f"bundle {folder.name} is being written by process {holder}; "
                              "wait for it to finish (or stop it) and run this again") from None
        try:  # the file we locked must still be the one at the path (a releaser unlinks it)
            same = os.fstat(handle.fileno()).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        remove_stale_temporaries(folder)
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()
        handle.close()  # releases the lock


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the atomic-write temporaries (.tmp-PID-…) of processes that no longer run."""
    removed = []
    for path in folder.glob(".tmp-*") if folder.is_dir() else []:
        pid = path.name.split("-")[1]
        if pid.isdigit() and not _running(int(pid)) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        raise CnnvizError(f"{path} is corrupt ({exc}); retrain with force=True") from None


def describe_run(run: dict) -> list[str]:
    """Human lines about a bundle's run.json."""
    if not run:
        return []
    t, d, m = run.get("training") or {}, run.get("data") or {}, run.get("metrics") or {}
    lines = [f"\nstatus: {run.get('status', '?')}, {run.get('epochs_completed', 0)} of "
             f"{t.get('epochs', '?')} epochs, updated {run.get('updated', '?')}"]
    if m.get("test_accuracy") is not None and m.get("test_loss") is not None:
        lines.append(f"test accuracy {m['test_accuracy']:.4f}, test loss {m['test_loss']:.4f}; "
                     f"last-epoch train accuracy {m.get('train_accuracy') or 0:.4f}")
    lines.append(f"data: {d.get('dataset', '?')} from {d.get('source', '?')} "
                 f"({d.get('train_images', 0):,} train / {d.get('test_images', 0):,} test)")
    prep = (run.get("preprocessing") or {}).get("kind", "unit")
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
    v = run.get("versions") or {}
    lines.append("versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    return lines
