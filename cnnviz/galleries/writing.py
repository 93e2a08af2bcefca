"""Writing a registered technique's gallery: the one path every command, `Inspected.gallery`
and the atlas share.

    request → options (each recipe checks its parameters, before any folder is touched)
    prepare the folder (cnnviz's own, writable) → run each part → record it in the manifest
    → refresh the page when there is one

A recipe module of cnnviz.galleries has `FOLDER`, `request(m, **parameters)` (a list of
options, one per part), `run(loaded, options, out, report, progress)` (manifest entries) and,
optionally, `part(loaded, options)` ((folder, progress label, progress length) of one
part).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Callable

from cnnviz.errors import CheckFailed, UsageError
from cnnviz.names import counted
from cnnviz.progress import Progress, progress_bar
from cnnviz.techniques import BY_NAME, TECHNIQUES


@dataclass
class Written:
    """What a gallery call wrote: the folder, the files (relative to it), the manifest and
    the page (None when the folder has none yet), and the lines reported on the way."""

    folder: Path
    files: list[str] = field(default_factory=list)
    manifest: Path | None = None
    page: Path | None = None

    def __repr__(self) -> str:
        return f"<cnnviz gallery {self.folder}: {counted(len(self.files), 'file')}>"


def recipe(technique: str) -> ModuleType:
    """The recipe module of a registered technique (UsageError listing them otherwise)."""
    found = BY_NAME.get(technique) if isinstance(technique, str) else None
    if found is None or found.recipe is None:
        valid = ", ".join(t.name for t in TECHNIQUES if t.recipe is not None)
        raise UsageError(f"technique must be one of {valid}, got {technique!r}", "technique")
    return importlib.import_module(f"cnnviz.galleries.{found.recipe}")


def write(m, technique: str, folder: Path, parameters: dict, progress: Progress = None,
          dpi: int | None = None, format: str | None = None) -> Written:  # noqa: A002
    """Check the request, then write every part of it into `folder`, each recorded in the
    manifest as it finishes (an interrupted call keeps the parts already done)."""
    from cnnviz import distributed
    from cnnviz.galleries.record import prepare, record
    from cnnviz.render.style import figure_output

    module = recipe(technique)
    say = m.report
    with figure_output(dpi, format):  # dpi and format checked before anything else
        parts = module.request(m, **parameters)
    written = Written(folder)
    with distributed.sharing(m.strategy) as shared, figure_output(dpi, format), \
            distributed.writes_to(folder, shared) as where:
        if where != folder:
            say(f"note: this worker's copy of {folder.name} goes to {where.parent}, removed "
                f"when it ends; the chief writes {folder}")
        prepare(where)
        for options in parts:
            place, label, length = part_of(module, m.loaded, options)
            failed = None
            with progress_bar(progress, length, label) as update:
                try:
                    entries = module.run(m.loaded, options, where, say, update)
                except CheckFailed as exc:  # its evidence is kept, then the failure is said
                    failed, entries = exc, exc.entries
            written.manifest = record(m.loaded, where, entries)
            files = list(dict.fromkeys(e["path"] for e in entries))
            written.files += files
            say(f"wrote {counted(len(files), 'file')} to {where / place} (listed in "
                f"{written.manifest})")
            if failed is not None:
                refresh_page(where, say)
                raise failed
        written.page = refresh_page(where, say)
    return written


def part_of(module: ModuleType, loaded, options) -> tuple[str, str, int]:
    """(folder, progress label, progress length) of one part; no length: no bar."""
    if hasattr(module, "part"):
        return module.part(loaded, options)
    return module.FOLDER, module.FOLDER, 0


def refresh_page(folder: Path, say: Callable[[str], None]) -> Path | None:
    """Keep an existing index.html up to date (no page yet: nothing to do)."""
    from cnnviz.render.site import INDEX_FILE, build_page

    if not (folder / INDEX_FILE).is_file():
        return None
    return build_page(folder, say)
