"""`cnnviz filters` and `cnnviz kernels`: optimal patterns and kernels drawn into outputs/NAME/."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from cnnviz.atomic import atomic_path
from cnnviz.graph import graph_of
from cnnviz.layers import activation_after
from cnnviz.layout import FILTERS, patterns_arrays
from cnnviz.manifest import entry
from cnnviz.names import slug
from cnnviz.model import LoadedModel
from cnnviz.probes.patterns import PatternSettings, Patterns, optimal_patterns
from cnnviz.render.patterns import image_grid, pattern_gallery



@dataclass(frozen=True)
class PatternOptions:
    """One layer's pattern gallery: which maps (None: all), how the ascent runs, extras."""

    layer: str
    settings: PatternSettings
    maps: np.ndarray | None = None
    per_scale: bool = False
    save_arrays: bool = False


def run(loaded: LoadedModel, options: PatternOptions, out: Path,
        report: Callable[[str], None] | None = None,
        progress: Callable[[int], None] | None = None) -> list[dict]:
    """The recipe: the ascent for one layer, its galleries (and arrays); a line to `report`."""
    count = graph_of(loaded.model).shape(options.layer)[-1]
    maps = np.arange(count) if options.maps is None else options.maps
    names = loaded.classes()
    better = activation_after(loaded.model, options.layer)
    if better and report is not None:
        report(f"note: {options.layer} feeds a normalisation and {better}; the maps the "
               f"network passes on are {better}'s (--layer {better})")
    entries, result = write_patterns(loaded, options.layer, maps, options.settings, out, names,
                                     options.per_scale, options.save_arrays, progress)
    if report is not None:
        reached = result.best_objective
        report(f"{options.layer}: {int((reached > 0).sum())}/{len(reached)} maps with a positive "
               f"objective, median {float(np.median(reached)):.3g}, {result.seconds:.1f} s")
    return entries


def write_patterns(loaded: LoadedModel, layer: str, maps: np.ndarray, settings: PatternSettings,
                   out: Path, class_names: tuple[str, ...], per_scale: bool = False,
                   save_arrays: bool = False,
                   progress: Callable[[int], None] | None = None) -> tuple[list[dict], Patterns]:
    """Run the ascent for one layer and write its galleries (and arrays); returns entries."""
    result = optimal_patterns(loaded.model, layer, maps, loaded.preprocessing, settings, progress)
    place = slug(layer)
    (out / FILTERS / place).mkdir(parents=True, exist_ok=True)
    best = result.best_inputs
    pixels = _pixels(loaded, best)
    predicted = loaded.model.predict(best, verbose=0).argmax(axis=1)
    objective = result.best_objective
    labels = [f"{m}: {o:.2f} → {class_names[p]}" for m, o, p in zip(result.maps, objective, predicted)]
    rel = f"{FILTERS}/{place}/patterns-{place}.png"
    title = (f"{layer}: best input pattern per map (label: map: activation reached → predicted "
             f"class); {len(settings.scales)} scales × {settings.starts} starts, {settings.steps} steps")
    pattern_gallery(pixels, labels, title, out / rel)
    entries = [_entry(rel, title, "patterns", layer, result.maps)]
    if per_scale:
        for j, scale in enumerate(result.scales):
            pick = result.objective[:, j].argmax(axis=1)
            chosen = result.scale_inputs[:, j]
            rel = f"{FILTERS}/{place}/patterns-{place}-scale-{scale}.png"
            caption = f"{layer}: best pattern per map from starts of length scale {scale}"
            reached = result.objective[np.arange(len(maps)), j, pick]
            pattern_gallery(_pixels(loaded, chosen),
                            [f"{m}: {o:.2f}" for m, o in zip(result.maps, reached)], caption, out / rel)
            entries.append(_entry(rel, caption, "patterns-scale", layer, result.maps))
    steps = sorted(result.snapshots)
    frames = (np.stack([_pixels(loaded, result.snapshots[s]) for s in steps], 1)
              if steps else np.zeros((len(maps), 0, *loaded.image_shape), np.float32))
    if steps:
        rel = f"{FILTERS}/{place}/evolution-{place}.png"
        caption = f"{layer}: how each map's best pattern evolves over the steps"
        image_grid(frames, [f"map {m}" for m in result.maps], [f"step {s}" for s in steps],
                   caption, out / rel)
        entries.append(_entry(rel, caption, "patterns-evolution", layer, result.maps))
    if save_arrays:
        rel = patterns_arrays(layer)
        best_flat = result.best
        with atomic_path(out / rel) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, input=best, pixels=pixels, objective=objective, maps=result.maps,
                     scale=np.asarray(result.scales)[best_flat // settings.starts],
                     start=best_flat % settings.starts, predicted=predicted,
                     all_objectives=result.objective, start_objectives=result.start_objective,
                     snapshot_steps=np.asarray(steps, dtype=np.int64),
                     snapshot_pixels=frames.astype(np.float32))
        entries.append(_entry(rel, f"{layer}: pattern arrays", "arrays", layer, result.maps))
    return entries, result


def _pixels(loaded: LoadedModel, inputs: np.ndarray) -> np.ndarray:
    return np.clip(loaded.preprocessing.invert(inputs), 0, 255)


def _entry(path: str, caption: str, kind: str, layer: str, maps, command: str = "filters") -> dict:
    return entry(path, caption, kind, command, layer, maps=[int(m) for m in maps])
