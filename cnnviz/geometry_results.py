"""The result of `m.geometry()`: how each layer sees a dataset (probe accuracy per layer,
the images' PCA coordinates per layer, the CKA matrix between the layers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from cnnviz.atomic import write_json
from cnnviz.render.shown import Shown, figure_name, figure_output_of, save_arrays


@dataclass(repr=False)
class GeometryResult(Shown):
    """`probe` {layer: held-out accuracy}, `chance`, `model_accuracy`, `coords` {layer:
    (N, 2)} made by `embedding`, `labels` (N,), `cka` (L, L) with `layers` on both axes,
    `features` {layer: what its features are}, `axes`/`means` {layer: the first two
    principal axes and the features' mean}; `place(images)` puts new images on those axes."""

    geometry: object
    classes: tuple[str, ...]
    model: str
    split: str
    placing: Callable | None = field(default=None, compare=False)
    pixels: np.ndarray | None = field(default=None, compare=False)  # the images, for thumbnails
    thumbnails: bool = False  # save() draws the thumbnails figure too

    def __repr__(self) -> str:
        best = max(self.probe, key=self.probe.get)
        return (f"<geometry of {self.model}: {len(self.layers)} layers over "
                f"{len(self.labels):,} {self.split} images; best probe {best} "
                f"{self.probe[best]:.3f}>")

    def __getattr__(self, name):
        if name in ("layers", "probe", "chance", "cka", "coords", "labels", "features",
                    "model_accuracy", "explained", "train_images", "embedding", "axes",
                    "means"):
            return getattr(self.geometry, name)
        raise AttributeError(name)

    def place(self, images, split: str = "test") -> dict[str, np.ndarray]:
        """{layer: (N, 2)}: where images (dataset indices of `split`, or raw pixels (N, H,
        W[, C]) / one image) land on each layer's first two principal axes — the PCA map's
        coordinates, whatever `embedding` drew."""
        if self.placing is None:
            raise AttributeError("place needs the model: make the result with m.geometry()")
        return self.placing(images, split)

    def numbers(self) -> dict:
        g = self.geometry
        return {"model": self.model, "split": self.split, "images": int(len(g.labels)),
                "train_images": g.train_images, "chance": g.chance, "embedding": g.embedding,
                "model_accuracy": g.model_accuracy, "probe": g.probe, "features": g.features,
                "explained_variance": {k: list(v) for k, v in g.explained.items()},
                "layers": g.layers, "cka": np.round(g.cka, 6).tolist()}

    def show(self, which: str = "probe"):
        """which: probe (the curve), embeddings (a panel per layer: a dot per image),
        thumbnails (the same maps with images drawn at their places) or cka (the matrix)."""
        from cnnviz.render.geometry import (cka_heatmap, embedding_panels, probe_curve,
                                            thumbnail_panels)

        g = self.geometry
        if which == "thumbnails":
            if self.pixels is None:
                raise ValueError("no images kept for thumbnails: make the result with m.geometry()")
            return thumbnail_panels(g.coords, g.labels, self.pixels[:len(g.labels)], self.classes,
                                    f"{self.model}: {self.split} images at their places in each "
                                    "layer's map (a spread of them; grey dots: the others)",
                                    g.embedding)
        if which == "embeddings":
            from cnnviz.probes.embedding import EMBEDDINGS

            return embedding_panels(g.coords, g.labels, self.classes, g.explained, g.features,
                                    f"{self.model}: the {len(g.labels):,} {self.split} images "
                                    f"on each layer's map ({EMBEDDINGS[g.embedding][2]})",
                                    g.embedding)
        if which == "cka":
            return cka_heatmap(g.cka, g.layers, g.layers, f"{self.model}: linear CKA between "
                               f"its layers ({len(g.labels):,} {self.split} images)")
        return probe_curve(g.layers, [g.probe[n] for n in g.layers], g.chance, g.model_accuracy,
                           f"{self.model}: a linear probe per layer ({g.train_images:,} images "
                           f"to fit, {len(g.labels):,} {self.split} to score)")

    @figure_output_of
    def save(self, folder: str | Path) -> list[Path]:
        from cnnviz.render.figures import save_figure

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / "geometry.json", self.numbers())
        g = self.geometry
        arrays = save_arrays(folder / "geometry.npz", labels=g.labels, cka=g.cka,
                             **{f"coords_{n}": c for n, c in g.coords.items()},
                             **{f"axes_{n}": a for n, a in g.axes.items()},
                             **{f"mean_{n}": a for n, a in g.means.items()})
        return [folder / "geometry.json", arrays] + [
            save_figure(self.show(which), folder / figure_name(which))
            for which in ("probe", "embeddings", "cka") + ("thumbnails",) * self.thumbnails]
