"""What the library returns: NumPy arrays with documented shapes, `.show()` (the matplotlib
Figure the gallery writes), Jupyter display (`_repr_png_`) and `.save(folder)`.

No TensorFlow here: results hold arrays only, computed by the probes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from cnnviz.errors import UsageError
from cnnviz.names import slug



from cnnviz.render.shown import Shown as _Shown
from cnnviz.render.shown import figure_name as _figure_name
from cnnviz.render.shown import figure_output_of as _figure_output
from cnnviz.render.shown import save_arrays as _save_arrays


@dataclass(repr=False)
class ActivationResult(Mapping, _Shown):
    """Every requested layer's output for N images: `result["conv2"]` is (N, h, w, maps) for
    a conv or pool layer and (N, units) for a dense one: exactly what the network computes.

    `pixels` (N, H, W[, C]) are the images in 0–255; `outputs` (N, classes) the network's output
    (probabilities when it ends in a softmax, else scores: `output_name` says which)."""

    layers: dict[str, np.ndarray]
    pixels: np.ndarray
    outputs: np.ndarray
    softmax: bool
    index: np.ndarray                 # (N,) dataset indices, -1 for images given as arrays
    labels: np.ndarray | None         # (N,) true labels when known
    class_names: tuple[str, ...]

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in self.layers.items())
        return f"<activations of {len(self.pixels)} image(s): {shapes}; {self.output_name}>"

    def __getitem__(self, layer: str) -> np.ndarray:
        try:
            return self.layers[layer]
        except KeyError:
            raise KeyError(f"{layer!r}: this result holds {', '.join(self.layers)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def output_name(self) -> str:
        return "probabilities" if self.softmax else "scores"

    @property
    def predicted(self) -> np.ndarray:
        """(N,) the predicted class of each image."""
        return self.outputs.argmax(axis=1)

    def show(self, image: int = 0, layer: str | None = None, scale: str = "map"):
        """The figure of one image and one layer (default: the first): the input with its
        prediction beside every map."""
        from cnnviz.render.activations import image_activation_figure

        layer = layer or next(iter(self.layers))
        if not 0 <= image < len(self.pixels):
            raise UsageError(f"image must be 0–{len(self.pixels) - 1}, got {image}", "image")
        return image_activation_figure(self[layer][image], self.pixels[image], layer,
                                       self._title(image), self._lines(image), scale, None)

    @_figure_output
    def save(self, folder: str | Path) -> list[Path]:
        """activations.npz (every array) and one PNG per image and layer."""
        from cnnviz.render.activations import image_activation_figure

        folder = Path(folder)
        written = [_save_arrays(folder / "activations.npz", pixels=self.pixels, index=self.index,
                                **{self.output_name: self.outputs},
                                **{f"layer_{slug(k)}": v for k, v in self.layers.items()})]
        for layer in self.layers:
            for i in range(len(self.pixels)):
                path = folder / _figure_name(f"{slug(layer)}-image-{i}")
                written.append(image_activation_figure(
                    self[layer][i], self.pixels[i], layer, self._title(i), self._lines(i), "map",
                    path))
        return written

    def _title(self, i: int) -> str:
        return f"test image {self.index[i]}" if self.index[i] >= 0 else f"image {i}"

    def _lines(self, i: int) -> list[str]:
        names = self.class_names
        order = np.argsort(-self.outputs[i])[:3]
        truth = names[self.labels[i]] if self.labels is not None else "?"
        top = "top-3: " if self.softmax else "top-3 scores (no softmax): "
        return [f"true {truth}, predicted {names[order[0]]}",
                top + ", ".join(f"{names[c]} {self.outputs[i, c]:.2f}" for c in order)]


@dataclass(repr=False)
class PatternResult(_Shown):
    """The input pattern that drives each map of a layer (or each objective) hardest.

    `pixels` (M, H, W) or (M, H, W, C) in 0–255 (valid images); `objective` (M,) the value
    each pattern reaches; `maps` (M,); `all_objectives` (M, starts) every start's result;
    `reference` (M,) the best dataset image's value (None without data); `ratio` the two
    divided; `curve` (M, checks) the objective over `curve_steps`; `flags` name → (M,)
    booleans; `diverse` (M, K, H, W[, C]) with diversity; `report` one line."""

    layer: str
    maps: np.ndarray
    pixels: np.ndarray
    objective: np.ndarray
    all_objectives: np.ndarray
    predicted: np.ndarray
    seconds: float
    class_names: tuple[str, ...] = field(default=tuple(str(d) for d in range(10)))
    objectives: tuple[str, ...] = ()
    reference: np.ndarray | None = None
    curve: np.ndarray | None = None
    curve_steps: np.ndarray | None = None
    flags: dict[str, np.ndarray] = field(default_factory=dict)
    diverse: np.ndarray | None = None
    summary: str = ""

    def __repr__(self) -> str:
        return f"<patterns {self.report}>"

    @property
    def ratio(self) -> np.ndarray | None:
        if self.reference is None:
            return None
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.reference > 0, self.objective / self.reference, np.nan)

    @property
    def report(self) -> str:
        return f"{self.summary or self.layer}, {self.seconds:.1f} s"

    def show(self):
        """The gallery figure: every pattern, labelled name: value (× best image) → class."""
        from cnnviz.render.patterns import image_grid, pattern_gallery

        names = self.objectives if len(self.objectives) == len(self.maps) and self.layer == "objectives" \
            else [str(m) for m in self.maps]
        if self.diverse is not None:
            return image_grid(self.diverse, names, [f"#{k + 1}" for k in range(self.diverse.shape[1])],
                              f"{self.layer}: patterns that must differ", None)
        ratio = self.ratio if self.ratio is not None else np.full(len(self.maps), np.nan)
        labels = [(f"{n} ×{r:.2g}" if np.isfinite(r) else f"{n}: {o:.3g}")
                  + f" → {self.class_names[p] if p < len(self.class_names) else p}"
                  for n, o, r, p in zip(names, self.objective, ratio, self.predicted)]
        return pattern_gallery(self.pixels, labels, f"{self.layer}: best input pattern per map",
                               None)

    @_figure_output
    def save(self, folder: str | Path) -> list[Path]:
        from cnnviz.render.figures import save_figure

        folder = Path(folder)
        extra = {} if self.reference is None else {"reference": self.reference}
        arrays = _save_arrays(folder / f"patterns-{slug(self.layer)}.npz", maps=self.maps,
                              pixels=self.pixels, objective=self.objective,
                              all_objectives=self.all_objectives, predicted=self.predicted,
                              **extra)
        return [arrays, save_figure(self.show(), folder / _figure_name(f"patterns-{slug(self.layer)}"),
                                    tight=True)]


@dataclass(repr=False)
class KernelResult(_Shown):
    """A conv layer's kernels: `weights` (kh, kw, in channels, maps), `bias` (maps,) or None."""

    layer: str
    weights: np.ndarray
    bias: np.ndarray | None

    def __repr__(self) -> str:
        return f"<kernels of {self.layer}: {tuple(self.weights.shape)}>"

    def show(self):
        from cnnviz.render.patterns import kernel_gallery

        return kernel_gallery(self.weights, self.layer, None)

    @_figure_output
    def save(self, folder: str | Path) -> list[Path]:
        from cnnviz.render.figures import save_figure

        folder = Path(folder)
        extra = {} if self.bias is None else {"bias": self.bias}
        return [_save_arrays(folder / f"kernels-{slug(self.layer)}.npz", kernels=self.weights,
                             **extra),
                save_figure(self.show(), folder / _figure_name(f"kernels-{slug(self.layer)}"), tight=True)]


@dataclass(repr=False)
class StatsResult(Mapping, _Shown):
    """Statistics of every layer over a split: `result["conv2"]` is a LayerStats with `mean`,
    `std`, `max`, `active_fraction`, `dead`, `always_on` (maps,), `class_mean` (classes, maps),
    `top_index` / `top_score` (maps, k) of the top-k images."""

    layers: dict
    split: str
    images: int

    def __repr__(self) -> str:
        return f"<statistics of {', '.join(self.layers)} over {self.images:,} {self.split} images>"

    def __getitem__(self, layer: str):
        return self.layers[layer]

    def __iter__(self) -> Iterator[str]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def show(self):
        """The overview figure: share of active values and dead maps per layer."""
        from cnnviz.render.stats import overview

        return overview(list(self.layers), [float(s.active_fraction.mean()) for s in self.layers.values()],
                        [int(s.dead.sum()) for s in self.layers.values()],
                        [len(s.mean) for s in self.layers.values()], None)

    @_figure_output
    def save(self, folder: str | Path) -> list[Path]:
        from cnnviz.render.figures import save_figure

        folder = Path(folder)
        arrays = {f"{slug(layer)}_{key}": getattr(s, key) for layer, s in self.layers.items()
                  for key in ("mean", "std", "max", "active_fraction", "dead", "always_on",
                              "class_mean", "top_index", "top_score")}
        return [_save_arrays(folder / "stats.npz", **arrays),
                save_figure(self.show(), folder / _figure_name("overview"))]


@dataclass(repr=False)
class ExplanationResult(_Shown):
    """Why each prediction: `maps` method → (N, H, W) attributions of the `targets` class
    logit (before the softmax); `logits` (N, K); `pixels` the images; `notes` what each
    method used; `completeness` (N,) integrated gradients' Σ attributions − (f(x) − f(baseline))."""

    maps: dict[str, np.ndarray]
    pixels: np.ndarray
    logits: np.ndarray
    targets: np.ndarray
    notes: dict[str, str]
    completeness: np.ndarray | None
    class_names: tuple[str, ...]

    def __repr__(self) -> str:
        return f"<explanations of {len(self.targets)} image(s) by {', '.join(self.maps)}>"

    def show(self, image: int = 0):
        """One image's figure: the input, its top 3, every method alone and over the image."""
        from cnnviz.render.explain import explanation_figure

        names = self.class_names
        order = np.argsort(-self.logits[image])[:3]
        lines = [f"target: {names[self.targets[image]] if self.targets[image] < len(names) else self.targets[image]}",
                 *(f"logit {names[c] if c < len(names) else c}: {self.logits[image, c]:.2f}" for c in order)]
        return explanation_figure(np.asarray(self.pixels[image], np.float32),
                                  {m: v[image] for m, v in self.maps.items()}, lines,
                                  "attributions of the class logit (before the softmax)",
                                  self.notes, None)

    @_figure_output
    def save(self, folder: str | Path) -> list[Path]:
        from cnnviz.render.figures import save_figure

        folder = Path(folder)
        arrays = _save_arrays(folder / "attributions.npz", pixels=self.pixels, logits=self.logits,
                              targets=self.targets,
                              **{m.replace("-", "_"): v for m, v in self.maps.items()})
        return [arrays] + [save_figure(self.show(i), folder / _figure_name(f"explain-{i}"))
                           for i in range(len(self.targets))]


@dataclass(repr=False)
class SanityResult(_Shown):
    """The sanity checks: `report` (per method the randomisation correlations, deletion and
    insertion curves and areas, completeness, and pass/fail with the rules)."""

    report: dict

    def __repr__(self) -> str:
        return "<sanity checks\n" + self.table + ">"

    @property
    def table(self) -> str:
        rows = []
        for method, row in self.report["methods"].items():
            marks = [("pass" if row[k] else "FAIL") if k in row else "–" for k in
                     ("randomisation_passes", "deletion_passes", "insertion_passes",
                      "completeness_passes")]
            rows.append(f"{method:<22}" + "".join(f"{m:>14}" for m in marks))
        return "\n".join([f"{'method':<22}{'randomisation':>14}{'deletion':>14}{'insertion':>14}"
                          f"{'completeness':>14}", *rows])

    def show(self):
        from cnnviz.render.explain import sanity_figure

        return sanity_figure(self.report, None)

    @_figure_output
    def save(self, folder: str | Path) -> list[Path]:
        import json

        from cnnviz.render.figures import save_figure

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "check.json").write_text(json.dumps(self.report, indent=1), encoding="utf-8")
        return [folder / "check.json", save_figure(self.show(), folder / _figure_name("check"))]
