"""`cnnviz filters` and `cnnviz kernels`: optimal patterns and kernels drawn into outputs/NAME/."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from cnnviz.render.style import figure_name
from cnnviz.atomic import atomic_path
from cnnviz.checks import flag, indices
from cnnviz.errors import CnnvizError, UsageError
from cnnviz.graph import graph_of
from cnnviz.layers import activation_after, choose_layers, layers_for
from cnnviz.layout import FILTERS, layer_file, patterns_arrays
from cnnviz.manifest import entry
from cnnviz.names import slug
from cnnviz.model import LoadedModel
from cnnviz.probes.objectives import Objective, check_objective, parse_objectives
from cnnviz.probes.patterns import (PatternSettings, Patterns, ascent_steps, default_scales,
                                    optimal_patterns, parse_maps)
from cnnviz.probes.transforms import REGULARISERS, TRANSFORMS, Transforms, parse_weights
from cnnviz.render.patterns import image_grid, pattern_gallery



@dataclass(frozen=True)
class PatternOptions:
    """One layer's pattern gallery (or a list of objectives'): which maps (None: all), how
    the ascent runs, extras. `objectives` replaces the maps; `layer` then names the gallery."""

    layer: str
    settings: PatternSettings
    maps: np.ndarray | None = None
    per_scale: bool = False
    save_arrays: bool = False
    objectives: tuple[Objective, ...] | None = None
    images: object = None    # images of the dataset split (pixels at the model's size) for
    split: str = "test"      # the data starts and each pattern's reference (its best image)


def request(m, layers=None, maps=None, objective=None, split: str = "test", scales=None,
            per_scale: bool = False, save_arrays: bool = False, **settings) -> list[PatternOptions]:
    """The parts of `m.gallery("filters", ...)`: one per layer (default: every convolution),
    or one for a list of objectives. objective: "mean" or "center" (per map), or
    expressions ('conv3:17 - 0.5*conv3:4; output:7'), an Objective or a list of them."""
    flag(per_scale, "per_scale"), flag(save_arrays, "save_arrays")
    kind, objectives = objective_request(m.model, objective)
    if objectives is not None and (layers is not None or maps is not None):
        raise UsageError("objective expressions name their own layers and maps; drop layers= "
                         "and maps=", "objective")
    options = pattern_settings(m.loaded.image_shape, scales, objective=kind, **settings)
    if objectives is not None:
        plan = [("objectives", np.arange(len(objectives)), tuple(objectives))]
    else:
        default = ",".join(layers_for(m.model, "kernels")) or "all"
        plan = [(layer, choose_maps(maps, graph_of(m.model).shape(layer)[-1]), None)
                for layer in choose_layers(m.model, layers, "patterns", default)]
    images = split_images(m, split) if options.data_starts else None
    return [PatternOptions(layer, options, chosen, per_scale, save_arrays, parsed, images, split)
            for layer, chosen, parsed in plan]


def part(loaded: LoadedModel, options: PatternOptions) -> tuple[str, str, int]:
    """One layer's folder, and its progress bar: every ascent step."""
    with_data = options.images is not None
    maps = len(options.objectives) if options.objectives is not None else len(options.maps)
    steps = ascent_steps(maps, options.settings, graph_of(loaded.model).input_shape[1:], with_data)
    return (f"{FILTERS}/{slug(options.layer)}",
            f"{options.layer}: {maps} × {options.settings.start_count(with_data)} starts", steps)


def pattern_settings(image_shape: tuple[int, ...], scales=None, regularise=None, transform=None,
                     **settings) -> PatternSettings:
    """The ascent's settings from parameters (PatternSettings' fields), read once for
    `patterns`, `filters` and the atlas: scales None or "auto" (the model's default: 3, 7,
    14, 28 pixels on a 28-pixel input, in proportion on others) or a list or "3,7";
    snapshots a list or "0,10,25"; regularise "tv=0.05,l2=0.1" or a dict; transform
    "jitter=2,rotate=5", "none" or a dict."""
    if isinstance(scales, str):
        scales = None if scales.strip().lower() == "auto" else numbers_in(scales, "scales")
    if isinstance(settings.get("snapshots"), str):
        settings["snapshots"] = numbers_in(settings["snapshots"], "snapshots")
    if regularise is not None:
        settings["regularisers"] = tuple(weights(regularise, tuple(REGULARISERS), "regularise").items())
    if transform is not None:
        settings["transforms"] = Transforms(**weights(transform, TRANSFORMS, "transform"))
    try:
        found = PatternSettings(scales=default_scales(image_shape) if scales is None
                                else tuple(scales) if np.iterable(scales) else scales, **settings)
    except TypeError as exc:
        raise UsageError(f"patterns: {exc}", "settings") from None
    found.check_scales(max(image_shape[:2]))
    return found


def objective_request(model, objective) -> tuple[str, list[Objective] | None]:
    """("mean" or "center", None) for an objective per map; ("mean", objectives) for
    expressions, an Objective or a list of them (each checked against the model)."""
    if objective is None or (isinstance(objective, str)
                             and objective.strip().lower() in ("mean", "center")):
        return (objective or "mean").strip().lower(), None
    given = objective if isinstance(objective, (list, tuple)) else [objective]
    if not given:
        raise UsageError("objective: an empty list; give an expression or an Objective",
                         "objective")
    found = []
    for one in given:
        if isinstance(one, str):
            found += parse_objectives(one, model)
        else:
            check_objective(model, one)
            found.append(one)
    return "mean", found


def choose_maps(maps, count: int) -> np.ndarray:
    """Map indices: None (all), an index, a list, or "0-15,31"; within 0..count-1."""
    if maps is None or isinstance(maps, str):
        return parse_maps(maps, count)
    chosen = indices(list(maps) if np.iterable(maps) else maps, "maps")
    return parse_maps(",".join(str(m) for m in chosen), count)


def split_images(m, split: str):
    """The split's images for the data starts; when no data was named and the model's own
    cannot be read, None (noise starts only) with a note."""
    if split not in ("test", "train"):
        raise UsageError(f"split must be test or train, got {split!r}", "split")
    try:
        return m.data().split(split)[0]
    except (CnnvizError, UsageError) as exc:
        if m.data_named:
            raise
        m.note(f"no dataset for the data starts ({exc}); noise starts only")
        return None


def numbers_in(text: str, name: str) -> tuple[int, ...]:
    """'0,10,25' → (0, 10, 25)."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values:
        raise UsageError(f"{name} takes integers separated by commas, got {text!r}", name)
    return values


def weights(given, known, name: str) -> dict[str, float]:
    """A dict of NAME → weight, or its text 'tv=0.1,l2=0.05' ("none": {})."""
    if isinstance(given, str):
        return parse_weights(given, known, name)
    if not isinstance(given, dict):
        raise UsageError(f"{name} must be a dict or text like {known[0]}=0.1, got {given!r}", name)
    return parse_weights(",".join(f"{k}={v}" for k, v in given.items()), known, name) if given else {}


def run(loaded: LoadedModel, options: PatternOptions, out: Path,
        report: Callable[[str], None] | None = None,
        progress: Callable[[int], None] | None = None) -> list[dict]:
    """The recipe: the ascent for one layer, its galleries (and arrays); a line to `report`."""
    if options.objectives is None:
        count = graph_of(loaded.model).shape(options.layer)[-1]
        maps = np.arange(count) if options.maps is None else options.maps
        better = activation_after(loaded.model, options.layer)
        if better and report is not None:
            report(f"note: {options.layer} feeds a normalisation and {better}; the maps the "
                   f"network passes on are {better}'s (layer={better})")
    else:
        maps = np.arange(len(options.objectives))
    entries, result = write_patterns(loaded, options.layer, maps, options.settings, out,
                                     loaded.classes(), options.per_scale, options.save_arrays,
                                     progress, options.images, options.objectives,
                                     options.split)
    if report is not None:
        report(f"{result.summary(options.split)}, {result.seconds:.1f} s")
    return entries


def write_patterns(loaded: LoadedModel, layer: str, maps: np.ndarray, settings: PatternSettings,
                   out: Path, class_names: tuple[str, ...], per_scale: bool = False,
                   save_arrays: bool = False,
                   progress: Callable[[int], None] | None = None, data=None,
                   objectives: Sequence[Objective] | None = None,
                   split: str = "test") -> tuple[list[dict], Patterns]:
    """Run the ascent for one layer and write its galleries, its report (and arrays)."""
    result = optimal_patterns(loaded.model, layer, maps, loaded.preprocessing, settings,
                              progress, data, objectives)
    place = slug(layer)
    (out / FILTERS / place).mkdir(parents=True, exist_ok=True)
    best = result.best_inputs
    pixels = _pixels(loaded, best)
    predicted = loaded.model.predict(best, verbose=0).argmax(axis=1)
    objective = result.best_objective
    ratio = result.ratio
    names = [f"{m}" if objectives is None else result.objectives[i] for i, m in enumerate(result.maps)]
    labels = [(f"{n} ×{r:.2g}" if ratio is not None and np.isfinite(r) else f"{n}: {o:.3g}")
              + f" → {class_names[p] if p < len(class_names) else p}"
              for n, o, r, p in zip(names, objective, ratio if ratio is not None else objective,
                                    predicted)]
    rel = figure_name(f"{FILTERS}/{place}/patterns-{place}")
    what = "map" if objectives is None else "objective"
    shown = (f"{what} ×value over its best {split} image" if ratio is not None
             else f"{what}: value reached")
    title = (f"{layer}: best input pattern per {what} (label: {shown} → predicted class); "
             f"{len(result.starts)} starts, {settings.steps} steps")
    pattern_gallery(pixels, labels, title, out / rel)
    entries = [_entry(rel, title, "patterns", layer, result.maps)]
    if per_scale:
        for j, group in enumerate(result.groups):
            rel = figure_name(f"{FILTERS}/{place}/patterns-{place}-{_group_file(group)}")
            caption = f"{layer}: best pattern per map from the starts of {group}"
            reached = np.where(result.start_group[None, :] == j, result.objective, -np.inf).max(axis=1)
            pattern_gallery(_pixels(loaded, result.group_inputs[:, j]),
                            [f"{n}: {o:.3g}" for n, o in zip(names, reached)], caption, out / rel)
            entries.append(_entry(rel, caption, "patterns-scale", layer, result.maps))
    if result.diverse is not None:
        rel = figure_name(f"{FILTERS}/{place}/diverse-{place}")
        caption = f"{layer}: {result.diverse.shape[1]} patterns per map that must differ (diversity)"
        image_grid(_pixels(loaded, result.diverse), names,
                   [f"#{k + 1}" for k in range(result.diverse.shape[1])], caption, out / rel)
        entries.append(_entry(rel, caption, "patterns-diverse", layer, result.maps))
    steps = sorted(result.snapshots)
    frames = (np.stack([_pixels(loaded, result.snapshots[s]) for s in steps], 1)
              if steps else np.zeros((len(maps), 0, *loaded.image_shape), np.float32))
    if steps:
        rel = figure_name(f"{FILTERS}/{place}/evolution-{place}")
        caption = f"{layer}: how each map's best pattern evolves over the steps"
        image_grid(frames, [f"map {n}" for n in names], [f"step {s}" for s in steps],
                   caption, out / rel)
        entries.append(_entry(rel, caption, "patterns-evolution", layer, result.maps))
    rel = layer_file(FILTERS, layer, "patterns", "json")
    with atomic_path(out / rel) as tmp:
        tmp.write_text(json.dumps(pattern_report(result, settings, split, predicted,
                                                 class_names), indent=1), encoding="utf-8")
    entries.append(_entry(rel, f"{layer}: per pattern, the value reached, its best {split} "
                          f"image, the curve over the steps and flags", "report", layer, result.maps))
    if save_arrays:
        rel = patterns_arrays(layer)
        flags = result.flags()
        extra = {} if result.reference is None else {
            "reference": result.reference, "reference_index": result.reference_index}
        with atomic_path(out / rel) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, input=best, pixels=pixels, objective=objective, maps=result.maps,
                     start=result.best, predicted=predicted,
                     all_objectives=result.objective, start_objectives=result.start_objective,
                     curve=result.curve, curve_steps=result.curve_steps,
                     flags=np.stack([flags[k] for k in FLAGS if k in flags], 1),
                     flag_names=np.array([k for k in FLAGS if k in flags]),
                     snapshot_steps=np.asarray(steps, dtype=np.int64),
                     snapshot_pixels=frames.astype(np.float32), **extra)
        entries.append(_entry(rel, f"{layer}: pattern arrays", "arrays", layer, result.maps))
    return entries, result


FLAGS = ("never woke", "below its best image", "mostly saturated")


def pattern_report(result: Patterns, settings: PatternSettings, split: str,
                   predicted: np.ndarray, class_names: Sequence[str]) -> dict:
    """What patterns-LAYER.json holds: the settings, one line, and per pattern its value,
    its best image, the ratio, the curve over the steps, every start's value and the flags."""
    flags = result.flags()
    ratio = result.ratio
    patterns = []
    for i, m in enumerate(result.maps):
        row = {"map": int(m), "objective": result.objectives[i],
               "reached": float(result.best_objective[i]), "best_start": result.starts[result.best[i]],
               "predicted": class_names[predicted[i]] if predicted[i] < len(class_names) else int(predicted[i]),
               "flags": [k for k in FLAGS if k in flags and flags[k][i]],
               "saturated_share": round(float(result.saturated[i]), 4),
               "curve": [round(float(v), 6) for v in result.curve[i]],
               "starts": {s: float(v) for s, v in zip(result.starts, result.objective[i])}}
        if result.reference is not None:
            row.update(best_image=int(result.reference_index[i]),
                       best_image_value=float(result.reference[i]),
                       ratio=None if not np.isfinite(ratio[i]) else round(float(ratio[i]), 4))
        patterns.append(row)
    return {"layer": result.layer, "summary": result.summary(split), "split": split,
            "seconds": round(result.seconds, 2), "curve_steps": [int(s) for s in result.curve_steps],
            "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in
                         asdict(settings).items() if k not in ("transforms", "regularisers")},
            "recipe": _recipe(settings, result.best_inputs.shape[1:]),
            "patterns": patterns}


def _recipe(settings: PatternSettings, input_shape: tuple[int, ...]) -> dict:
    penalties, moves, form = settings.resolved(tuple(input_shape))
    return {"regularisers": penalties, "parameterisation": form,
            "transforms": {k: round(v, 4) for k, v in asdict(moves).items()}}


def _group_file(group: str) -> str:
    """'noise 7 px' → 'scale-7'; 'pixel noise' → 'pixel-noise'; 'dataset images' → 'dataset'."""
    if group.startswith("noise "):
        return "scale-" + group.split()[1]
    return {"pixel noise": "pixel-noise", "dataset images": "dataset"}.get(group, slug(group))


def _pixels(loaded: LoadedModel, inputs: np.ndarray) -> np.ndarray:
    return np.clip(loaded.preprocessing.invert(inputs), 0, 255)


def _entry(path: str, caption: str, kind: str, layer: str, maps, command: str = "filters") -> dict:
    return entry(path, caption, kind, command, layer, maps=[int(m) for m in maps])
