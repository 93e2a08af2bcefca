"""The opened model of the library: a keras.Model with how pixels become its input, its class
names and where its data comes from, and one method per technique.

    m = cnnviz.load("mnist-article2")
    m.activations([17, 3], layers="conv2")["conv2"]   # (2, 11, 11, 64)

Every method returns a result of cnnviz.results (arrays, `.show()`, `.save()`); errors are
cnnviz.errors exceptions naming the parameter; nothing is printed (progress is a callback).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from cnnviz.checks import brief, indices, path, whole
from cnnviz.data import Dataset, dataset_for
from cnnviz.graph import graph_of
from cnnviz.errors import UsageError
from cnnviz.layers import check_layers
from cnnviz.model import LoadedModel, resolve_layers
from cnnviz.progress import Progress, bars, progress_bar
from cnnviz.results import (ActivationResult, ExplanationResult, KernelResult, PatternResult,
                            SanityResult, StatsResult)


class Inspected:
    """A model opened by `cnnviz.load` (or returned by `cnnviz.train`)."""

    def __init__(self, loaded: LoadedModel, data: str | Path | Dataset | None = None,
                 dataset: str | None = None, resize: bool = True):
        """data: a dataset file or folder to read when first needed, or an opened Dataset."""
        self.loaded = loaded
        self._data_path = None if isinstance(data, Dataset) else data
        self._dataset = dataset
        self._resize = resize
        self._data: Dataset | None = data if isinstance(data, Dataset) else None

    def __repr__(self) -> str:
        return f"<cnnviz model {self.name!r}: {len(self.layers)} layers ({', '.join(self.layers)})>"

    @property
    def name(self) -> str:
        return self.loaded.name

    @property
    def model(self):
        """The keras.Model itself."""
        return self.loaded.model

    @property
    def layers(self) -> list[str]:
        """Probe-able layer names, in model order."""
        return resolve_layers(self.model, "all")

    @property
    def conv_layers(self) -> list[str]:
        from cnnviz.layers import layers_for

        return layers_for(self.model, "kernels")

    @property
    def classes(self) -> tuple[str, ...]:
        """The names of the model's output classes."""
        return self.loaded.classes(self._data.class_names if self._data is not None else None)

    @property
    def input(self) -> str:
        """What the network is fed, in words (e.g. "pixels / 255 (unit)")."""
        return self.loaded.preprocessing.describe()

    @property
    def run(self) -> dict:
        """The bundle's run.json ({} for a plain .keras file or model object)."""
        return self.loaded.run

    def data(self) -> Dataset:
        """The dataset the model was trained on (or the one given to `load`), read once."""
        if self._data is None:
            self._data = dataset_for(self.loaded, self._dataset, self._data_path, self._resize)
        return self._data

    def activations(self, images: int | Sequence[int] | np.ndarray = 0,
                    layers: str | Iterable[str] = "all", split: str = "test") -> ActivationResult:
        """What every map of the layers outputs for some images.

        images: dataset indices of `split` (an int or a list), or raw images (N, H, W) or
        (N, H, W, C) with pixels 0–255 in the model's input size. layers: a name, a list,
        "conv1,pool1", "features/conv2" or "all".
        """
        from cnnviz.probes.activations import activations

        names = self._layers(layers)
        pixels, index, labels = self._images(images, split)
        result = activations(self.model, names, self.loaded.preprocessing.apply(pixels))
        return ActivationResult(result.layers, pixels, result.probabilities, result.softmax,
                                index, labels, self.classes)

    def patterns(self, layer: str | None = None, maps: int | Iterable[int] | str | None = None,
                 objective=None, split: str = "test", scales: Sequence[int] | None = None,
                 progress: Progress = None, strategy=None, **settings) -> PatternResult:
        """The input pattern that drives each map hardest: gradient ascent from smooth
        noise, noise per pixel and each map's top images of `split` (`data_starts=0`: noise
        only, no comparison). maps: an index, a list, "0-15,31", or None for all.
        objective: instead of maps, an expression ('conv3:17 - 0.5*conv3:4'), an Objective,
        or a list of them. Other keywords are PatternSettings fields (steps, step_size,
        starts, pixel_starts, data_starts, diversity, recipe, seed, …). progress: a bar
        (tqdm.auto: a widget in a notebook) by default, False for none, or a callable
        progress(n) called as steps finish. strategy: a tf.distribute strategy or its name (see
        cnnviz.distributed): the maps are split across its replicas."""
        from cnnviz.probes.objectives import check_objective, parse_objectives
        from cnnviz.probes.patterns import (PatternSettings, ascent_steps, default_scales,
                                            optimal_patterns, parse_maps)

        scales = default_scales(self.loaded.image_shape) if scales is None else scales
        try:
            options = PatternSettings(scales=tuple(scales), **settings)
        except TypeError as exc:
            raise UsageError(f"patterns: {exc}", "settings") from None
        objectives = None
        if objective is not None:
            given = objective if isinstance(objective, (list, tuple)) else [objective]
            if not given:
                raise UsageError("objective: an empty list; give an expression or an Objective",
                                 "objective")
            objectives = []
            for o in given:
                if isinstance(o, str):
                    objectives += parse_objectives(o, self.model)
                else:
                    check_objective(self.model, o)
                    objectives.append(o)
            name, chosen = layer or "objectives", np.arange(len(objectives))
        else:
            (name,) = self._layers(layer if layer is not None else self.conv_layers[-1:], one=True)
            check_layers(self.model, [name], "patterns")
            chosen = self._maps(maps, graph_of(self.model).shape(name)[-1], parse_maps)
        images = self.data().split(split)[0] if options.data_starts else None
        steps = ascent_steps(len(chosen), options, graph_of(self.model).input_shape[1:],
                             images is not None)
        with progress_bar(progress, steps, f"{name} patterns") as update:
            found = optimal_patterns(self.model, name, chosen, self.loaded.preprocessing, options,
                                     update, images, objectives, strategy)
        best = found.best_inputs
        pixels = np.clip(self.loaded.preprocessing.invert(best), 0, 255)
        predicted = np.asarray(self.model.predict(best, verbose=0)).argmax(axis=1)
        diverse = None if found.diverse is None else np.clip(
            self.loaded.preprocessing.invert(found.diverse.reshape(-1, *best.shape[1:])), 0, 255
        ).reshape(*found.diverse.shape[:2], *pixels.shape[1:])
        return PatternResult(name, found.maps, pixels, found.best_objective, found.objective,
                             predicted, found.seconds, self.classes, found.objectives,
                             found.reference, found.curve, found.curve_steps, found.flags(),
                             diverse, found.summary(split))

    def explain(self, images: int | Sequence[int] | np.ndarray = 0, methods: str | Sequence[str] = "all",
                target: str | int = "predicted", split: str = "test", progress: Progress = None,
                **settings) -> ExplanationResult:
        """Why the network made each prediction: attribution maps of the target class's logit.
        images: as in `activations`; methods: "all", a name or a list (saliency,
        gradient-input, smoothgrad, integrated-gradients, grad-cam, grad-cam++, occlusion);
        target: "predicted", "true" or a class index; progress: as in `patterns`; other
        keywords are ExplainSettings fields (steps, samples, baseline, patch, stride, layer,
        batch_size)."""
        from cnnviz.probes.attribution import explain

        pixels, targets, options, mean = self._explain_inputs(images, methods, target, split, settings)
        with progress_bar(progress, len(pixels) * len(options.methods), "explain") as update:
            found = explain(self.model, self.loaded.preprocessing, pixels, targets, options, mean,
                            update)
        return ExplanationResult(found.maps, pixels, found.logits, found.targets, found.notes,
                                 found.completeness, self.classes)

    def sanity(self, images: int | Sequence[int] | np.ndarray = (0, 1, 2, 3), methods="all",
               target: str | int = "predicted", split: str = "test", **settings) -> SanityResult:
        """The sanity checks of every method on some images: cascading randomisation,
        deletion/insertion against a random order, integrated gradients' completeness."""
        from cnnviz.probes.sanity import sanity

        pixels, targets, options, _ = self._explain_inputs(images, methods, target, split, settings)
        return SanityResult(sanity(self.model, self.loaded.preprocessing, pixels, targets, options))

    def _explain_inputs(self, images, methods, target, split, settings):
        from cnnviz.probes.attribution import METHODS, ExplainSettings

        names = METHODS if methods == "all" else ((methods,) if isinstance(methods, str) else tuple(methods))
        try:
            options = ExplainSettings(methods=names, **settings)
        except TypeError as exc:
            raise UsageError(f"explain: {exc}", "settings") from None
        from cnnviz.probes.activations import activations
        from cnnviz.probes.attribution import resolve_targets

        pixels, _, labels = self._images(images, split)
        scores = activations(self.model, [], self.loaded.preprocessing.apply(pixels)).probabilities
        targets = resolve_targets(target, scores, labels)
        mean = None
        if options.baseline == "mean" and "integrated-gradients" in names:
            from cnnviz.probes.attribution import mean_image

            mean = mean_image(self.data().split("train")[0])
        return pixels, targets, options, mean

    def kernels(self, layer: str) -> KernelResult:
        """The kernels (kh, kw, in, maps) and bias of a conv layer."""
        from cnnviz.probes.kernels import conv_kernels

        (name,) = self._layers(layer, one=True)
        weights = conv_kernels(self.model, name)
        conv = graph_of(self.model).layer(name)
        bias = np.asarray(conv.bias, np.float32) if conv.use_bias else None
        bias = bias if bias is None or len(bias) == weights.shape[-1] else None
        return KernelResult(name, weights, bias)

    def stats(self, layers: str | Iterable[str] = "all", split: str = "test",
              limit: int | None = None, top: int = 9, batch_size: int = 500,
              strategy=None, progress: Progress = None) -> StatsResult:
        """Statistics of every map over a split (streamed in batches of `batch_size` per
        replica), with the top-k images of each map. strategy: a tf.distribute strategy or
        its name (see cnnviz.distributed): the images are shared out over its replicas."""
        from cnnviz.probes.stats import layer_stats

        limit = None if limit is None else whole(limit, "limit", 1)
        top, batch_size = whole(top, "top", 1), whole(batch_size, "batch_size", 1)
        names = self._layers(layers)
        x, y = self.data().split(split)
        x, y = x[:limit], y[:limit]
        if top > len(x):
            raise UsageError(f"top {top} is larger than the {len(x):,} images used", "top")
        with progress_bar(progress, len(x), "stats") as update:
            found = layer_stats(self.model, names, x, y, self.loaded.preprocessing, top=top,
                                batch_size=batch_size, classes=len(self.data().class_names),
                                progress=update, strategy=strategy)
        return StatsResult(found, split, len(x))

    def atlas(self, folder: str | Path | None = None, steps: int = 50, top: int = 9,
              split: str = "test", limit: int | None = None,
              report: Callable[[str], None] | None = None, layers: str | None = None,
              explain: bool = True, dpi: int | None = None, format: str | None = None,  # noqa: A002
              strategy=None, progress: Progress = None) -> Path | None:
        """Everything `cnnviz atlas` writes, into `folder` (default outputs/NAME); returns
        the page's path. `report` receives one line per stage. layers: None (every layer of
        a small model, a choice on a big one), "all", or a comma list. explain=False skips the
        why section. dpi, format (png, svg, pdf): how the figures are written. strategy: a
        tf.distribute strategy or its name (see cnnviz.distributed) for the statistics, the
        class means and the patterns; on a worker that is not the chief nothing is written
        (None is returned)."""
        from cnnviz import distributed
        from cnnviz.galleries.atlas import atlas_settings, run_atlas
        from cnnviz.probes.patterns import default_scales
        from cnnviz.render.style import figure_output

        out = path(folder, "folder", optional=True) or Path("outputs") / self.loaded.folder_name
        steps, top = whole(steps, "steps", 1), whole(top, "top", 1)
        limit = None if limit is None else whole(limit, "limit", 1)
        dpi = None if dpi is None else whole(dpi, "dpi")  # its range: style.figure_output
        settings = atlas_settings(steps, scales=default_scales(self.loaded.image_shape))
        with distributed.sharing(strategy) as shared, figure_output(dpi, format), \
                distributed.writes_to(out, shared) as where:
            site = run_atlas(self.loaded, self.data(), where, settings, split, limit, top, report,
                             layers, bar=bars(progress), skip=() if explain else ("explain",))
        return site.index if where == out else None

    # ---- helpers ---------------------------------------------------------------------

    def _layers(self, layers: str | Iterable[str], one: bool = False) -> list[str]:
        given = [layers] if isinstance(layers, str) else list(layers) if np.iterable(layers) else None
        if not given or not all(isinstance(name, str) and name.strip() for name in given):
            raise UsageError(f"layers must be a layer's name, a list of names or \"all\", got "
                             f"{layers!r}; valid: {', '.join(self.layers)}", "layers")
        spec = ",".join(given)
        try:
            names = resolve_layers(self.model, spec)
        except UsageError as exc:
            raise UsageError(f"layers: {exc}", "layers") from None
        if one and len(names) != 1:
            raise UsageError(f"layer: give one layer name, got {layers!r}; valid: "
                             f"{', '.join(self.layers)}", "layer")
        return names

    def _images(self, images, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(pixels (N, H, W[, C]), dataset indices or -1, labels or None)."""
        try:
            array = np.asarray(images)
        except ValueError:  # ragged nesting
            array = np.asarray(None)
        if array.dtype.kind not in "iuf" or array.size == 0:
            raise UsageError(f"images must be dataset indices (an int or a list) or raw images "
                             f"(N, H, W[, C]) with N ≥ 1, got {brief(images)}", "images")
        shape = self.loaded.image_shape
        if array.ndim >= 2:  # raw images
            if array.ndim == len(shape) + 2 and array.shape[-1] == 1:
                array = array[..., 0]
            if array.ndim == len(shape):
                array = array[np.newaxis]
            if array.shape[1:] != shape:
                side = "x".join(map(str, shape))
                raise UsageError(f"images: raw images must be (N, {', '.join(map(str, shape))})"
                                 f" for this model's {side} input, got {np.asarray(images).shape}",
                                 "images")
            if not np.isfinite(array).all() or array.min() < 0 or array.max() > 255:
                raise UsageError("images: raw pixels must be finite and within 0–255", "images")
            return array.astype(np.float32), np.full(len(array), -1), None
        index = indices(array, "images")
        x, y = self.data().split(split)
        bad = [int(i) for i in index if not 0 <= i < len(x)]
        if bad or len(index) == 0:
            raise UsageError(f"images: index {bad[0] if bad else 'none'} out of range; the "
                             f"{split} split has images 0–{len(x) - 1}", "images")
        return np.asarray(x[index]), index, y[index]

    @staticmethod
    def _maps(maps, count: int, parse) -> np.ndarray:
        if maps is None or isinstance(maps, str):
            return parse(maps, count)
        chosen = indices(list(maps) if np.iterable(maps) else maps, "maps")
        return parse(",".join(str(m) for m in chosen), count)
