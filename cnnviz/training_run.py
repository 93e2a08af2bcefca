"""Training a new bundle from the library: settings by name, a lock, the curves drawn after
every epoch, progress as a callback. The CLI's `train` uses `draw_curves` too."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable

import keras

from cnnviz import bundle
from cnnviz.data import load_dataset
from cnnviz.errors import UsageError
from cnnviz.model import LoadedModel, load_model
from cnnviz.render.figures import training_curves
from cnnviz.runtime import select_device
from cnnviz.spec import resolve_settings, specs_from_settings
from cnnviz.training import train_bundle


def draw_curves(folder: Path, history: dict, epoch: int) -> None:
    """curves.png of a bundle, redrawn after every epoch."""
    training_curves(history, folder / bundle.CURVES_FILE, title=f"{folder.name}: epoch {epoch}")


class EpochProgress(keras.callbacks.Callback):
    """Calls progress(epoch, logs) after every epoch (1-based)."""

    def __init__(self, progress: Callable[[int, dict], None]):
        super().__init__()
        self.progress = progress

    def on_epoch_end(self, epoch, logs=None):
        self.progress(epoch + 1, {k: float(v) for k, v in (logs or {}).items()})


def train_new(preset: str, name: str | None, dataset: str, data: str | Path | None,
              trained_dir: Path, force: bool, progress: Callable[[int, dict], None] | None,
              settings: dict[str, Any]) -> LoadedModel:
    """Train preset + settings on the dataset into trained_dir/NAME; returns it loaded."""
    preset, flat = resolve_settings(preset, None, settings)
    network, training = specs_from_settings(flat)
    name = bundle.check_name(name or f"{dataset}-{preset}")
    folder = trained_dir / name
    with bundle.writing(folder):
        if folder.exists() and not force:
            raise UsageError(f"name: bundle {folder} exists; pass force=True to replace it or "
                             "choose another name", "name")
        found = load_dataset(dataset, data)
        if folder.exists():
            shutil.rmtree(folder)
        train_bundle(folder, network, training, found, preset=preset, device=select_device("auto"),
                     callbacks=[EpochProgress(progress)] if progress else [],
                     after_epoch=draw_curves, verbose=0)
    return load_model(name, trained_dir)
