"""`cnnviz explain`: why the network made each prediction, drawn into outputs/NAME/explain/."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from cnnviz.render.style import figure_name
from cnnviz.atomic import atomic_path
from cnnviz.errors import UsageError
from cnnviz.explain_methods import BY_NAME
from cnnviz.galleries.activations import Selection, choose_images
from cnnviz.layers import check_layers
from cnnviz.layout import EXPLAIN
from cnnviz.manifest import entry
from cnnviz.model import LoadedModel
from cnnviz.probes.activations import activations
from cnnviz.probes.attribution import (METHODS, ExplainSettings, check_spatial, explain,
                                       mean_image, resolve_targets)
from cnnviz.render.explain import explanation_figure, sanity_figure
from cnnviz.render.parallel import draw_all

FOLDER = EXPLAIN
TARGETS = ("predicted", "true")


@dataclass(frozen=True)
class ExplainOptions:
    """Which images, which class to explain (predicted, true, or a class index), how."""

    selection: Selection
    settings: ExplainSettings
    target: str | int = "predicted"
    check: bool = False
    mean_pixels: np.ndarray | None = None


def request(m, images=None, digit=None, count=None, input=None,  # noqa: A002
            split: str = "test", methods="all", target: str | int = "predicted",
            check: bool = False, **settings) -> list[ExplainOptions]:
    """The part of `m.gallery("explain", ...)`: images as in activations (indices, the first
    `count` of class `digit`, or an image file), the methods ("all", a name, "a,b" or a
    list), the target (predicted, true or a class), with `check` the sanity checks; other
    keywords are ExplainSettings fields (steps, samples, baseline, patch, stride, layer,
    batch_size)."""
    if not isinstance(check, bool):
        raise UsageError(f"check must be True or False, got {check!r}", "check")
    options, target = explain_settings(m.model, methods, target, settings)
    selection = choose_images(m, images, digit, count, input, split)
    if target == "true" and selection.labels is None:
        raise UsageError("target=true needs dataset images (an image file has no label)", "target")
    return [ExplainOptions(selection, options, target, check, mean_baseline(m, options))]


def part(loaded: LoadedModel, options: ExplainOptions) -> tuple[str, str, int]:
    """The folder, and a progress bar over images × methods."""
    return FOLDER, "explain", len(options.selection.pixels) * len(options.settings.methods)


def explain_settings(model, methods="all", target: str | int = "predicted",
                     settings: dict | None = None) -> tuple[ExplainSettings, str | int]:
    """The one reading of an attribution request (explain, sanity, the atlas, the live
    page): methods "all", a name, "a,b" or a list; target predicted, true, a class index or
    its text; a Grad-CAM `layer` with positions."""
    if isinstance(methods, str):
        names = METHODS if methods.strip() == "all" else tuple(
            name.strip() for name in methods.split(",") if name.strip())
    else:
        names = tuple(methods) if np.iterable(methods) else methods
    if isinstance(target, str) and target not in TARGETS:
        try:
            target = int(target)
        except ValueError:
            raise UsageError(f"target {target!r}: use predicted, true or a class index",
                             "target") from None
    classes = model.outputs[0].shape[-1]
    if not isinstance(target, str) and (isinstance(target, bool) or not isinstance(
            target, (int, np.integer)) or not 0 <= target < classes):
        raise UsageError(f"target={target}: classes are 0–{classes - 1}, or predicted, true",
                         "target")
    try:
        options = ExplainSettings(methods=names, **(settings or {}))
    except TypeError as exc:
        raise UsageError(f"explain: {exc}", "settings") from None
    if options.layer is not None:
        if any(BY_NAME[name].spatial for name in options.methods):
            check_spatial(model, options.layer)  # a known layer, with positions
        else:
            check_layers(model, [options.layer], "activations")
    return options, target if isinstance(target, str) else int(target)


def mean_baseline(m, options: ExplainSettings) -> np.ndarray | None:
    """The training split's mean image, when integrated gradients start from it."""
    if options.baseline == "mean" and "integrated-gradients" in options.methods:
        return mean_image(m.data().split("train")[0])
    return None


def run(loaded: LoadedModel, options: ExplainOptions, out: Path,
        report: Callable[[str], None] | None = None,
        progress: Callable[[int], None] | None = None) -> list[dict]:
    """The recipe: attributions of every selected image, one figure each, the arrays, and
    with `check` the sanity checks (table, figure, JSON)."""
    say = report or (lambda line: None)
    selection, settings = options.selection, options.settings
    model, prep = loaded.model, loaded.preprocessing
    scores = activations(model, [], prep.apply(selection.pixels.astype(np.float32))).probabilities
    names = loaded.classes()
    targets = resolve_targets(options.target, scores, selection.labels)
    found = explain(model, prep, selection.pixels, targets, settings, options.mean_pixels)
    (out / FOLDER).mkdir(parents=True, exist_ok=True)
    entries, drawings = [], []
    for i in range(len(targets)):
        order = np.argsort(-scores[i])[:3]
        lines = [f"target: {_name(names, targets[i])} ({options.target})",
                 *(f"{_name(names, c)}: {scores[i, c]:.3f}" for c in order)]
        if selection.labels is not None:
            lines.insert(1, f"true: {_name(names, selection.labels[i])}")
        if found.completeness is not None:
            lines.append(f"IG completeness error {found.completeness[i]:+.3g}")
            lines.append(f"(of f(x)−f(baseline) {found.difference[i]:.3g})")
        rel = figure_name(f"{FOLDER}/explain-{selection.stem(i)}")
        title = (f"{selection.stem(i)}: why {_name(names, targets[i])}? Attributions of the class "
                 f"logit (before the softmax); red raises it, blue lowers it")
        drawings.append((explanation_figure, (
            np.asarray(selection.pixels[i], np.float32), {m: v[i] for m, v in found.maps.items()},
            lines, title, found.notes, out / rel)))
        entries.append(entry(rel, title, "explanation", "explain", None,
                             image=int(selection.index[i])))
    draw_all(drawings)
    rel = f"{FOLDER}/attributions-{selection.name}.npz"
    extra = {} if found.completeness is None else {"completeness_error": found.completeness,
                                                   "logit_difference": found.difference}
    with atomic_path(out / rel) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, pixels=selection.pixels, index=selection.index, targets=targets,
                 logits=found.logits, **{m.replace("-", "_"): v for m, v in found.maps.items()},
                 **extra)
    entries.append(entry(rel, f"raw attributions of {len(targets)} image(s), every method",
                         "arrays", "explain"))
    say(f"explained {len(targets)} image(s) with {', '.join(found.maps)}"
        + "".join(f"; {m}: {n}" for m, n in found.notes.items()))
    if options.check:
        entries += _check(loaded, selection, targets, settings, out, say)
    return entries


def _check(loaded, selection, targets, settings, out, say) -> list[dict]:
    from cnnviz.probes.sanity import sanity

    found = sanity(loaded.model, loaded.preprocessing, selection.pixels, targets, settings)
    say(f"sanity checks over {found['images']} image(s) (pass/fail; rules in check.json):")
    say(f"  {'method':<22}{'randomisation':>15}{'deletion':>10}{'insertion':>11}{'completeness':>14}")
    for method, row in found["methods"].items():
        complete = _mark(row["completeness_passes"]) if "completeness_passes" in row else "–"
        kept = f"{_mark(row['randomisation_passes'])} ({row['randomisation'][-1]:.2f})"
        say(f"  {method:<22}{kept:>15}{_mark(row['deletion_passes']):>10}"
            f"{_mark(row['insertion_passes']):>11}{complete:>14}")
    rel_json, rel_png = f"{FOLDER}/check.json", figure_name(f"{FOLDER}/check")
    with atomic_path(out / rel_json) as tmp:
        tmp.write_text(json.dumps(found, indent=1), encoding="utf-8")
    sanity_figure(found, out / rel_png)
    caption = "sanity checks: cascading randomisation and deletion against a random order"
    return [entry(rel_png, caption, "explain-check", "explain"),
            entry(rel_json, "sanity checks: values, rules and pass/fail per method", "report",
                  "explain")]


def _mark(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def _name(names, c) -> str:
    c = int(c)
    return names[c] if 0 <= c < len(names) else str(c)
