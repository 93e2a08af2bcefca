"""outputs/NAME/manifest.json: every file a command wrote, with its caption and metadata.

Commands add entries; entries of other commands are never lost. The merge happens under
an exclusive file lock and the file is replaced atomically, so two commands writing to the
same gallery at once both keep their entries.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
from pathlib import Path, PurePosixPath
from typing import Iterator

from cnnviz.atomic import write_json, write_text
from cnnviz.errors import CnnvizError, UsageError

MAX_MANIFEST_BYTES = 64 * 2**20


class DamagedManifest(CnnvizError):
    """A manifest that parses but whose entries or model card are malformed: refused, never
    rebuilt over (a missing or unparseable one in a cnnviz gallery is rebuilt from files)."""

MANIFEST_FILE = "manifest.json"
LOCK_FILE = ".manifest.lock"
MARK_FILE = ".cnnviz-gallery"  # written with the first manifest: this folder is cnnviz's
GENERATOR = "cnnviz"
FORMAT = 1
ENTRY_TEXT_KEYS = ("path", "caption", "kind")  # required, strings
LAYER_ROW_KEYS = ("name", "kind", "shape", "params", "field")


def entry(path: str, caption: str, kind: str, command: str, layer: str | None = None,
          **meta) -> dict:
    """One manifest entry: the file's path relative to the gallery folder, its caption,
    what kind of file it is, which command wrote it, its layer, and any metadata."""
    return {"path": path, "caption": caption, "kind": kind, "command": command,
            "layer": layer, **meta}


def is_gallery(folder: Path) -> bool:
    """True when cnnviz wrote this folder: its mark file, or a manifest carrying its mark."""
    if (folder / MARK_FILE).is_file():
        return True
    try:
        data = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and data.get("generator") == GENERATOR


def check_gallery(folder: Path) -> None:
    """Refuse (exit 2) a folder that exists, holds files and was not written by cnnviz:
    cnnviz rewrites or deletes only what it wrote itself."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise UsageError(f"{folder} is a file, not a gallery folder; choose another name or "
                         "folder (outputs_dir=)")
    # one listing, read at one instant: empty, or holding cnnviz's lock file (another cnnviz
    # process is making this gallery right now; the lock is its first file and stays)
    names = set(os.listdir(folder))
    if not names or LOCK_FILE in names or is_gallery(folder):
        return
    if (folder / MANIFEST_FILE).is_file():
        read_manifest(folder)  # a corrupt file says so (exit 1) before the refusal below
    raise UsageError(f"{folder} is not a cnnviz gallery (no {MANIFEST_FILE} written by cnnviz); "
                     "cnnviz leaves it untouched: choose another folder (outputs_dir=) or name")


def safe_relative(path: object) -> bool:
    """A manifest path that stays inside the gallery: relative, no '..', no backslash."""
    if not isinstance(path, str) or not path or "\\" in path or "\0" in path:
        return False
    parts = PurePosixPath(path).parts
    return not PurePosixPath(path).is_absolute() and ".." not in parts and "." not in path.split("/")


def read_manifest(folder: Path) -> dict:
    """The validated manifest of a gallery folder ({"entries": []} when there is none yet).

    Entries whose path leaves the folder are dropped (listed under "dropped"); anything
    else malformed is refused naming the file and the entry, before any work is done."""
    path = folder / MANIFEST_FILE
    if not path.is_file():
        return {"generator": GENERATOR, "format": FORMAT, "entries": [], "dropped": []}
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise ValueError(f"over {MAX_MANIFEST_BYTES // 2**20} MB")
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
            raise ValueError("no list of entries")
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CnnvizError(f"{path} is corrupt ({(str(exc).splitlines() or ['?'])[0]}); move it "
                          "away to start a new one") from None
    if data.get("generator") != GENERATOR:
        raise UsageError(f"{path} was not written by cnnviz (no \"generator\": \"cnnviz\" "
                         "mark); cnnviz leaves this folder untouched: choose another "
                         "folder (outputs_dir=) or name (a gallery of an older cnnviz: delete it and "
                         "run the command again)")
    _validate(path, data)
    data["dropped"] = [e["path"] for e in data["entries"] if not safe_relative(e["path"])]
    data["entries"] = [e for e in data["entries"] if safe_relative(e["path"])]
    return data


def _validate(path: Path, data: dict) -> None:
    """Every entry a dict with string path, caption and kind, and a layer that is a string
    or null; the model card a dict whose layer rows have their keys."""
    def bad(what: str) -> CnnvizError:
        return DamagedManifest(f"{path}: {what}; move the file away to start a new manifest")

    for i, e in enumerate(data["entries"]):
        if not isinstance(e, dict):
            raise bad(f"entry {i} is a {type(e).__name__}, not an object")
        for key in ENTRY_TEXT_KEYS:
            if not isinstance(e.get(key), str):
                raise bad(f"entry {i} has no text {key!r} (got {e.get(key)!r})")
        for key in ("command", "layer"):
            if e.get(key) is not None and not isinstance(e[key], str):
                raise bad(f"entry {i} ({e['path']}): {key!r} must be text or null")
    model = data.get("model")
    if model is None:
        return
    if not isinstance(model, dict):
        raise bad(f"'model' is a {type(model).__name__}, not an object")
    rows = model.get("layers", [])
    if not isinstance(rows, list):
        raise bad("'model.layers' is not a list")
    for i, row in enumerate(rows):
        missing = [k for k in LAYER_ROW_KEYS if not isinstance(row, dict) or k not in row]
        if missing:
            raise bad(f"model layer row {i} lacks {', '.join(missing)}")
    for key in ("classes", "summary"):
        if model.get(key) is not None and not isinstance(model[key], list):
            raise bad(f"'model.{key}' is not a list")


@contextlib.contextmanager
def _claimed(folder: Path) -> Iterator[None]:
    """The gallery's lock, held once the folder is known to be cnnviz's (or new): the check
    is repeated under the lock, so two commands creating the same gallery at once both go
    on; a foreign folder is refused before the lock file is made in it."""
    check_gallery(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder / LOCK_FILE):
        check_gallery(folder)
        yield


def claim(folder: Path) -> None:
    """Make `folder` a gallery (its mark written under the lock), or refuse it."""
    with _claimed(folder):
        mark(folder)


def add_entries(folder: Path, entries: list[dict], model: dict | None = None) -> Path:
    """Merge entries (keyed by their relative `path`) into the folder's manifest."""
    with _claimed(folder):
        manifest = read_manifest(folder)
        manifest.pop("dropped", None)
        by_path = {e["path"]: e for e in manifest["entries"]}
        now = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
        for entry in entries:
            for other in _other_formats(entry["path"], by_path):
                by_path.pop(other)  # the same figure written before in another format
                with contextlib.suppress(OSError):
                    (folder / other).unlink()
            by_path[entry["path"]] = {**entry, "written": now}
        manifest["entries"] = sorted(by_path.values(), key=lambda e: e["path"])
        if model is not None:
            manifest["model"] = model
        manifest.update(generator=GENERATOR, format=FORMAT, updated=now)
        mark(folder)
        write_json(folder / MANIFEST_FILE, manifest)
    return folder / MANIFEST_FILE


FIGURE_SUFFIXES = (".png", ".svg", ".pdf")


def _other_formats(path: str, by_path: dict) -> list[str]:
    """Entries of the same figure as `path` in another figure format (kernels-conv1.svg
    for kernels-conv1.png)."""
    stem, dot, suffix = path.rpartition(".")
    if not dot or f".{suffix}" not in FIGURE_SUFFIXES:
        return []
    return [f"{stem}{other}" for other in FIGURE_SUFFIXES
            if other != f".{suffix}" and f"{stem}{other}" in by_path]


def mark(folder: Path) -> None:
    """Leave cnnviz's mark in a gallery folder it writes (once)."""
    if not (folder / MARK_FILE).is_file():
        write_text(folder / MARK_FILE, "written by cnnviz: this folder is a gallery\n")


GENERATED = ("index.html", "cards", MANIFEST_FILE, LOCK_FILE, MARK_FILE)


def recover_manifest(folder: Path) -> tuple[dict, bool]:
    """The folder's manifest, or, when it is missing or corrupt in a folder cnnviz marked
    as its gallery, one rebuilt from the files on disk (captions from file names; a corrupt
    file is kept as manifest.json.corrupt). Returns (manifest, recovered)."""
    check_gallery(folder)
    marked = (folder / MARK_FILE).is_file()
    if (folder / MANIFEST_FILE).is_file():
        try:
            return read_manifest(folder), False
        except (UsageError, DamagedManifest):
            raise
        except CnnvizError:
            if not marked:
                raise
    files = sorted(folder.rglob("*")) if marked else []
    found = [entry(path.relative_to(folder).as_posix(), _caption_from_name(path), "recovered",
                   *_command_and_layer(path.relative_to(folder).parts))
             for path in files if path.is_file() and _is_gallery_file(folder, path)]
    if not found:
        raise CnnvizError(f"{folder} has no manifest.json and no gallery files; run a probe "
                          "command (or `cnnviz atlas`) first")
    manifest = {"generator": GENERATOR, "format": FORMAT, "entries": found,
                "recovered_from_files": True}
    with _locked(folder / LOCK_FILE):
        broken = folder / MANIFEST_FILE
        if broken.is_file():
            broken.replace(folder / f"{MANIFEST_FILE}.corrupt")
        write_json(folder / MANIFEST_FILE, manifest)
    return manifest | {"dropped": []}, True


def _is_gallery_file(folder: Path, path: Path) -> bool:
    parts = path.relative_to(folder).parts
    return (parts[0] not in GENERATED and not any(p.startswith(".") for p in parts)
            and not path.name.startswith(f"{MANIFEST_FILE}."))


def _command_and_layer(parts: tuple[str, ...]) -> tuple[str, str | None]:
    return (parts[0] if len(parts) > 1 else "other"), (parts[1] if len(parts) > 2 else None)


def _caption_from_name(path: Path) -> str:
    return path.stem.replace("-", " ").replace("_", " ") + " (recovered: the manifest was lost)"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
