"""Opening a gallery folder for writing, and recording what a recipe wrote in its manifest."""

from __future__ import annotations

import os
from pathlib import Path

from cnnviz import interrupts
from cnnviz.errors import CnnvizError
from cnnviz.galleries.summary import model_card
from cnnviz.manifest import add_entries, check_gallery, claim, read_manifest
from cnnviz.model import LoadedModel


def prepare(folder: Path) -> None:
    """Fail before any work when the folder is not cnnviz's, its manifest is damaged, or it
    cannot be written (so a failing command leaves no figure behind); mark it as a gallery."""
    check_gallery(folder)
    read_manifest(folder)
    try:
        claim(folder)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise CnnvizError(f"cannot write to {folder}: {exc.strerror or exc}; choose another "
                          "folder (outputs_dir=) or fix its permissions") from None


def record(loaded: LoadedModel, folder: Path, entries: list[dict],
           model: dict | None = None) -> Path:
    """Add the written files to the gallery's manifest with the model card (default: the
    loaded model's), never the work of an interrupted command; returns the manifest's path."""
    interrupts.raise_if_received()
    return add_entries(folder, entries, model=model or model_card(loaded))
