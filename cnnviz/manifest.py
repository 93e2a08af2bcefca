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


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
