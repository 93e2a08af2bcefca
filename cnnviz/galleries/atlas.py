"""`cnnviz atlas`: every gallery of a model in one run, one TensorFlow import, then the page.

The atlas is a list of stages (STAGES), each a recipe taking one AtlasJob and returning
manifest entries; `run_atlas` records each as it finishes and reports a line per stage.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager

import numpy as np

from cnnviz import bundle
from cnnviz.data import Dataset
from cnnviz.errors import UsageError
from cnnviz.galleries import activations, filters, kernels, stats
from cnnviz.checks import flag, whole
from cnnviz.galleries.activations import select_one_per_class
from cnnviz.galleries.filters import pattern_settings
from cnnviz.galleries.record import prepare, record
from cnnviz.graph import graph_of
from cnnviz.layers import activation_after, layers_for
from cnnviz.layout import CURVES, TRAIN
from cnnviz.manifest import entry
from cnnviz.model import LoadedModel, resolve_layers
from cnnviz.names import counted
from cnnviz.probes.patterns import PatternSettings, ascent_steps
from cnnviz.techniques import TECHNIQUES
from cnnviz.render.figures import training_curves
from cnnviz.render.parallel import drawing_behind, settled



def default_snapshots(steps: int) -> tuple[int, ...]:
    """Four steps to show a pattern's evolution: 0, about 10 % and 30 %, and the last."""
    return tuple(sorted({0, max(1, steps // 10), max(1, (3 * steps) // 10), steps}))


@dataclass
class AtlasJob:
    """What every stage of the atlas gets."""

    loaded: LoadedModel
    data: Dataset
    out: Path
    patterns: PatternSettings
    split: str = "test"
    limit: int | None = None
    top: int = 9
    say: Callable[[str], None] = lambda line: None
    chosen: "AtlasLayers | None" = None
    bar: Callable[[str, int], ContextManager[Callable[[int], None]]] | None = None

    def progress(self, label: str, length: int) -> ContextManager[Callable[[int], None]]:
        """A progress bar for a long stage (the CLI's), or one that shows nothing."""
        if self.bar is None:
            return contextlib.nullcontext(lambda n: None)
        return self.bar(label, length)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.loaded.classes(self.data.class_names)

    @property
    def layers(self) -> list[str]:
        return list(self.chosen.layers)


BIG_MODEL = 24   # probe-able layers above which the atlas picks layers (see atlas_layers)
BIG_MODEL_MAPS = 8  # patterns for at most this many maps of each picked layer


@dataclass(frozen=True)
class AtlasLayers:
    """Which layers each stage of the atlas covers."""

    layers: tuple[str, ...]    # activations and statistics
    patterns: tuple[str, ...]
    kernels: tuple[str, ...]
    pattern_maps: int | None = None  # the first N maps of each (None: all)
    note: str | None = None          # what was picked and why, for the user


def atlas_layers(model, spec: str | None = None) -> AtlasLayers:
    """The atlas's layers. A small model (≤ BIG_MODEL probe-able layers): every layer, with
    patterns for each convolution (or the activation layer it feeds through a BatchNorm).
    A big one: the last layer of each spatial resolution and the output, patterns for their
    first BIG_MODEL_MAPS maps, the first convolution's kernels; a line says so. `all`: every
    layer for every stage; a comma list: those layers for every stage that takes them."""
    every = layers_for(model, "activations")
    patternable, convolutions = layers_for(model, "patterns"), layers_for(model, "kernels")
    if spec is not None and spec.strip().lower() != "all":
        chosen = resolve_layers(model, spec)
        return AtlasLayers(tuple(chosen), tuple(n for n in chosen if n in patternable),
                           tuple(n for n in chosen if n in convolutions))
    if spec is not None or len(every) <= BIG_MODEL:
        patterns = every if spec is not None else list(dict.fromkeys(
            activation_after(model, c) or c for c in convolutions))
        return AtlasLayers(tuple(every), tuple(n for n in patterns if n in patternable),
                           tuple(convolutions))
    graph = graph_of(model)
    last_of = {}
    for name in every:
        shape = graph.shape(name)
        if len(shape) == 4:
            last_of[shape[1:3]] = name
    picked = [n for n in every if n in set(last_of.values())] + [graph.output_address]
    picked = list(dict.fromkeys(n for n in picked if n in every))
    note = (f"a big model ({len(every)} layers): the atlas takes the last layer of each "
            f"resolution and the output ({', '.join(picked)}), patterns for the first "
            f"{BIG_MODEL_MAPS} maps of each, kernels of {convolutions[0] if convolutions else 'none'}"
            "; layers=all takes everything")
    return AtlasLayers(tuple(picked), tuple(n for n in picked if n in patternable),
                       tuple(convolutions[:1]), BIG_MODEL_MAPS, note)


def curves(job: AtlasJob) -> list[dict]:
    """The bundle's training curves (drawn from history.csv); none for a plain .keras file."""
    folder = job.loaded.ref.bundle_dir
    history = bundle.read_history(folder) if folder is not None else {}
    if job.loaded.epoch is not None:  # a snapshot: the curves up to its epoch
        history = {k: v[:job.loaded.epoch] for k, v in history.items()}
    if not history:
        return []
    (job.out / TRAIN).mkdir(parents=True, exist_ok=True)
    training_curves(history, job.out / CURVES, f"{job.loaded.name}: accuracy and loss per epoch")
    epochs = len(next(iter(history.values())))
    return [entry(CURVES, f"training curves over {epochs} epochs (train and test split)",
                  "curves", "train")]


def class_samples(job: AtlasJob) -> list[dict]:
    """Every layer for the first image of each class: one images × maps figure per layer."""
    selection = select_one_per_class(job.data, job.split)
    options = activations.ActivationOptions(tuple(job.layers), job.classes, selection, "layer",
                                            save_arrays=True)
    return activations.run(job.loaded, options, job.out, job.say)


def all_patterns(job: AtlasJob) -> list[dict]:
    """Patterns (with arrays and evolution) for the chosen layers, a line per layer."""
    import numpy as np

    if not job.chosen.patterns:
        job.say("  no layer to optimise among those chosen (patterns need a layer with maps "
                "or units: see cnnviz.layers)")
    entries = []
    for layer in job.chosen.patterns:
        count = graph_of(job.loaded.model).shape(layer)[-1]
        maps = np.arange(count if job.chosen.pattern_maps is None
                         else min(count, job.chosen.pattern_maps))
        images = job.data.split(job.split)[0] if job.patterns.data_starts else None
        steps = ascent_steps(len(maps), job.patterns, graph_of(job.loaded.model).input_shape[1:],
                             images is not None)
        with job.progress(f"  {layer}", steps) as update:
            options = filters.PatternOptions(layer, job.patterns, maps, save_arrays=True,
                                             images=images, split=job.split)
            entries += filters.run(job.loaded, options, job.out,
                                   lambda line: job.say(f"  {line}"), update)
    return entries


def class_explanations(job: AtlasJob) -> list[dict]:
    """Why: every method's attributions for the first image of each class."""
    from cnnviz.galleries import explain
    from cnnviz.explain_methods import METHODS as REGISTERED
    from cnnviz.probes.attribution import METHODS, ExplainSettings, spatial_layer

    methods = METHODS
    try:
        spatial_layer(job.loaded.model)
    except UsageError:
        methods = tuple(m.name for m in REGISTERED if not m.spatial)
        job.say("  no layer with positions: no Grad-CAM")
    side = max(job.loaded.image_shape[:2])
    patch = max(1, round(side / 7))  # occlusion without overlap: 49 squares an image
    settings = ExplainSettings(methods=methods, steps=16, samples=8, patch=patch, stride=patch)
    options = explain.ExplainOptions(select_one_per_class(job.data, job.split), settings)
    return explain.run(job.loaded, options, job.out, lambda line: job.say(f"  {line}"))


def all_kernels(job: AtlasJob) -> list[dict]:
    if not job.chosen.kernels:
        job.say("  no convolution among the chosen layers: no kernels to draw")
    return kernels.run(job.loaded, kernels.KernelOptions(job.chosen.kernels), job.out, job.say)


def all_stats(job: AtlasJob) -> list[dict]:
    options = stats.StatsOptions(tuple(job.layers), job.data, job.split, job.limit, job.top)
    count = min(job.limit or len(job.data.split(job.split)[0]), len(job.data.split(job.split)[0]))
    with job.progress("  stats", count) as update:
        return stats.run(job.loaded, options, job.out, progress=update)


# What the atlas runs for each registered technique (cnnviz.techniques) that has a stage
def verification(job: AtlasJob) -> list[dict]:
    """The model against an independent NumPy forward pass, on the first VERIFY_IMAGES images
    of the split (at most `limit`): its line goes to the page's summary (a deviation is
    shown, not raised)."""
    from cnnviz.errors import CheckFailed
    from cnnviz.galleries import verify

    x = job.data.split(job.split)[0]
    options = verify.VerifyOptions(np.asarray(x[:min(job.limit or VERIFY_IMAGES, VERIFY_IMAGES)]),
                                   job.split)
    try:
        return verify.run(job.loaded, options, job.out, lambda line: None)
    except CheckFailed as exc:
        job.say(f"  {exc}")
        return exc.entries


def layer_geometry(job: AtlasJob) -> list[dict]:
    """Probes, PCA maps and CKA of the chosen layers over the first GEOMETRY_IMAGES images of
    each split."""
    from cnnviz.galleries import geometry

    options = geometry.GeometryOptions(tuple(job.layers), job.data, job.split,
                                       min(job.limit or GEOMETRY_IMAGES, GEOMETRY_IMAGES))
    return geometry.run(job.loaded, options, job.out, lambda line: job.say(f"  {line}"))


def over_training(job: AtlasJob) -> list[dict] | None:
    """The bundle over its training, when it was trained with snapshots (else None: the
    stage does not apply)."""
    from cnnviz.galleries import epochs

    options = epochs.epochs_options(job.loaded.ref.bundle_dir, list(job.chosen.kernels),
                                    lambda: job.data)
    if options is None or job.loaded.epoch is not None:
        return None
    return epochs.run(job.loaded, options, job.out, lambda line: job.say(f"  {line}"))


VERIFY_IMAGES = 100
GEOMETRY_IMAGES = 1000
STAGE_RUNS: dict[str, Callable[[AtlasJob], list[dict] | None]] = {
    "train": curves, "verify": verification, "activations": class_samples,
    "filters": all_patterns, "kernels": all_kernels, "stats": all_stats,
    "explain": class_explanations, "geometry": layer_geometry, "epochs": over_training}
# Stages with many figures to draw run early: a worker draws them while the patterns compute.
DRAW_EARLY = ("stats", "explain")
STAGES: list[tuple[str, Callable[[AtlasJob], list[dict] | None]]] = [
    (t.atlas, STAGE_RUNS[t.name]) for t in sorted(
        (t for t in TECHNIQUES if t.atlas is not None),
        key=lambda t: (t.section != "model", t.name not in DRAW_EARLY))]
assert set(STAGE_RUNS) == {t.name for t in TECHNIQUES if t.atlas}, "one stage per technique"


def atlas_settings(image_shape: tuple[int, ...] = (28, 28), steps: int = 50,
                   step_size: float = 0.5, scales=None, starts: int = 1, seed: int = 0,
                   pixel_starts: int = 2, data_starts: int = 2) -> PatternSettings:
    """The atlas's pattern settings: fewer starts than `filters` (8 per map: the time of the
    first atlas), and evolution snapshots at 0, ~10 %, ~30 % and the end."""
    steps = whole(steps, "steps", 1)
    return pattern_settings(image_shape, scales, steps=steps, step_size=step_size,
                            starts=starts, pixel_starts=pixel_starts, data_starts=data_starts,
                            snapshots=default_snapshots(steps), seed=seed)


def write_atlas(m, out: Path, ascent: dict, split: str, limit: int | None, top: int,
                report: Callable[[str], None], layers, explain: bool, dpi, format, strategy,
                progress) -> Path | None:  # noqa: A002
    """`Inspected.atlas`: check the request, then run the stages under the strategy into
    `out` (a worker that is not the chief writes a temporary copy: None is returned)."""
    from cnnviz import distributed
    from cnnviz.progress import bars
    from cnnviz.render.site import site_lines
    from cnnviz.render.style import figure_output

    top = whole(top, "top", 1)
    limit = None if limit is None else whole(limit, "limit", 1)
    dpi = None if dpi is None else whole(dpi, "dpi")  # its range: style.figure_output
    flag(explain, "explain")
    settings = atlas_settings(m.loaded.image_shape, **ascent)
    data = m.data()
    with distributed.sharing(strategy) as shared, figure_output(dpi, format), \
            distributed.writes_to(out, shared) as where:
        site = run_atlas(m.loaded, data, where, settings, split, limit, top, report, layers,
                         bar=bars(progress), skip=() if explain else ("explain",))
        for line in site_lines(site, where):  # to load's report: `report` gets the stages
            m.report(line)
    return site.index if where == out else None


def run_atlas(loaded: LoadedModel, data: Dataset, out: Path, settings: PatternSettings,
              split: str = "test", limit: int | None = None, top: int = 9,
              report: Callable[[str], None] | None = None, layers: str | None = None,
              bar: Callable[[str, int], ContextManager[Callable[[int], None]]] | None = None,
              skip: tuple[str, ...] = ()):
    """Every gallery of a model, each stage recorded as it finishes, then the page.

    `report` receives one line per stage (and per layer of patterns); `layers`: see
    atlas_layers; `bar(label, length)`: a progress bar for the long stages (a context
    manager giving update(n)). Returns the Site."""
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
    chosen = atlas_layers(loaded.model, layers)
    if chosen.note:
        say(f"note: {chosen.note}")
    prepare(out)
    job = AtlasJob(loaded, data, out, settings, split, limit, top, say, chosen, bar)
    with drawing_behind() as behind:  # figures drawn in a worker while the next stage computes
        waiting: list[tuple[list[dict], list]] = []
        for label, stage in [(label, stage) for label, stage in STAGES if label not in skip]:
            started = time.perf_counter()
            entries = stage(job)
            if entries is None:  # the stage does not apply to this model (no snapshots)
                continue
            waiting.append((entries, behind.take() if behind is not None else []))
            while waiting and settled(waiting[0][1], wait=False):  # in order, once drawn
                record(loaded, out, waiting.pop(0)[0])  # each stage kept if a later one fails
            say(f"{label}: {counted(len({e['path'] for e in entries}), 'file')} in "
                f"{time.perf_counter() - started:.1f} s")
        for entries, futures in waiting:
            settled(futures, wait=True)
            record(loaded, out, entries)
        return build_site(out)  # the worker writes some layers' map cards
