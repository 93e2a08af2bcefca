"""`cnnviz filters` and `cnnviz kernels`: optimal patterns and kernels drawn into outputs/NAME/."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from cnnviz.atomic import atomic_path
from cnnviz.layout import FILTERS, KERNELS, KERNELS_KEY, kernels_arrays, patterns_arrays
from cnnviz.manifest import entry
from cnnviz.names import slug
from cnnviz.model import LoadedModel
from cnnviz.probes.kernels import conv_kernels
from cnnviz.probes.patterns import PatternSettings, Patterns, optimal_patterns
from cnnviz.render.patterns import image_grid, kernel_gallery, pattern_gallery



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
              if steps else np.zeros((len(maps), 0, 28, 28), np.float32))
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


def write_kernels(loaded: LoadedModel, layer: str, out: Path) -> list[dict]:
    """One kernel mosaic for a conv layer."""
    kernels = conv_kernels(loaded.model, layer)
    place = slug(layer)
    rel = f"{KERNELS}/{place}/kernels-{place}.png"
    (out / KERNELS / place).mkdir(parents=True, exist_ok=True)
    kernel_gallery(kernels, layer, out / rel)
    caption = (f"{layer}: {kernels.shape[3]} kernels of {kernels.shape[0]}x{kernels.shape[1]} "
               f"over {kernels.shape[2]} input channel(s), red positive, blue negative")
    maps = np.arange(kernels.shape[3])
    arrays = kernels_arrays(layer)
    with atomic_path(out / arrays) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **{KERNELS_KEY: kernels})
    return [_entry(rel, caption, "kernels", layer, maps, "kernels"),
            _entry(arrays, f"{layer}: kernel array (kh, kw, in, out)", "arrays", layer, maps, "kernels")]


def _pixels(loaded: LoadedModel, inputs: np.ndarray) -> np.ndarray:
    return np.clip(loaded.preprocessing.invert(inputs), 0, 255)


def _entry(path: str, caption: str, kind: str, layer: str, maps, command: str = "filters") -> dict:
    return entry(path, caption, kind, command, layer, maps=[int(m) for m in maps])
