"""`cnnviz atlas`: every gallery of a model in one run, one TensorFlow import, then the page.

Each stage is a function returning manifest entries; the CLI times and reports them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from cnnviz import bundle
from cnnviz.data import Dataset, class_names
from cnnviz.errors import UsageError
from cnnviz.galleries import stats as stats_gallery
from cnnviz.galleries.activations import select_one_per_class, write_image_activations
from cnnviz.galleries.filters import write_kernels, write_patterns
from cnnviz.galleries.record import prepare, record
from cnnviz.layout import CURVES, TRAIN
from cnnviz.manifest import entry
from cnnviz.model import LoadedModel, resolve_layers
from cnnviz.probes.kernels import conv_layers
from cnnviz.probes.patterns import PatternSettings, Patterns, parse_maps
from cnnviz.render.figures import training_curves



def default_snapshots(steps: int) -> tuple[int, ...]:
    """Four steps to show a pattern's evolution: 0, about 10 % and 30 %, and the last."""
    return tuple(sorted({0, max(1, steps // 10), max(1, (3 * steps) // 10), steps}))


def write_curves(loaded: LoadedModel, out: Path) -> list[dict]:
    """The bundle's training curves (drawn from history.csv); none for a plain .keras file."""
    folder = loaded.ref.bundle_dir
    history = bundle.read_history(folder) if folder is not None else {}
    if not history:
        return []
    (out / TRAIN).mkdir(parents=True, exist_ok=True)
    training_curves(history, out / CURVES, f"{loaded.name}: accuracy and loss per epoch")
    epochs = len(next(iter(history.values())))
    return [entry(CURVES, f"training curves over {epochs} epochs (train and test split)",
                  "curves", "train")]


def write_class_samples(loaded: LoadedModel, layers: list[str], data: Dataset, split: str,
                        out: Path, class_names: tuple[str, ...]) -> list[dict]:
    """Every layer for the first image of each class: one images × maps figure per layer."""
    selection = select_one_per_class(data, split)
    return write_image_activations(loaded, layers, selection, out, "layer", True, class_names)


def write_all_patterns(loaded: LoadedModel, settings: PatternSettings, out: Path,
                       class_names: tuple[str, ...],
                       done: Callable[[str, Patterns], None]) -> list[dict]:
    """Patterns (with arrays and evolution) for every conv layer."""
    entries = []
    for layer in conv_layers(loaded.model):
        count = loaded.model.get_layer(layer).output.shape[-1]
        written, result = write_patterns(loaded, layer, parse_maps(None, count), settings, out,
                                         class_names, save_arrays=True)
        entries += written
        done(layer, result)
    return entries


def write_all_kernels(loaded: LoadedModel, out: Path) -> list[dict]:
    return [e for layer in conv_layers(loaded.model) for e in write_kernels(loaded, layer, out)]


def write_all_stats(loaded: LoadedModel, layers: list[str], data: Dataset, split: str,
                    limit: int | None, top: int, out: Path,
                    class_names: tuple[str, ...]) -> list[dict]:
    result = stats_gallery.compute(loaded, layers, data, split, limit, top)
    return stats_gallery.write_stats(loaded, result, data, split, out, class_names)


def atlas_settings(steps: int = 100, step_size: float = 0.1,
                   scales: tuple[int, ...] = (3, 7, 14, 28), starts: int = 1,
                   seed: int = 0) -> PatternSettings:
    """The atlas's pattern settings: its evolution snapshots at 0, ~10 %, ~30 % and the end."""
    return PatternSettings(steps=steps, step_size=step_size, scales=scales, starts=starts,
                           snapshots=default_snapshots(steps) if steps > 0 else (), seed=seed)


def run_atlas(loaded: LoadedModel, data: Dataset, out: Path, settings: PatternSettings,
              split: str = "test", limit: int | None = None, top: int = 9,
              report: Callable[[str], None] | None = None):
    """Every gallery of a model, each stage recorded as it finishes, then the page.

    `report` receives one line per stage (and per layer of patterns); returns the Site."""
    import time

    from cnnviz.render.site import build_site

    say = report or (lambda line: None)
    for name, value in (("limit", limit), ("top", top)):
        if value is not None and value < 1:
            raise UsageError(f"{name} must be ≥ 1, got {value}", name)
    count = min(limit or len(data.split(split)[0]), len(data.split(split)[0]))
    if top > count:
        raise UsageError(f"top {top} is larger than the {count:,} images used; choose top ≤ "
                         f"{count}", "top")
    prepare(out)
    names = class_names(data.name)
    layers = resolve_layers(loaded.model, "all")

    def stage(label: str, work: Callable[[], list[dict]]) -> None:
        started = time.perf_counter()
        entries = work()
        record(loaded, out, entries)
        say(f"{label}: {len({e['path'] for e in entries})} files in "
            f"{time.perf_counter() - started:.1f} s")

    def pattern_line(layer: str, result: Patterns) -> None:
        reached = result.best_objective
        say(f"  {layer}: {int((reached > 0).sum())}/{len(reached)} maps with a positive "
            f"objective, {result.seconds:.1f} s")

    stage("curves", lambda: write_curves(loaded, out))
    stage("activations", lambda: write_class_samples(loaded, layers, data, split, out, names))
    stage("patterns", lambda: write_all_patterns(loaded, settings, out, names, pattern_line))
    stage("kernels", lambda: write_all_kernels(loaded, out))
    stage("stats", lambda: write_all_stats(loaded, layers, data, split, limit, top, out, names))
    return build_site(out)
