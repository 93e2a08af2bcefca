"""`cnnviz epochs`: a bundle over its training, from the snapshots `train(snapshots=K)`
recorded — for each convolution a Zeiler & Fergus–style grid (a few maps' kernel, output on
the probe image of their strongest class, top training image and pattern at each snapshot)
and one frame per snapshot (every map's kernel and output) for the page's slider; for every
layer its dead maps and mean output per epoch. Into outputs/NAME/epochs/."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from cnnviz import snapshots
from cnnviz.atomic import write_json
from cnnviz.data import Dataset
from cnnviz.errors import UsageError
from cnnviz.layers import choose_layers
from cnnviz.layout import EPOCHS
from cnnviz.manifest import entry
from cnnviz.model import LoadedModel
from cnnviz.names import slug
from cnnviz.render.style import figure_name
from cnnviz.render.training import activity_curves, epoch_frame, evolution_grid

FOLDER = EPOCHS
GRID_COLUMNS = 11  # snapshots in a grid (evenly spread, the first and last always)


@dataclass(frozen=True)
class EpochsOptions:
    bundle: Path
    epochs: tuple[int, ...]
    layers: tuple[str, ...]   # the convolutions drawn (grid and frames)
    data: Dataset


def request(m, layers=None) -> list[EpochsOptions]:
    """The part of `m.gallery("epochs", ...)`: the bundle's snapshots, for its convolutions
    (layers: default every one that was snapshot)."""
    chosen = choose_layers(m.model, layers, "kernels")
    options = epochs_options(m.loaded.ref.bundle_dir, chosen, m.data)
    if options is None:
        raise UsageError(f"{m.name} has no snapshots to show: train it with snapshots=K "
                         f"(e.g. cnnviz.train(name={m.loaded.ref.name!r}, snapshots=1))",
                         "snapshots")
    return [options]


def epochs_options(folder: Path | None, layers: list[str],
                   data: Callable[[], Dataset]) -> EpochsOptions | None:
    """Options for every snapshot of the bundle in `folder`, for those of `layers` that were
    snapshot (None: the bundle has no snapshots). data() gives the dataset."""
    found = tuple(snapshots.epochs(folder)) if folder is not None else ()
    if not found:
        return None
    planned = {str(n) for n in snapshots.read(folder, found[0], "plan/")["plan/conv_layers"]}
    return EpochsOptions(folder, found, tuple(n for n in layers if n in planned), data())


def spread_epochs(epochs: tuple[int, ...], count: int = GRID_COLUMNS) -> list[int]:
    """Up to `count` of the epochs, evenly spread, the first and the last included."""
    if len(epochs) <= count:
        return list(epochs)
    return [epochs[i] for i in np.unique(np.linspace(0, len(epochs) - 1, count).round().astype(int))]


def run(loaded: LoadedModel, options: EpochsOptions, out: Path,
        report: Callable[[str], None] | None = None,
        progress: Callable[[int], None] | None = None) -> list[dict]:
    """The recipe: reads each snapshot once, then draws."""
    say = report or (lambda line: None)
    starts = np.cumsum([0] + [len(layer.weights) for layer in loaded.model.layers])
    kernel_of = {layer.name: int(starts[i]) for i, layer in enumerate(loaded.model.layers)}
    series: dict[int, dict] = {}
    for epoch in options.epochs:
        arrays = snapshots.read(options.bundle, epoch)
        weights = snapshots.weights(arrays)
        series[epoch] = {
            "dead": {k: int(v) for k, v in snapshots.layer_part(arrays, "dead").items()},
            "mean": {k: float(v) for k, v in snapshots.layer_part(arrays, "mean").items()},
            "metrics": {k: float(v) for k, v in snapshots.layer_part(arrays, "metric").items()},
            "probe": {n: arrays[f"probe/{n}"].astype(np.float32) for n in options.layers},
            "top": {n: arrays[f"top/{n}"][:, 0] for n in options.layers},
            "pattern": {n: arrays.get(f"pattern/{n}") for n in options.layers},
            "kernel": {n: np.moveaxis(weights[kernel_of[n]].mean(axis=2), -1, 0)
                       for n in options.layers},
            "probe_index": arrays["plan/probe_index"]}
        if progress:
            progress(1)
    epochs = list(options.epochs)
    last = series[epochs[-1]]
    (out / FOLDER).mkdir(parents=True, exist_ok=True)
    write_json(out / FOLDER / "epochs.json", {
        "model": loaded.name, "epochs": epochs,
        "dead": {n: [series[e]["dead"][n] for e in epochs] for n in last["dead"]},
        "mean": {n: [series[e]["mean"][n] for e in epochs] for n in last["mean"]},
        "metrics": {e: series[e]["metrics"] for e in epochs}})
    entries = [entry(f"{FOLDER}/epochs.json", f"dead maps, mean output and metrics at each of "
                     f"{len(epochs)} snapshots", "epochs-numbers", FOLDER)]
    for name in last["dead"]:
        rel = figure_name(f"{FOLDER}/{slug(name)}/activity")
        (out / FOLDER / slug(name)).mkdir(parents=True, exist_ok=True)
        activity_curves(epochs, [series[e]["dead"][name] for e in epochs],
                        [series[e]["mean"][name] for e in epochs], _maps(loaded, name),
                        f"{name} over training: dead maps and mean output", out / rel)
        entries.append(entry(rel, f"{name}: dead maps (never above 0 on the training subset) "
                             "and mean output at each snapshot", "epochs-activity", FOLDER, name))
    x_train = options.data.split("train")[0]
    classes = loaded.classes(options.data.class_names)
    for name in options.layers:
        entries += _layer_figures(name, epochs, series, x_train, classes, out)
        say(f"{name}: {len(epochs)} snapshots, epochs {epochs[0]}–{epochs[-1]}")
    return entries


def _maps(loaded: LoadedModel, name: str) -> int:
    from cnnviz.graph import graph_of

    return int(graph_of(loaded.model).shape(name)[-1])


def _layer_figures(name: str, epochs: list[int], series: dict, x_train, classes,
                   out: Path) -> list[dict]:
    place, last = slug(name), series[epochs[-1]]
    probe_index = last["probe_index"]
    strength = last["probe"][name].mean(axis=(1, 2))  # (probe images, maps) at the end
    shown = spread_epochs(tuple(epochs))
    rows = []
    tracked = [] if last["pattern"][name] is None else range(len(last["pattern"][name]))
    for m in tracked:
        p = int(np.argmax(strength[:, m]))
        label = classes[p] if p < len(classes) else str(p)
        rows += [(f"{m}: kernel", [series[e]["kernel"][name][m] for e in shown]),
                 (f"{m}: on a {label}", [series[e]["probe"][name][p, ..., m] for e in shown]),
                 (f"{m}: top image", [x_train[int(series[e]["top"][name][m])] for e in shown]),
                 (f"{m}: pattern", [series[e]["pattern"][name][m] for e in shown])]
    found = []
    for i, m in enumerate(tracked):  # one map's rows: its card's "over training"
        rel = figure_name(f"{FOLDER}/{place}/map-{m:03d}")
        evolution_grid(shown, rows[4 * i:4 * i + 4], f"{name} map {m} over training", out / rel)
        found.append(entry(rel, f"{name} map {m} over training", "epochs-map", FOLDER, name,
                           map=int(m)))
    if rows:
        rel = figure_name(f"{FOLDER}/{place}/over-training")
        evolution_grid(shown, rows, f"{name} over training: maps {', '.join(map(str, tracked))}",
                       out / rel)
        found.append(entry(rel, f"{name}, maps {', '.join(map(str, tracked))} over training "
                           "(columns: epochs): kernel, output on the probe image of the map's "
                           "strongest class, top training image, pattern", "epochs-grid",
                           FOLDER, name))
    image = classes[0] if classes else "0"
    for e in epochs:
        rel = figure_name(f"{FOLDER}/{place}/epoch-{e:04d}")
        epoch_frame(series[e]["kernel"][name], series[e]["probe"][name][0],
                    f"{name} after epoch {e}", f"every map's output on test image "
                    f"{int(probe_index[0])} (a {image})", out / rel)
        found.append(entry(rel, f"{name} after epoch {e}: every map's kernel and output",
                           "epochs-frame", FOLDER, name, epoch=e))
    return found
