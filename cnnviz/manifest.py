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
from pathlib import Path
from typing import Iterator

from cnnviz.atomic import write_json
from cnnviz.errors import CnnvizError

MANIFEST_FILE = "manifest.json"
LOCK_FILE = ".manifest.lock"


def entry(path: str, caption: str, kind: str, command: str, layer: str | None = None,
          **meta) -> dict:
    """One manifest entry: the file's path relative to the gallery folder, its caption,
    what kind of file it is, which command wrote it, its layer, and any metadata."""
    return {"path": path, "caption": caption, "kind": kind, "command": command,
            "layer": layer, **meta}


def read_manifest(folder: Path) -> dict:
    """The manifest of a gallery folder ({"entries": []} when there is none yet)."""
    path = folder / MANIFEST_FILE
    if not path.is_file():
        return {"entries": []}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
            raise ValueError("no list of entries")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CnnvizError(f"{path} is corrupt ({str(exc).splitlines()[0]}); move it away "
                          "to start a new one") from None
    return data


def add_entries(folder: Path, entries: list[dict], model: dict | None = None) -> Path:
    """Merge entries (keyed by their relative `path`) into the folder's manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder / LOCK_FILE):
        manifest = read_manifest(folder)
        by_path = {e["path"]: e for e in manifest["entries"]}
        now = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
        for entry in entries:
            by_path[entry["path"]] = {**entry, "written": now}
        manifest["entries"] = sorted(by_path.values(), key=lambda e: e["path"])
        if model is not None:
            manifest["model"] = model
        manifest["updated"] = now
        write_json(folder / MANIFEST_FILE, manifest)
    return folder / MANIFEST_FILE


GENERATED = ("index.html", "cards", MANIFEST_FILE, LOCK_FILE)


def recover_manifest(folder: Path) -> tuple[dict, bool]:
    """The folder's manifest, or, when it is missing or corrupt, one rebuilt from the files
    on disk (captions from file names; a corrupt file is kept as manifest.json.corrupt).

    Returns (manifest, recovered)."""
    with contextlib.suppress(CnnvizError):
        if (folder / MANIFEST_FILE).is_file():
            return read_manifest(folder), False
    found = [entry(path.relative_to(folder).as_posix(), _caption_from_name(path), "recovered",
                   *_command_and_layer(path.relative_to(folder).parts))
             for path in sorted(folder.rglob("*")) if path.is_file() and _is_gallery_file(folder, path)]
    if not found:
        raise CnnvizError(f"{folder} has no manifest.json and no gallery files; run a probe "
                          "command (or `cnnviz atlas`) first")
    with _locked(folder / LOCK_FILE):
        broken = folder / MANIFEST_FILE
        if broken.is_file():
            broken.replace(folder / f"{MANIFEST_FILE}.corrupt")
        write_json(folder / MANIFEST_FILE, {"entries": found, "recovered_from_files": True})
    return {"entries": found}, True


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
