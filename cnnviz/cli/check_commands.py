"""`cnnviz trace` and `cnnviz verify`: see, and check, what the network computes."""

from __future__ import annotations

from pathlib import Path

import click

from cnnviz.cli.group import cli
from cnnviz.cli.options import (figure_options, opens, outputs_dir_option, probe_data_options,
                                progress_bars, strategy_option, trained_dir_option)


@cli.command()
@click.argument("model", required=False)
@click.option("--layer", help="the layer (default: the last convolution)")
@click.option("--map", "map_", type=int, default=0, show_default=True, help="the map (or unit)")
@click.option("--at", metavar="ROW,COL", help="the position in the map (none for a dense layer)")
@click.option("--image", type=int, default=0, show_default=True, help="dataset index of the image")
@click.option("--input", "input_file", type=click.Path(path_type=Path),
              help="your own PNG/JPEG instead of a dataset image")
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@probe_data_options
@trained_dir_option
@figure_options
@outputs_dir_option
@opens
def trace(model, layer, map_, at, image, input_file, split, opening) -> None:
    """The arithmetic of one value: the patch it reads, the kernel, the products and sums,
    the bias, then BatchNormalization and the activation, up to the value the network
    reports — computed in float64 and checked against it (exit 1 if they differ).

    Writes outputs/NAME/trace/trace-LAYER-MAP-ROW-COL-IMAGE.png and .json.

    \b
    Examples:
      cnnviz trace --layer conv2 --map 7 --at 3,4 --image 17
      cnnviz trace --layer dense1 --map 12 --input my_digit.png
    """
    m = opening.load(model)
    m.gallery("trace", m.gallery_dir(opening.outputs_dir), **opening.figures, layer=layer,
              map=map_, at=at, image=image, input=input_file, split=split)


@cli.command()
@click.argument("model", required=False)
@click.option("--images", type=int, default=100, show_default=True,
              help="the first N images of the split")
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@click.option("--tolerance", type=float, default=1e-4, show_default=True,
              help="largest deviation allowed, relative to each layer's largest value")
@probe_data_options
@trained_dir_option
@figure_options
@outputs_dir_option
@opens
def verify(model, images, split, tolerance, opening) -> None:
    """Check every layer against an independent float64 NumPy forward pass (never
    TensorFlow): a line per layer with its largest deviation, and a verdict (exit 1 when a
    layer deviates or has no NumPy implementation: it is named, never skipped).

    Writes outputs/NAME/verify/verify.json and verify.png; the page's summary states it.

    \b
    Examples:
      cnnviz verify
      cnnviz verify my_model.keras --images 20
    """
    m = opening.load(model)
    m.gallery("verify", m.gallery_dir(opening.outputs_dir), progress_bars(), **opening.figures,
              images=images, split=split, tolerance=tolerance)


@cli.command()
@click.argument("model", required=False)
@click.option("--layer", "layer_specs", multiple=True, metavar="NAMES",
              help="a layer, a comma list, or all (default: all)")
@click.option("--split", default="test", show_default=True,
              help="the images embedded, compared and scored on (test or train); the probes "
                   "train on the other split")
@click.option("--limit", type=int, help="only the first N images of each split")
@click.option("--embedding", default="pca", show_default=True, help="how each layer's map is "
              "made: pca (its first two principal axes), tsne or umap (these two need "
              "pip install 'cnnviz[embeddings]')")
@click.option("--thumbnails", is_flag=True, help="also thumbnails.png: the maps with a spread "
              "of the images drawn at their places")
@probe_data_options
@trained_dir_option
@figure_options
@strategy_option
@outputs_dir_option
@opens
def geometry(model, layer_specs, split, limit, embedding, thumbnails, opening) -> None:
    """How each layer sees the dataset: how well a linear classifier reads the class from it
    (a probe, Alain & Bengio 2016), where each image lands in a 2-D map of it (PCA, t-SNE or
    UMAP), and how similar the layers are (linear CKA, Kornblith et al. 2019).

    Writes outputs/NAME/geometry/ (geometry.json, geometry.npz, probe.png, embeddings.png,
    cka.png; thumbnails.png with --thumbnails).

    \b
    Examples:
      cnnviz geometry
      cnnviz geometry --layer conv3,dense1 --limit 1000
      cnnviz geometry --embedding tsne --limit 2000
    """
    m = opening.load(model)
    m.gallery("geometry", m.gallery_dir(opening.outputs_dir), **opening.figures,
              layers=",".join(layer_specs) or None, split=split, limit=limit,
              embedding=embedding, thumbnails=thumbnails)
