"""`cnnviz explain`: why the network made a prediction, with the sanity checks."""

from __future__ import annotations

from pathlib import Path

import click

from cnnviz.cli.group import cli
from cnnviz.cli.options import (figure_options, opens, outputs_dir_option, parse_int_list,
                                probe_data_options, trained_dir_option)
from cnnviz.explain_methods import NAMES



@cli.command()
@click.argument("model", required=False)
@click.option("--image", "image_list", metavar="N[,N…]", help="dataset index of the image(s) (default 0)")
@click.option("--digit", type=int, help="explain the first --count images of this class")
@click.option("--count", type=int, help="how many images with --digit (default 6)")
@click.option("--input", "input_file", type=click.Path(path_type=Path),
              help="your own PNG/JPEG instead of a dataset image")
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@click.option("--method", "methods", default="all", show_default=True, metavar="NAMES",
              help=f"a comma list of: {', '.join(NAMES)}")
@click.option("--target", default="predicted", show_default=True, metavar="predicted|true|CLASS",
              help="the class whose logit is explained")
@click.option("--layer", help="Grad-CAM's layer (default: the last layer with positions)")
@click.option("--baseline", type=click.Choice(["black", "mean", "blur"]), default="black",
              show_default=True, help="integrated gradients: the image the path starts from")
@click.option("--steps", type=int, default=50, show_default=True, help="integrated-gradients steps")
@click.option("--samples", type=int, default=50, show_default=True, help="SmoothGrad samples")
@click.option("--patch", type=int, help="occlusion: the side of the black square (default side/7)")
@click.option("--stride", type=int, help="occlusion: pixels between squares (default patch/2)")
@click.option("--batch-size", type=int, default=256, show_default=True,
              help="inputs per forward pass: bounds the memory whatever --steps and --samples")
@click.option("--check", is_flag=True,
              help="also run the sanity checks: cascading randomisation, deletion/insertion, "
                   "completeness")
@probe_data_options
@trained_dir_option
@figure_options
@outputs_dir_option
@opens
def explain(model, image_list, digit, count, input_file, split, methods, target, layer, baseline,
            steps, samples, patch, stride, batch_size, check, opening) -> None:
    """Why the network made its prediction: which pixels raise the class logit.

    Writes outputs/NAME/explain/explain-IMAGE.png (the input, the top 3, every method's
    map alone and over the image), attributions-*.npz, and with --check check.png and
    check.json; records them in outputs/NAME/manifest.json.

    \b
    Examples:
      cnnviz explain --image 17
      cnnviz explain --digit 4 --count 3 --method integrated-gradients,grad-cam
      cnnviz explain --input my_digit.png --target 7
      cnnviz explain --image 0,1,2,3 --check
    """
    images = parse_int_list("--image", image_list) if image_list is not None else None
    m = opening.load(model)
    m.gallery("explain", m.gallery_dir(opening.outputs_dir), **opening.figures, images=images,
              digit=digit, count=count, input=input_file, split=split, methods=methods,
              target=target, layer=layer, baseline=baseline, steps=steps, samples=samples,
              patch=patch, stride=stride, batch_size=batch_size, check=check)
