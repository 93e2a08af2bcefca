"""`cnnviz stats`: layer and weight statistics, top examples, figures and tables in outputs/NAME/stats/."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from cnnviz.render.style import figure_name
from cnnviz.atomic import atomic_path, write_json, write_text
from cnnviz.checks import whole
from cnnviz.data import Dataset
from cnnviz.errors import UsageError
from cnnviz.layers import choose_layers
from cnnviz.graph import graph_of
from cnnviz.layout import (FIELD_MAPS, STATS, STATS_CSV, STATS_JSON, TOP_EXAMPLES, TOP_PIXELS,
                           TOP_PIXELS_INDEX, top_field_keys, top_keys)
from cnnviz.manifest import entry
from cnnviz.names import slug
from cnnviz.model import LoadedModel
from cnnviz.probes.stats import LayerStats, layer_stats, strongest_positions, weight_stats
from cnnviz.render.activations import class_heatmap
from cnnviz.render.parallel import draw_all
from cnnviz.render.examples import top_examples_figure
from cnnviz.render.stats import comparison, histograms, map_means, overview

FOLDER = STATS
CSV_COLUMNS = ("layer", "map", "mean", "std", "max", "active_fraction", "image_active_fraction",
               "dead", "always_on", "preferred_class", "weight_mean", "weight_std", "weight_min",
               "weight_max", "weight_l2", "weight_near_zero")


@dataclass(frozen=True)
class StatsOptions:
    """Which layers over which images; how many top examples; optionally a second model."""

    layers: tuple[str, ...]
    data: Dataset
    split: str = "test"
    limit: int | None = None
    top: int = 9
    batch_size: int = 500
    other: LoadedModel | None = None


def request(m, layers=None, split: str = "test", limit: int | None = None, top: int = 9,
            batch_size: int = 500, compare=None) -> list[StatsOptions]:
    """The part of `m.gallery("stats", ...)`: the layers (default: all) over the first `limit`
    images of a split, the `top` images per map; compare: another opened model (the same
    statistics of it, and the difference)."""
    if split not in ("test", "train"):
        raise UsageError(f"unknown split {split!r}; valid: test, train", "split")
    limit = None if limit is None else whole(limit, "limit", 1)
    top, batch_size = whole(top, "top", 1), whole(batch_size, "batch_size", 1)
    chosen = choose_layers(m.model, layers)
    if compare is not None and not hasattr(compare, "loaded"):
        raise UsageError(f"compare must be a model opened by cnnviz.load, got {compare!r}",
                         "compare")
    data = m.data()
    count = min(limit or len(data.split(split)[0]), len(data.split(split)[0]))
    if top > count:
        raise UsageError(f"top {top} is larger than the {count:,} images used; choose "
                         f"top ≤ {count}", "top")
    return [StatsOptions(tuple(chosen), data, split, limit, top, batch_size,
                         None if compare is None else compare.loaded)]


def part(loaded: LoadedModel, options: StatsOptions) -> tuple[str, str, int]:
    """The folder, and a progress bar over the images (twice with a second model)."""
    x = options.data.split(options.split)[0]
    count = min(options.limit or len(x), len(x))
    return FOLDER, "stats", count * (2 if options.other is not None else 1)


def run(loaded: LoadedModel, options: StatsOptions, out: Path,
        report: Callable[[str], None] | None = None,
        progress: Callable[[int], None] | None = None) -> list[dict]:
    """The recipe: statistics, tables, top examples and figures; with `other`, the same for
    the second model and the comparison. A line per layer (and per note) to `report`;
    progress(n) as each batch of n images is done."""
    say = report or (lambda line: None)
    o = options
    result = compute(loaded, list(o.layers), o.data, o.split, o.limit, o.top, o.batch_size,
                     progress)
    entries = write_stats(loaded, result, o.data, o.split, out, o.data.class_names)
    for layer, s in result.items():
        say(f"{layer:<8} {len(s.mean):>4} {'maps' if len(s.shape) == 3 else 'units'}: "
            f"{s.active_fraction.mean():6.1%} of values > 0, {int(s.dead.sum())} dead, "
            f"{int(s.always_on.sum())} always on")
    if o.other is not None:
        if o.other.preprocessing.kind != loaded.preprocessing.kind:
            say(f"note: {o.other.name} normalises with {o.other.preprocessing.kind}, "
                f"{loaded.name} with {loaded.preprocessing.kind}: each gets its own")
        shared = [n for n in o.layers if n in graph_of(o.other.model).addresses]
        theirs = compute(o.other, shared, o.data, o.split, o.limit, o.top, o.batch_size,
                         progress)
        written, notes = write_comparison((loaded.name, o.other.name), result, theirs, out)
        entries += written
        for note in notes:
            say(f"note: {note}")
    return entries


def compute(loaded: LoadedModel, layers: list[str], data: Dataset, split: str, limit: int | None,
            top: int, batch_size: int = 500,
            progress: Callable[[int], None] | None = None) -> dict[str, LayerStats]:
    x, y = data.split(split)
    return layer_stats(loaded.model, layers, x[:limit], y[:limit], loaded.preprocessing, top=top,
                       batch_size=batch_size, classes=len(data.class_names), progress=progress)


FIGURE_MAPS = 16  # rows of a top-examples figure (the first 16 maps; every map's card has its own)


def figure_rows(side: tuple[int, int]) -> int:
    """Maps in a top-examples figure: FIGURE_MAPS for digits, fewer for big images (a row of
    nine 96-pixel images and their crops is ≈ 1,800 pixels wide; every map's card has its own)."""
    return max(4, min(FIGURE_MAPS, FIGURE_MAPS * 64 // max(64, max(side))))


def _top_images(x, stats: dict[str, LayerStats]) -> tuple[np.ndarray, np.ndarray,
                                                         dict[str, np.ndarray]]:
    """(the distinct top images of every map of every layer, read — and for a lazy dataset
    converted — once each; their dataset indices, sorted; per layer, (maps, k) rows of them)."""
    wanted = np.unique(np.concatenate([s.top_index.ravel() for s in stats.values()]))
    return np.asarray(x[wanted]), wanted, {name: np.searchsorted(wanted, s.top_index)
                                           for name, s in stats.items()}


def write_stats(loaded: LoadedModel, stats: dict[str, LayerStats], data: Dataset, split: str,
                out: Path, class_names: tuple[str, ...]) -> list[dict]:
    """stats.json, stats.csv, top_examples.npz and the figures; returns manifest entries."""
    folder = out / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    weights = {name: weight_stats(loaded.model, name) for name in stats}
    entries = []
    write_json(out / STATS_JSON, _as_json(stats, weights, data, split))
    entries.append(_entry(STATS_JSON, f"statistics of every layer over {_n(stats)} "
                          f"{split} images of {data.name} (JSON)", "stats-table", None))
    write_text(out / STATS_CSV, _as_csv(stats, weights))
    entries.append(_entry(STATS_CSV, "one row per layer × map", "stats-table", None))
    x, _ = data.split(split)
    images, wanted, rows = _top_images(x, stats)
    fields = strongest_positions(loaded.model, {name: r[:FIELD_MAPS] for name, r in rows.items()},
                                 images, loaded.preprocessing)
    arrays = {key: value for name, s in stats.items() for key, value in
              zip(top_keys(name), (s.top_index, s.top_score))}
    arrays[TOP_PIXELS_INDEX], arrays[TOP_PIXELS] = wanted, images  # each top image once, whatever the maps × layers (memory, disk)
    arrays.update({key: value for name, found in fields.items() if found is not None
                   for key, value in zip(top_field_keys(name), found)})
    with atomic_path(out / TOP_EXAMPLES) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    entries.append(_entry(TOP_EXAMPLES, "per layer: dataset indices of the top images of "
                          "every map (key = layer) and their scores; the images once each "
                          "(~pixels, ~pixels_index)", "arrays", None))
    drawings = []  # (renderer, arguments): drawn together at the end, on every core
    for name, s in stats.items():
        unit = "map" if len(s.shape) == 3 else "unit"
        place = slug(name)
        (folder / place).mkdir(exist_ok=True)
        w = weights[name]
        rel = figure_name(f"{place}/histograms-{place}")
        drawings.append((histograms, (s.sample, w.values if w else None, name, folder / rel)))
        entries.append(_entry(f"{FOLDER}/{rel}", f"{name}: histograms of activations"
                              + (" and weights" if w else ""), "stats-histogram", name))
        rel = figure_name(f"{place}/map-means-{place}")
        drawings.append((map_means, (s.mean, s.dead, s.always_on, name, folder / rel, unit)))
        entries.append(_entry(f"{FOLDER}/{rel}", f"{name}: mean activation per {unit}, dead marked",
                              "stats-map-means", name))
        rel = figure_name(f"{place}/class-heatmap-{place}")
        drawings.append((class_heatmap, (s.class_mean, name, folder / rel, class_names, unit)))
        entries.append(_entry(f"{FOLDER}/{rel}", f"{name}: mean activation per class × {unit}",
                              "stats-class-heatmap", name))
        rel = figure_name(f"{place}/top-examples-{place}")
        k, shown = s.top_index.shape[1], min(len(s.mean), figure_rows(images.shape[1:3]))
        boxes = None if fields[name] is None else fields[name][1][:shown]
        which = (f"{unit}s 0–{shown - 1} of {len(s.mean)}; the rest on each {unit}'s card"
                 if shown < len(s.mean) else f"all {len(s.mean)} {unit}s")
        drawings.append((top_examples_figure, (
            images[rows[name][:shown]], boxes, s.top_score[:shown],
            [f"{unit} {m}" for m in range(shown)],
            f"{name}: the top {k} {split} images (by mean activation) of {which}", folder / rel)))
        part = "" if shown == len(s.mean) else (f" (the first {shown} of {len(s.mean)}; every {unit}'s "
                                                f"card shows its own, all are in {TOP_EXAMPLES})")
        where = "" if boxes is None else ", the receptive field of its strongest position framed and cropped"
        entries.append(_entry(f"{FOLDER}/{rel}", f"{name}: the {k} {split} images with the highest "
                              f"mean activation of each {unit} (rows){where}{part}", "stats-top-examples",
                              name))
    draw_all(drawings)
    overview(list(stats), [float(s.active_fraction.mean()) for s in stats.values()],
             [int(s.dead.sum()) for s in stats.values()], [len(s.mean) for s in stats.values()],
             folder / figure_name("overview"))
    entries.append(_entry(figure_name(f"{FOLDER}/overview"), "all layers: activity and dead maps", "stats-overview", None))
    return entries


def write_comparison(names: tuple[str, str], first: dict[str, LayerStats],
                     second: dict[str, LayerStats], out: Path) -> tuple[list[dict], list[str]]:
    """Side-by-side table and figure of two models' layer statistics; notes on skipped layers."""
    shared, notes = [], []
    for name, a in first.items():
        b = second.get(name)
        if b is None or b.shape != a.shape:
            notes.append(f"{name}: skipped, " + ("absent from " + names[1] if b is None else
                                                 f"shape {a.shape} vs {b.shape}"))
        else:
            shared.append(name)
    notes += [f"{name}: skipped, absent from {names[0]}" for name in second if name not in first]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["layer", "maps", *(f"{k}_{m}" for k in ("mean", "active_fraction",
                                                             "image_active_fraction", "dead")
                                         for m in ("a", "b"))])
    for name in shared:
        a, b = first[name], second[name]
        writer.writerow([name, len(a.mean)] + [v for pair in (
            (a.mean.mean(), b.mean.mean()), (a.active_fraction.mean(), b.active_fraction.mean()),
            (a.image_active_fraction.mean(), b.image_active_fraction.mean()),
            (int(a.dead.sum()), int(b.dead.sum()))) for v in pair])
    folder = out / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"compare-{names[1]}"
    write_text(folder / f"{stem}.csv", buf.getvalue())
    comparison(shared, names, ([first[n].active_fraction.mean() for n in shared],
                               [second[n].active_fraction.mean() for n in shared]),
               ([first[n].dead.mean() for n in shared], [second[n].dead.mean() for n in shared]),
               folder / figure_name(f"{stem}"))
    caption = f"{names[0]} (a) vs {names[1]} (b), layer by layer"
    return [_entry(f"{FOLDER}/{stem}.csv", caption, "stats-compare", None),
            _entry(figure_name(f"{FOLDER}/{stem}"), caption, "stats-compare", None)], notes


def _as_json(stats, weights, data: Dataset, split: str) -> dict:
    layers = {}
    for name, s in stats.items():
        w = weights[name]
        layers[name] = {
            "shape": list(s.shape), "images": s.images,
            "dead": int(s.dead.sum()), "always_on": int(s.always_on.sum()),
            "active_fraction": float(s.active_fraction.mean()),
            "maps": {k: v.tolist() for k, v in (
                ("mean", s.mean), ("std", s.std), ("max", s.max),
                ("active_fraction", s.active_fraction),
                ("image_active_fraction", s.image_active_fraction), ("dead", s.dead),
                ("always_on", s.always_on), ("preferred_class", s.preferred_class))},
            "class_mean": s.class_mean.tolist(), "class_counts": s.class_counts.tolist(),
            "top_index": s.top_index.tolist(),
            "weights": None if w is None else {"layer": w.layer, "per_filter": {
                k: v.tolist() for k, v in w.per_filter.items()}},
        }
    return {"dataset": data.name, "source": data.source, "split": split,
            "images": _n(stats), "layers": layers}


def _as_csv(stats, weights) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for name, s in stats.items():
        w = weights[name]
        for m in range(len(s.mean)):
            weight_cells = ([f"{w.per_filter[k][m]:.6g}" for k in
                             ("mean", "std", "min", "max", "l2", "near_zero")] if w else [""] * 6)
            writer.writerow([name, m, f"{s.mean[m]:.6g}", f"{s.std[m]:.6g}", f"{s.max[m]:.6g}",
                             f"{s.active_fraction[m]:.6g}", f"{s.image_active_fraction[m]:.6g}",
                             int(s.dead[m]), int(s.always_on[m]), int(s.preferred_class[m]),
                             *weight_cells])
    return buf.getvalue()


def _n(stats) -> int:
    return next(iter(stats.values())).images


def _entry(path: str, caption: str, kind: str, layer: str | None) -> dict:
    return entry(path, caption, kind, "stats", layer)
