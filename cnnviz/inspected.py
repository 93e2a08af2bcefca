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

import warnings

import numpy as np

from cnnviz.checks import path
from cnnviz.data import Dataset, dataset_for
from cnnviz.graph import graph_of
from cnnviz.errors import CnnvizWarning, UsageError
from cnnviz.galleries.writing import Written
from cnnviz.layers import choose_layers, layers_for, resolve_layers
from cnnviz.model import LoadedModel
from cnnviz.progress import Progress, progress_bar
from cnnviz.results import (ActivationResult, ExplanationResult, KernelResult, PatternResult,
                            SanityResult, StatsResult)


class Inspected:
    """A model opened by `cnnviz.load` (or returned by `cnnviz.train`)."""

    def __init__(self, loaded: LoadedModel, data: str | Path | Dataset | None = None,
                 dataset: str | None = None, resize: bool = True,
                 report: Callable[[str], None] | None = None, strategy=None):
        """data: a dataset file or folder to read when first needed, or an opened Dataset.
        report: receives the lines a command prints (which data, notes); without it, notes
        are CnnvizWarnings. strategy: the tf.distribute strategy its probes share work over."""
        self.loaded = loaded
        self._data_path = None if isinstance(data, Dataset) else data
        self._dataset = dataset
        self._resize = resize
        self._data: Dataset | None = data if isinstance(data, Dataset) else None
        self._report = report
        self.strategy = strategy
        self.live_page = None  # cnnviz.train(serve=PORT): the live page following the run

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
            self.report(f"data: {self._data.describe()}")
            for note in self._data.notes:
                self.note(note)
        return self._data

    @property
    def sharing(self) -> str | None:
        """How the work is shared out (its tf.distribute strategy), when not on one device."""
        if self.strategy is None:
            return None
        from cnnviz import distributed

        if distributed.replicas(self.strategy) > 1 or distributed.workers(self.strategy) > 1:
            return distributed.describe(self.strategy)
        return None

    @property
    def data_named(self) -> bool:
        """Whether `load` was given data or a dataset (else the model's own is used)."""
        return self._data_path is not None or self._dataset is not None

    def report(self, line: str) -> None:
        """A line for the caller's `report` (the command line prints it); else nothing."""
        if self._report is not None:
            self._report(line)

    def note(self, text: str) -> None:
        """Something the user should know: a `note:` line to `report`, else a CnnvizWarning."""
        if self._report is not None:
            self._report(f"note: {text}")
        else:
            warnings.warn(CnnvizWarning(text), stacklevel=3)

    def info(self, outputs_dir: str | Path = "outputs") -> str:
        """Layers, shapes, parameters, receptive fields and run metadata, as text (what
        `cnnviz info` prints)."""
        from cnnviz.describe import info_lines

        return "\n".join(info_lines(self.loaded, self.gallery_dir(outputs_dir)))

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Each probe-able layer's output shape, without the batch axis."""
        graph = graph_of(self.model)
        return {name: tuple(graph.shape(name)[1:]) for name in self.layers}

    @property
    def digits(self) -> bool:
        """Whether the model takes MNIST digits (28×28 gray, trained on mnist; plain models
        of that size are taken to): drawings are then prepared as MNIST's digits were."""
        from cnnviz.model import digit_input

        return digit_input(self.loaded)

    @property
    def probabilities(self) -> bool:
        """Whether the model's output is probabilities (it ends in a softmax), not scores."""
        from cnnviz.probes.responses import ends_in_softmax

        graph = graph_of(self.model)
        return ends_in_softmax(graph.layer(graph.output_address))

    def sample(self, index: int | None = None, label: int | None = None,
               split: str = "test") -> tuple[np.ndarray, int, int]:
        """A dataset image by index, or the first (index: the index-th) of class `label`:
        (pixels, its index in the split, its label)."""
        from cnnviz.picking import sample

        return sample(self, index, label, split)

    def from_drawing(self, drawing: np.ndarray) -> np.ndarray:
        """A drawing (white ink on black, 0–255, gray, any size up to 1024 a side) → the
        model's input pixels: for a digit model prepared as MNIST's digits were
        (cnnviz.digits), else resized."""
        from cnnviz.picking import from_drawing

        return from_drawing(self, drawing)

    def one_image(self, pixels: np.ndarray) -> np.ndarray:
        """One raw image (H, W[, C], 0–255) checked against the model's input (a trailing 1
        channel may be left out): float32 pixels of the input's shape."""
        from cnnviz.picking import one_image

        return one_image(self, pixels)

    def gallery_dir(self, outputs_dir: str | Path = "outputs") -> Path:
        """Where this model's galleries go: OUTPUTS_DIR/NAME."""
        return path(outputs_dir, "outputs_dir") / self.loaded.folder_name

    def gallery(self, technique: str, folder: str | Path | None = None, progress: Progress = None,
                dpi: int | None = None, format: str | None = None,  # noqa: A002
                **parameters) -> Written:
        """Write a technique's gallery (what its command writes) into `folder` (default
        outputs/NAME), record it in the manifest and refresh the page when there is one.

            m.gallery("activations", layers="conv2", images=[17])
            m.gallery("filters", layers="conv3", maps="0-15", steps=100)
            m.gallery("kernels"); m.gallery("stats", limit=1000)
            m.gallery("explain", images=[0, 1], methods="saliency,grad-cam", check=True)

        parameters: those of the technique (cnnviz.galleries.<technique>.request). dpi,
        format (png, svg, pdf): how its figures are written. Returns what was written."""
        from cnnviz.galleries.writing import write

        out = path(folder, "folder", optional=True) or self.gallery_dir()
        return write(self, technique, out, parameters, progress, dpi, format)

    def activations(self, images: int | Sequence[int] | np.ndarray = 0,
                    layers: str | Iterable[str] = "all", split: str = "test") -> ActivationResult:
        """What every map of the layers outputs for some images.

        images: dataset indices of `split` (an int or a list), or raw images (N, H, W) or
        (N, H, W, C) with pixels 0–255 in the model's input size. layers: a name, a list,
        "conv1,pool1", "features/conv2" or "all".
        """
        from cnnviz.probes.activations import activations

        names = self._layers(layers)
        pixels, index, labels = self.images_of(images, split)
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
        from cnnviz.galleries.filters import (choose_maps, objective_request, pattern_settings,
                                              split_images)
        from cnnviz.probes.patterns import ascent_steps, optimal_patterns

        kind, objectives = objective_request(self.model, objective)
        options = pattern_settings(self.loaded.image_shape, scales, objective=kind, **settings)
        if objectives is not None:
            name, chosen = layer or "objectives", np.arange(len(objectives))
        else:
            default = self.conv_layers[-1:] or self.layers[-1:]
            (name,) = self._layers(layer if layer is not None else default, one=True,
                                   probe="patterns")
            chosen = choose_maps(maps, graph_of(self.model).shape(name)[-1])
        images = split_images(self, split) if options.data_starts else None
        steps = ascent_steps(len(chosen), options, graph_of(self.model).input_shape[1:],
                             images is not None)
        with progress_bar(progress, steps, f"{name} patterns") as update:
            found = optimal_patterns(self.model, name, chosen, self.loaded.preprocessing, options,
                                     update, images, objectives, strategy or self.strategy)
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
        from cnnviz.galleries.explain import explain_settings, mean_baseline
        from cnnviz.probes.activations import activations
        from cnnviz.probes.attribution import resolve_targets

        options, target = explain_settings(self.model, methods, target, settings)
        pixels, _, labels = self.images_of(images, split)
        scores = activations(self.model, [], self.loaded.preprocessing.apply(pixels)).probabilities
        return pixels, resolve_targets(target, scores, labels), options, mean_baseline(self, options)

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
        from cnnviz.galleries.stats import request
        from cnnviz.probes.stats import layer_stats

        (o,) = request(self, layers, split, limit, top, batch_size)  # the command's checks
        x, y = o.data.split(split)
        x, y = x[:o.limit], y[:o.limit]
        with progress_bar(progress, len(x), "stats") as update:
            found = layer_stats(self.model, list(o.layers), x, y, self.loaded.preprocessing,
                                top=o.top, batch_size=o.batch_size,
                                classes=len(o.data.class_names), progress=update,
                                strategy=strategy or self.strategy)
        return StatsResult(found, split, len(x))

    def atlas(self, folder: str | Path | None = None, steps: int = 50, top: int = 9,
              split: str = "test", limit: int | None = None,
              report: Callable[[str], None] | None = None, layers: str | None = None,
              explain: bool = True, dpi: int | None = None, format: str | None = None,  # noqa: A002
              strategy=None, progress: Progress = None, step_size: float = 0.5, scales=None,
              starts: int = 1, pixel_starts: int = 2, data_starts: int = 2,
              seed: int = 0) -> Path | None:
        """Everything `cnnviz atlas` writes, into `folder` (default outputs/NAME); returns
        the page's path. `report` receives one line per stage (default: the one given to
        `load`, which also receives where the page is). layers: None (every layer of a small model, a choice on a big one), "all",
        or a comma list. explain=False skips the why section. dpi, format (png, svg, pdf):
        how the figures are written. steps, step_size, scales, starts, pixel_starts,
        data_starts, seed: the patterns' ascent (fewer starts than `filters`). strategy: a
        tf.distribute strategy or its name (see cnnviz.distributed) for the statistics, the
        class means and the patterns; on a worker that is not the chief nothing is written
        (None is returned)."""
        from cnnviz.galleries.atlas import write_atlas

        out = path(folder, "folder", optional=True) or self.gallery_dir()
        return write_atlas(self, out, dict(steps=steps, step_size=step_size, scales=scales,
                                           starts=starts, seed=seed, pixel_starts=pixel_starts,
                                           data_starts=data_starts),
                           split, limit, top, report or self.report, layers, explain, dpi,
                           format, strategy or self.strategy, progress)

    def trace(self, image=0, layer: str | None = None, map: int = 0,  # noqa: A002
              at: tuple[int, int] | None = None, split: str = "test"):
        """The arithmetic of one value: map `map` of `layer` (default: the last
        convolution) at position `at` (row, column; none for a dense layer) for an image
        (a dataset index of `split`, or one raw image (H, W[, C]) 0–255). Every step that
        produces it, computed in float64 and checked against what Keras reports."""
        from cnnviz.galleries.trace import trace_request, traced

        return traced(self.loaded, trace_request(self, image, layer, map, at, split))

    def geometry(self, layers=None, split: str = "test", limit: int | None = None,
                 embedding: str = "pca", strategy=None):
        """How each layer sees the dataset: a linear probe's held-out accuracy (trained on
        the other split), each image's place in a 2-D map per layer (embedding: pca, tsne or
        umap) and linear CKA between the layers, over the first `limit` images of each split;
        `.place(images)` puts new images on the PCA axes. layers: None (every layer of a
        small model; of a big one, those the atlas takes), "all", a name or a list."""
        from cnnviz.galleries.geometry import computed, geometry_request

        return computed(self.loaded, geometry_request(self, layers, split, limit, embedding),
                        strategy or self.strategy, lambda images, s: self.images_of(images, s)[0])

    def verify(self, images=100, split: str = "test", tolerance: float = 1e-4,
               batch_size: int = 32, progress: Progress = None):
        """Every layer's output against an independent float64 NumPy forward pass (never
        TensorFlow), over the first `images` images of `split` (or raw images (N, H, W[, C])):
        the largest deviation per layer and a verdict; a layer the pass cannot compute is
        named and the check stops there."""
        from cnnviz.galleries.verify import verified, verify_request

        options = verify_request(self, images, split, tolerance, batch_size)
        with progress_bar(progress, len(options.pixels), "verify") as update:
            return verified(self.loaded, options, update)

    # ---- helpers ---------------------------------------------------------------------

    def _layers(self, layers: str | Iterable[str], one: bool = False,
                probe: str = "activations") -> list[str]:
        names = choose_layers(self.model, layers, probe)
        if one and len(names) != 1:
            raise UsageError(f"layer: give one layer name, got {layers!r}; valid: "
                             f"{', '.join(self.layers)}", "layer")
        return names

    def images_of(self, images, split: str = "test") -> tuple[np.ndarray, np.ndarray,
                                                              np.ndarray | None]:
        """Dataset indices of `split` or raw images (N, H, W[, C]) 0–255, checked: (pixels,
        dataset indices or -1, labels or None)."""
        from cnnviz.picking import images_of

        return images_of(self, images, split)
