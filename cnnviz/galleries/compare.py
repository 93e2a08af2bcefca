"""`cnnviz compare A B`: similarity of two models' maps, their matching, and the baseline."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from cnnviz.render.style import figure_name
from cnnviz.atomic import atomic_path, write_json
from cnnviz.data import Dataset
from cnnviz.graph import graph_of
from cnnviz.errors import UsageError
from cnnviz.layers import layers_for
from cnnviz.layout import COMPARE, patterns_arrays
from cnnviz.manifest import entry
from cnnviz.names import slug
from cnnviz.model import LoadedModel
from cnnviz.probes.similarity import (Matching, class_profiles, functional_similarity,
                                      kernel_cosine, match, untrained_copy)
from cnnviz.render.compare import (class_profile_pairs, kernel_pairs, pattern_pairs,
                                   similarity_figure, summary_chart)

FOLDER = COMPARE


@dataclass
class Comparison:
    """Per layer: the matching of A to B, of A to an untrained copy, and (conv1) of kernels."""

    names: tuple[str, str]
    split: str
    images: int
    matchings: dict[str, Matching] = field(default_factory=dict)
    baselines: dict[str, Matching] = field(default_factory=dict)
    kernels: dict[str, Matching] = field(default_factory=dict)
    kernel_baselines: dict[str, Matching] = field(default_factory=dict)
    profiles: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    cka: np.ndarray | None = None  # (A layers, B layers): linear CKA between every pair
    cka_layers: tuple[list[str], list[str]] = ([], [])
    folder: Path | None = None   # where it was written (by compare_models)
    page: Path | None = None

    def summary(self) -> dict:
        """What summary.json holds and the command line's JSON summary prints."""
        found = {"a": self.names[0], "b": self.names[1], "split": self.split,
                 "images": self.images, "layers": self.numbers(), "skipped": self.skipped}
        if self.cka is not None:
            found["cka"] = {"a_layers": self.cka_layers[0], "b_layers": self.cka_layers[1],
                            "matrix": np.round(self.cka, 6).tolist()}
        return found

    def numbers(self) -> dict[str, dict[str, float]]:
        """The per-layer numbers of the JSON summary."""
        out = {}
        for layer, m in self.matchings.items():
            baseline = self.baselines[layer].summary()
            out[layer] = m.summary() | {
                "baseline_mean_similarity": baseline["mean_similarity"],
                "baseline_above_0_5": baseline["above_0_5"], "maps": len(m.partner)}
            if layer in self.kernels:
                out[layer]["kernel_mean_similarity"] = self.kernels[layer].summary()["mean_similarity"]
                out[layer]["baseline_kernel_mean_similarity"] = \
                    self.kernel_baselines[layer].summary()["mean_similarity"]
        return out


def compare_models(a, b, outputs_dir: Path, layers=None, split: str = "test",
                   limit: int | None = None) -> Comparison:
    """`cnnviz.compare`: two opened models compared over a split of A's data, written to
    OUTPUTS_DIR/compare-A-B/ (figures, summary.json, the page). Every request is checked
    before the folder is touched."""
    from cnnviz import distributed
    from cnnviz.checks import whole
    from cnnviz.galleries.record import prepare, record
    from cnnviz.render.site import build_page
    from cnnviz.layers import choose_layers

    if split not in ("test", "train"):
        raise UsageError(f"unknown split {split!r}; valid: test, train", "split")
    if limit is not None and whole(limit, "limit") < 2:
        raise UsageError(f"limit must be ≥ 2 (a correlation needs two images), got {limit}",
                         "limit")
    if not hasattr(b, "loaded"):
        raise UsageError(f"b must be a model opened by cnnviz.load, got {b!r}", "b")
    first, second = a.loaded, b.loaded
    chosen = choose_layers(first.model, layers, "activations", ",".join(default_layers(first.model)))
    data = a.data()
    comparable(first.model, second.model, chosen)  # refuse before any folder exists
    name = slug(f"compare-{first.folder_name}-{second.folder_name}")
    folder = outputs_dir / name
    with distributed.sharing(a.strategy) as shared, distributed.writes_to(folder, shared) as out:
        prepare(out)  # before the comparison, not after it
        result = compare(first, second, chosen, data, split, limit)
        for layer, why in result.skipped.items():
            a.note(f"{layer} skipped: {why}")
        entries = layer_cka(result, first, second, data.split(split)[0][:limit], out, chosen)
        entries += write_comparison(result, first, second, out,
                                   (outputs_dir / first.folder_name, outputs_dir / second.folder_name),
                                   data.class_names)
        record(first, out, entries, model=comparison_card(result, first, name))
        result.folder, result.page = out, build_page(out, a.report)
    return result


CKA_ALL_UP_TO = 24  # layers of a model: every one in the CKA matrix; above, the compared ones


def layer_cka(result: Comparison, first: LoadedModel, second: LoadedModel, x,
              out: Path, compared: list[str]) -> list[dict]:
    """Every layer of A against every layer of B (linear CKA, minibatch, over the images):
    do the two runs learn the same layers? The matrix goes into the summary and a figure.
    A big model (more than CKA_ALL_UP_TO layers) gives the compared layers only."""
    from cnnviz.probes.geometry import cka_between
    from cnnviz.render.geometry import cka_heatmap

    names = tuple(every if len(every) <= CKA_ALL_UP_TO else
                  [n for n in compared if n in every] for every in
                  (layers_for(m.model, "activations") for m in (first, second)))
    result.cka = cka_between((first.model, first.preprocessing),
                             (second.model, second.preprocessing), names, x)
    result.cka_layers = names
    (out / FOLDER).mkdir(parents=True, exist_ok=True)
    rel = figure_name(f"{FOLDER}/cka")
    title = (f"linear CKA: every layer of {first.name} (rows) against every layer of "
             f"{second.name} ({len(x):,} {result.split} images)")
    cka_heatmap(result.cka, names[0], names[1], title, out / rel)
    return [_entry(rel, title, "compare-cka", None)]


def default_layers(model: keras.Model) -> list[str]:
    """Conv layers and hidden dense layers (the output layer's order is fixed by the classes)."""
    return layers_for(model, "compare")


def comparable(first: keras.Model, second: keras.Model, layers: list[str]) -> tuple[list[str], dict[str, str]]:
    """The requested layers both models have with the same kind and output shape; why others are not."""
    ok, skipped = [], {}
    graph_a, graph_b = graph_of(first), graph_of(second)
    if graph_a.input_shape != graph_b.input_shape:
        raise UsageError(f"the two models take different inputs ({graph_a.input_shape[1:]} and "
                         f"{graph_b.input_shape[1:]}); compare needs one input shape")
    for name in layers:
        a = graph_a.layer(name)
        b = graph_b.layer(name) if name in graph_b.addresses else None
        shape_a, shape_b = graph_a.shape(name), b is not None and graph_b.shape(name)
        if b is None:
            skipped[name] = "not in the second model"
        elif type(a) is not type(b):
            skipped[name] = f"{type(a).__name__} in the first, {type(b).__name__} in the second"
        elif shape_a != shape_b:
            skipped[name] = (f"output {'x'.join(map(str, shape_a[1:]))} in the first, "
                             f"{'x'.join(map(str, shape_b[1:]))} in the second")
        else:
            ok.append(name)
    if not ok:
        raise UsageError("the two models share no comparable layer: "
                         + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    return ok, skipped


def compare(first: LoadedModel, second: LoadedModel, layers: list[str], data: Dataset,
            split: str, limit: int | None = None, seed: int = 12345) -> Comparison:
    """Correlate every map of A with every map of B over the split, match, and do the same
    against an untrained copy of A (fresh random weights) as the baseline."""
    shared, skipped = comparable(first.model, second.model, layers)
    x, y = data.split(split)
    x, y = x[:limit], y[:limit]
    untrained = untrained_copy(first.model, seed)
    found = functional_similarity((first.model, first.preprocessing),
                                  (second.model, second.preprocessing),
                                  (untrained, first.preprocessing), shared, x)
    result = Comparison((first.name, second.name), split, len(x), skipped=skipped)
    for layer in shared:
        dead_a, dead_b, dead_base = found.constant[layer]
        result.matchings[layer] = match(layer, found.pair[layer], (dead_a, dead_b))
        result.baselines[layer] = match(layer, found.baseline[layer], (dead_a, dead_base))
        result.profiles[layer] = tuple(class_profiles(m[layer], y) for m in found.means)
        ka, kb, k0 = (graph_of(m).layer(layer) for m in (first.model, second.model, untrained))
        if isinstance(ka, keras.layers.Conv2D) and ka.kernel.shape[2] == 1:
            mine = np.asarray(ka.kernel)
            result.kernels[layer] = match(layer, kernel_cosine(mine, np.asarray(kb.kernel)))
            result.kernel_baselines[layer] = match(layer, kernel_cosine(mine, np.asarray(k0.kernel)))
    return result


def write_comparison(result: Comparison, first: LoadedModel, second: LoadedModel, out: Path,
                     patterns_of: tuple[Path, Path], class_names: tuple[str, ...]) -> list[dict]:
    """Figures, numbers and arrays under out/compare/; returns manifest entries.

    `patterns_of`: the two models' gallery folders; where both hold a layer's pattern arrays
    (from `cnnviz filters --save-arrays` or `cnnviz atlas`), matched patterns are drawn too.
    """
    names, entries = result.names, []
    (out / FOLDER).mkdir(parents=True, exist_ok=True)
    numbers = result.numbers()
    write_json(out / FOLDER / "summary.json", result.summary())
    entries.append(_entry(f"{FOLDER}/summary.json", "per-layer numbers (JSON)", "compare-table", None))
    arrays = {f"{layer}_similarity": m.similarity for layer, m in result.matchings.items()}
    arrays |= {f"{layer}_partner": m.partner for layer, m in result.matchings.items()}
    arrays |= {f"{layer}_baseline_similarity": m.similarity for layer, m in result.baselines.items()}
    with atomic_path(out / FOLDER / "similarity.npz") as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    entries.append(_entry(f"{FOLDER}/similarity.npz", "similarity matrices, matched partners and "
                          "baseline matrices per layer", "arrays", None))
    rel = figure_name(f"{FOLDER}/summary")
    summary_chart(list(numbers), numbers, names, out / rel)
    entries.append(_entry(rel, f"per layer: how similar the matched maps of {names[0]} and "
                          f"{names[1]} are, against an untrained copy", "compare-summary", None))
    for layer, m in result.matchings.items():
        place = slug(layer)
        (out / FOLDER / place).mkdir(exist_ok=True)
        n = numbers[layer]
        rel = figure_name(f"{FOLDER}/{place}/similarity-{place}")
        similarity_figure(m.similarity, m.partner, names, layer, out / rel)
        entries.append(_entry(rel, f"{layer}: correlation of every map pair over {result.images:,} "
                               f"{result.split} images; matched mean {n['mean_similarity']:.2f} "
                               f"(untrained baseline {n['baseline_mean_similarity']:.2f})",
                               "compare-similarity", layer))
        rel = figure_name(f"{FOLDER}/{place}/class-means-{place}")
        class_profile_pairs(*result.profiles[layer], m.partner, names, class_names, layer, out / rel)
        entries.append(_entry(rel, f"{layer}: mean output per class of matched maps",
                              "compare-class-means", layer))
        if layer in result.kernels:
            k = result.kernels[layer]
            rel = figure_name(f"{FOLDER}/{place}/kernel-pairs-{place}")
            kernel_pairs(np.asarray(graph_of(first.model).layer(layer).kernel),
                         np.asarray(graph_of(second.model).layer(layer).kernel), k.partner, k.matched,
                         names, layer, out / rel)
            entries.append(_entry(rel, f"{layer}: kernels matched by cosine similarity (mean "
                                       f"{k.summary()['mean_similarity']:.2f})", "compare-kernels", layer))
        pair = [_patterns(folder_of, layer) for folder_of in patterns_of]
        if all(p is not None for p in pair) and len(pair[0]) == len(pair[1]) == len(m.partner):
            rel = figure_name(f"{FOLDER}/{place}/pattern-pairs-{place}")
            pattern_pairs(pair[0], pair[1], m.partner, m.matched, names, layer, out / rel)
            entries.append(_entry(rel, f"{layer}: best input patterns of matched maps",
                                  "compare-patterns", layer))
    return entries


def comparison_card(result: Comparison, first: LoadedModel, name: str) -> dict:
    """The manifest's model card of a comparison gallery: A's architecture, the numbers."""
    from cnnviz.galleries.summary import model_card

    lines = [f"{result.names[0]} against {result.names[1]} over {result.images:,} "
             f"{result.split} images; similarity = correlation of two maps' outputs over all "
             "positions of all images"]
    lines.append("two constant (dead) maps count as similarity 1, a constant map against a "
                 "varying one as 0; tied: maps whose partner could be swapped with another's "
                 "at the same total")
    lines += [f"{layer}: matched mean {n['mean_similarity']:.3f}, above 0.8 {n['above_0_8']:.0%}, "
              f"above 0.5 {n['above_0_5']:.0%}, same index {n['same_index']:.0%}; untrained "
              f"baseline {n['baseline_mean_similarity']:.3f}; constant maps {n['constant_a']} "
              f"in {result.names[0]}, {n['constant_b']} in {result.names[1]}; tied {n['tied']}"
              for layer, n in result.numbers().items()]
    return model_card(first) | {"name": name, "summary": lines}


def _patterns(gallery: Path, layer: str) -> np.ndarray | None:
    """Pixels of every map's best pattern from a gallery's saved arrays (all maps), if any."""
    path = gallery / patterns_arrays(layer)
    try:
        with np.load(path) as z:
            maps, pixels = z["maps"], z["pixels"]
    except (OSError, KeyError, ValueError):
        return None
    if not np.array_equal(maps, np.arange(len(maps))):
        return None
    return pixels


def _entry(path: str, caption: str, kind: str, layer: str | None) -> dict:
    return entry(path, caption, kind, "compare", layer)
