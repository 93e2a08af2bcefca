"""`cnnviz geometry`: how each layer sees the dataset — linear probes, PCA maps of the
images and CKA between the layers — into outputs/NAME/geometry/."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from cnnviz.checks import flag, whole
from cnnviz.data import Dataset
from cnnviz.errors import UsageError
from cnnviz.geometry_results import GeometryResult
from cnnviz.galleries.atlas import BIG_MODEL, atlas_layers
from cnnviz.layers import choose_layers
from cnnviz.layout import GEOMETRY
from cnnviz.manifest import entry
from cnnviz.model import LoadedModel
from cnnviz.probes.embedding import EMBEDDINGS, check_embedding
from cnnviz.probes.geometry import layer_geometry, place
from cnnviz.render.style import figure_name

FOLDER = GEOMETRY


@dataclass(frozen=True)
class GeometryOptions:
    layers: tuple[str, ...]
    data: Dataset
    split: str = "test"
    limit: int | None = None
    embedding: str = "pca"
    thumbnails: bool = False


def geometry_request(m, layers=None, split: str = "test", limit: int | None = None,
                     embedding: str = "pca", thumbnails: bool = False) -> GeometryOptions:
    """layers: default every layer; split: the images embedded, compared and scored on (the
    probe trains on the other split); limit: the first N images of each split; embedding:
    pca, tsne or umap (the last two need the optional extra cnnviz[embeddings]); thumbnails:
    also a figure with images drawn at their places."""
    if split not in ("test", "train"):
        raise UsageError(f"split must be test or train, got {split!r}", "split")
    check_embedding(embedding)
    limit = None if limit is None else whole(limit, "limit", 10)
    chosen = choose_layers(m.model, layers)
    if layers is None and len(chosen) > BIG_MODEL:  # each layer holds a features² matrix
        picked = atlas_layers(m.model)
        m.note(f"a big model ({len(chosen)} layers): geometry takes the layers the atlas "
               f"takes ({', '.join(picked.layers)}); layers='all' takes everything")
        chosen = list(picked.layers)
    data = m.data()
    images = min(len(data.split(split)[0]), limit or len(data.split(split)[0]))
    if embedding != "pca" and images < 10:
        raise UsageError(f"embedding={embedding} needs at least 10 {split} images, the data "
                         f"has {images}", "embedding")
    return GeometryOptions(tuple(chosen), data, split, limit, embedding,
                           flag(thumbnails, "thumbnails"))


def request(m, layers=None, split="test", limit=None, embedding="pca",
            thumbnails=False) -> list[GeometryOptions]:
    """The part of `m.gallery("geometry", ...)`."""
    return [geometry_request(m, layers, split, limit, embedding, thumbnails)]


def computed(loaded: LoadedModel, options: GeometryOptions, strategy=None,
             pick: Callable | None = None) -> GeometryResult:
    """The numbers, the forward passes shared over `strategy` (default: the active one).
    pick(images, split) → pixels makes the result's `place` (Inspected.geometry gives it)."""
    other = "train" if options.split == "test" else "test"
    (x_fit, y_fit), (x, y) = options.data.split(other), options.data.split(options.split)
    n = options.limit
    found = layer_geometry(loaded.model, list(options.layers), x_fit[:n], y_fit[:n], x[:n], y[:n],
                           loaded.preprocessing, len(options.data.class_names),
                           embedding=options.embedding, strategy=strategy)

    def placing(images, split):
        return place(loaded.model, found, pick(images, split), loaded.preprocessing, strategy)

    return GeometryResult(found, loaded.classes(options.data.class_names), loaded.name,
                          options.split, placing if pick else None, x, options.thumbnails)


def run(loaded: LoadedModel, options: GeometryOptions, out: Path,
        report: Callable[[str], None] | None = None,
        progress: Callable[[int], None] | None = None) -> list[dict]:
    """The recipe: the numbers (JSON), the coordinates and CKA (.npz), three figures."""
    say = report or (lambda line: None)
    result = computed(loaded, options)
    result.save(out / FOLDER)
    for name in result.layers:
        say(f"{name:<12} probe {result.probe[name]:.3f}  ({result.features[name]})")
    say(f"chance {result.chance:.3f}; the network {result.model_accuracy:.3f}")
    caption = f"over {len(result.labels):,} {options.split} images"
    return [entry(f"{FOLDER}/geometry.json", f"probe accuracy per layer, CKA, PCA shares {caption}",
                  "geometry-numbers", "geometry"),
            entry(f"{FOLDER}/geometry.npz", f"PCA coordinates per layer and CKA {caption}",
                  "arrays", "geometry"),
            entry(figure_name(f"{FOLDER}/probe"), "a linear classifier on each layer's features "
                  f"(trained on the other split, scored {caption})", "geometry-probe", "geometry"),
            entry(figure_name(f"{FOLDER}/embeddings"), f"each layer's map of the images "
                  f"({EMBEDDINGS[options.embedding][2]}) {caption}, coloured by class",
                  "geometry-embeddings", "geometry"),
            entry(figure_name(f"{FOLDER}/cka"), f"linear CKA between the layers {caption}",
                  "geometry-cka", "geometry")] + [
            entry(figure_name(f"{FOLDER}/thumbnails"), f"a spread of the images {caption} drawn "
                  "at their places in each layer's map", "geometry-thumbnails", "geometry")
            ] * options.thumbnails
