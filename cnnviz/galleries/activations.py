"""`cnnviz activations`: choose images, one forward pass, figures, arrays, manifest entries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from cnnviz.render.style import figure_name
from cnnviz.atomic import atomic_path
from cnnviz.checks import indices, whole
from cnnviz.images import check_image_file
from cnnviz.layers import choose_layers
from cnnviz.data import Dataset, read_image
from cnnviz.errors import UsageError
from cnnviz.layout import ACTIVATIONS
from cnnviz.manifest import entry
from cnnviz.names import slug
from cnnviz.model import LoadedModel, digit_input
from cnnviz.probes.activations import activations, class_means
from cnnviz.render.activations import class_heatmap, image_activation_figure
from cnnviz.render.grid import grid_figure
from cnnviz.render.parallel import draw_all

FOLDER = ACTIVATIONS


@dataclass(frozen=True)
class Selection:
    """The images to probe, in pixel space, with where they came from."""

    name: str                 # file stem: test-image-00017, test-digit-4-first6, input-my_digit
    pixels: np.ndarray        # (N, 28, 28) uint8
    index: np.ndarray         # dataset indices, -1 for a file
    labels: np.ndarray | None  # true labels (None for a file)
    split: str | None
    digit: int | None = None
    rows: bool = False         # one images × maps figure per layer instead of one per image
    note: str | None = None    # e.g. which frame of an animation was taken

    def stem(self, i: int) -> str:
        """File stem of image i alone."""
        if self.index[i] < 0:
            return self.name
        return f"{self.split}-image-{self.index[i]:05d}"


def select_images(data: Dataset, split: str, images: list[int] | None = None,
                  digit: int | None = None, count: int = 6) -> Selection:
    """Images by dataset index, or the first `count` images of class `digit`, in dataset order."""
    x, y = data.split(split)
    if digit is not None:
        if not 0 <= digit < len(data.class_names):
            raise UsageError(f"digit {digit}: classes are 0–{len(data.class_names) - 1}", "digit")
        if count < 1:
            raise UsageError(f"count must be ≥ 1, got {count}", "count")
        found = np.flatnonzero(y == digit)
        if len(found) == 0:
            raise UsageError(f"digit {digit}: no image of class {digit} in the {split} split",
                             "digit")
        index = found[:count]
        return Selection(f"{split}-digit-{digit}-first{len(index)}", np.asarray(x[index]), index, y[index],
                         split, digit, rows=True)
    images = images if images else [0]
    bad = [i for i in images if not 0 <= i < len(x)]
    if bad:
        raise UsageError(f"image {bad[0]} out of range: the {split} split has {len(x):,} "
                         f"images (0–{len(x) - 1})", "image")
    index = np.asarray(images, dtype=np.int64)
    name = f"{split}-image-{index[0]:05d}" + (f"-and-{len(index) - 1}-more" if len(index) > 1 else "")
    return Selection(name, np.asarray(x[index]), index, y[index], split)


def select_one_per_class(data: Dataset, split: str) -> Selection:
    """The first image of every class present in the split, in class order."""
    x, y = data.split(split)
    index = np.array([np.flatnonzero(y == c)[0] for c in np.unique(y)], dtype=np.int64)
    return Selection(f"{split}-one-per-class", np.asarray(x[index]), index, y[index], split, rows=True)


def select_file(path: str | Path, image_shape: tuple[int, ...] = (28, 28),
                digit: bool = False) -> Selection:
    """One image file of the user's own, read as the model's input (see data.read_image)."""
    pixels, note = read_image(path, image_shape, digit)
    return Selection(f"input-{slug(Path(path).stem, unique=False)}", pixels[np.newaxis],
                     np.array([-1]), None, None, note=note)


@dataclass(frozen=True)
class ActivationOptions:
    """Which layers, for which images (a Selection, or none), and/or class means over a
    split of a dataset; how to scale the figures; whether to save the arrays."""

    layers: tuple[str, ...]
    classes: tuple[str, ...]
    selection: Selection | None = None
    scale: str = "map"
    save_arrays: bool = False
    class_means_of: Dataset | None = None
    split: str = "test"


def request(m, layers=None, images: int | Sequence[int] | None = None, digit: int | None = None,
            count: int | None = None, input: str | Path | None = None,  # noqa: A002
            split: str = "test", scale: str = "map", class_mean: bool = False,
            save_arrays: bool = False) -> list[ActivationOptions]:
    """The parts of `m.gallery("activations", ...)`: the layers for some images (by index,
    the first `count` of class `digit`, or an image file) and/or the class means."""
    if scale not in ("map", "layer"):
        raise UsageError(f"scale must be map or layer, got {scale!r}", "scale")
    for name, value in (("class_mean", class_mean), ("save_arrays", save_arrays)):
        if not isinstance(value, bool):
            raise UsageError(f"{name} must be True or False, got {value!r}", name)
    chosen = choose_layers(m.model, layers)
    wants_images = images is not None or digit is not None or input is not None or not class_mean
    selection = choose_images(m, images, digit, count, input, split) if wants_images else None
    data = m.data() if class_mean else None
    return [ActivationOptions(tuple(chosen), m.classes, selection, scale, save_arrays, data, split)]


def choose_images(m, images=None, digit=None, count=None, input=None,  # noqa: A002
                  split: str = "test") -> Selection:
    """The one reading of an image request (activations, explain): dataset indices, the
    first `count` images of class `digit`, or an image file; they exclude each other."""
    given = [name for name, value in (("images", images), ("digit", digit), ("input", input))
             if value is not None]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(n + '=' for n in given)} exclude each other: choose one "
                         "way to pick images", given[1])
    if count is not None and digit is None:
        raise UsageError("count= goes with digit= (how many images of that class)", "count")
    if input is not None:
        selection = select_file(check_image_file(input), m.loaded.image_shape,
                                digit_input(m.loaded))
        if selection.note:
            m.note(selection.note)
        return selection
    if split not in ("test", "train"):
        raise UsageError(f"split must be test or train, got {split!r}", "split")
    listed = None if images is None else [int(i) for i in indices(images, "images")]
    digit = None if digit is None else whole(digit, "digit")
    count = 6 if count is None else whole(count, "count")
    return select_images(m.data(), split, listed, digit, count)


def run(loaded: LoadedModel, options: ActivationOptions, out: Path,
        report: Callable[[str], None] | None = None,
        progress: Callable[[int], None] | None = None) -> list[dict]:
    """The recipe: figures (and arrays) for the selected images, then the class means."""
    layers, entries = list(options.layers), []
    if options.selection is not None:
        entries += write_image_activations(loaded, layers, options.selection, out, options.scale,
                                           options.save_arrays, options.classes)
    if options.class_means_of is not None:
        entries += write_class_means(loaded, layers, options.class_means_of, options.split, out,
                                     options.classes)
    return entries


def write_image_activations(loaded: LoadedModel, layers: list[str], selection: Selection,
                            out: Path, scale: str, save_arrays: bool,
                            class_names: tuple[str, ...]) -> list[dict]:
    """Figures (and optionally an .npz) of every layer for the selected images."""
    inputs = loaded.preprocessing.apply(selection.pixels)
    result = activations(loaded.model, layers, inputs)
    predicted = result.probabilities.argmax(axis=1)
    top_classes, top_probs = result.top(3)
    entries, drawings = [], []
    for layer in layers:
        place = slug(layer)
        folder = out / FOLDER / place
        folder.mkdir(parents=True, exist_ok=True)
        values = result.layers[layer]
        if selection.rows:
            rel = figure_name(f"{FOLDER}/{place}/{selection.name}-{place}")
            labels = [f"#{i} {class_names[t]} → {class_names[p]}"
                      for i, t, p in zip(selection.index, selection.labels, predicted)]
            across = "maps" if values.ndim == 4 else "units"
            title = (f"{layer}: {len(values)} {selection.split} images of class "
                     f"{class_names[selection.digit]} (rows) × {across}" if selection.digit is not None
                     else f"{layer}: the first {selection.split} image of each class (rows) × {across}")
            drawings.append((grid_figure, (values, labels, layer, title, scale, out / rel,
                                           selection.pixels)))
            entries.append(_entry(rel, title, "activations-by-image", layer,
                                  selection.index.tolist()))
            continue
        for i in range(len(values)):
            stem = selection.stem(i)
            rel = figure_name(f"{FOLDER}/{place}/{stem}-{place}")
            truth = class_names[selection.labels[i]] if selection.labels is not None else "?"
            lines = [f"true {truth}, predicted {class_names[predicted[i]]}",
                     ("top-3: " if result.softmax else "top-3 scores (no softmax): ")
                     + ", ".join(f"{class_names[c]} {p:.2f}"
                                 for c, p in zip(top_classes[i], top_probs[i]))]
            title = (f"{selection.split} image {selection.index[i]}" if selection.index[i] >= 0
                     else selection.name.removeprefix("input-") + " (your image)")
            drawings.append((image_activation_figure, (values[i], selection.pixels[i], layer,
                                                       title, lines, scale, out / rel)))
            entries.append(_entry(rel, f"{layer} for {title}: {lines[0]}", "activations",
                                  layer, int(selection.index[i])))
    draw_all(drawings)
    if save_arrays:
        rel = f"{FOLDER}/{selection.name}.npz"
        with atomic_path(out / rel) as tmp:
            with open(tmp, "wb") as handle:
                labels = selection.labels if selection.labels is not None else np.array([-1])
                np.savez(handle, input=inputs, index=selection.index, labels=labels,
                         pixels=selection.pixels, **{result.output_name: result.probabilities},
                         **result.layers)
        entries.append(_entry(rel, f"activation arrays of {', '.join(layers)} for "
                                   f"{selection.name}", "arrays", None, selection.index.tolist()))
    return entries


def write_class_means(loaded: LoadedModel, layers: list[str], data: Dataset, split: str,
                      out: Path, class_names: tuple[str, ...]) -> list[dict]:
    """Per layer: maps × classes heat map, and for spatial layers the mean maps per class."""
    x, y = data.split(split)
    means = class_means(loaded.model, layers, x, y, loaded.preprocessing,
                        classes=len(data.class_names))
    entries = []
    for layer in layers:
        place = slug(layer)
        (out / FOLDER / place).mkdir(parents=True, exist_ok=True)
        rel = figure_name(f"{FOLDER}/{place}/class-mean-{split}-heatmap-{place}")
        spatial = means.layers[layer].ndim == 4
        class_heatmap(means.per_map(layer), layer, out / rel, class_names,
                      "map" if spatial else "unit")
        entries.append(_entry(rel, f"{layer}: mean activation of every map per class over the "
                                   f"{len(x):,} {split} images", "class-mean-heatmap", layer, None))
        if spatial:
            rel = figure_name(f"{FOLDER}/{place}/class-mean-{split}-maps-{place}")
            title = f"{layer}: mean map per class ({split} split)"
            grid_figure(means.layers[layer], [f"{c} (n={n})" for c, n in
                                              zip(class_names, means.counts)],
                        layer, title, "map", out / rel)
            entries.append(_entry(rel, title, "class-mean-maps", layer, None))
    return entries


def _entry(path: str, caption: str, kind: str, layer: str | None, image) -> dict:
    return entry(path, caption, kind, "activations", layer, image=image)
