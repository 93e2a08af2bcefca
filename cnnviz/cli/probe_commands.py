"""`cnnviz activations`, `filters`, `kernels`, `stats`: one technique each."""

from __future__ import annotations

from pathlib import Path

import click

from cnnviz.cli.group import cli
from cnnviz.cli.options import (FINITE, figure_options, model_input_options, opens,
                                outputs_dir_option, parse_int_list, probe_data_options,
                                progress_bars, strategy_option, trained_dir_option)


@cli.command()
@click.argument("model", required=False)
@click.option("--layer", "layer_specs", multiple=True, metavar="NAMES",
              help="a layer, a comma list, or all (default: all); repeatable")
@click.option("--image", "image_list", metavar="N[,N…]",
              help="dataset index of the image(s) to show (default 0)")
@click.option("--digit", type=int, help="show the first --count images of this class")
@click.option("--count", type=int, help="how many images with --digit (default 6)")
@click.option("--input", "input_file", type=click.Path(path_type=Path),
              help="your own PNG/JPEG of a digit instead of a dataset image")
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@click.option("--scale", type=click.Choice(["map", "layer"]), default="map", show_default=True,
              help="map: each map on its own range; layer: one range per layer, colour bar")
@click.option("--class-mean", is_flag=True,
              help="also the mean activation per class over the whole split")
@click.option("--save-arrays", is_flag=True, help="also write the arrays as .npz")
@probe_data_options
@trained_dir_option
@figure_options
@strategy_option
@outputs_dir_option
@opens
def activations(model, layer_specs, image_list, digit, count, input_file, split, scale,
                class_mean, save_arrays, opening) -> None:
    """What every map of a layer outputs for an image, a class, or your own drawing.

    Writes outputs/NAME/activations/LAYER/*.png and records them in
    outputs/NAME/manifest.json.

    \b
    Examples:
      cnnviz activations --layer conv2 --image 17
      cnnviz activations --layer all --digit 4 --count 6 --scale layer
      cnnviz activations --layer conv1,pool1 --input my_digit.png
      cnnviz activations --class-mean --save-arrays
    """
    images = parse_int_list("--image", image_list) if image_list is not None else None
    m = opening.load(model)
    m.gallery(
        "activations", m.gallery_dir(opening.outputs_dir), **opening.figures,
        layers=",".join(layer_specs) or None, images=images, digit=digit, count=count,
        input=input_file, split=split, scale=scale, class_mean=class_mean,
        save_arrays=save_arrays)


@cli.command()
@click.argument("model", required=False)
@click.option("--layer", "layer_specs", multiple=True, metavar="NAMES",
              help="a layer, a comma list, or all (default: every conv layer); output: "
                   "what each class looks like to the network")
@click.option("--maps", help="map indices and ranges, e.g. 0-15,31 (default: all)")
@click.option("--objective", default="mean", show_default=True, metavar="mean|center|EXPR",
              help="per map: its mean over positions or its centre; or expressions of "
                   "their own, ';'-separated, e.g. 'conv3:17 - 0.5*conv3:4; conv3:9@2,2; output:7'")
@click.option("--steps", type=int, default=50, show_default=True)
@click.option("--step-size", type=FINITE, default=0.5, show_default=True,
              help="Adam step at the start in pixels/255 (decays to a tenth)")
@click.option("--scales", default="auto", show_default=True,
              help="length scales of the smooth start noise, in pixels (auto: 3,7,14,28 on a "
                   "28-pixel input, in proportion on others)")
@click.option("--starts", type=int, default=1, show_default=True,
              help="smooth-noise starts per scale")
@click.option("--pixel-starts", type=int, default=6, show_default=True,
              help="starts of independent noise per pixel")
@click.option("--data-starts", type=int, default=4, show_default=True,
              help="starts from each map's top images of the dataset split (0: none, and "
                   "no comparison with real images)")
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True,
              help="the images for the data starts and the comparison")
@click.option("--diversity", type=int, default=1, show_default=True,
              help="K > 1: K patterns per map that must differ from each other, side by side")
@click.option("--recipe", type=click.Choice(["auto", "plain", "regularised"]), default="auto",
              show_default=True, help="plain pixel ascent, or regularised (Fourier, jitter, "
                                      "zoom, rotation); auto: plain for grey, regularised for colour")
@click.option("--regularise", metavar="NAME=W,…",
              help="penalties relative to the objective: tv, l1, l2, blur, e.g. tv=0.05,l2=0.1")
@click.option("--transform", metavar="NAME=V,…",
              help="random moves per step: jitter (pixels), scale (±share), rotate (degrees), "
                   "e.g. jitter=2,scale=0.05,rotate=5 (none: no moves)")
@click.option("--parameterisation", type=click.Choice(["pixels", "fourier"]),
              help="optimise the pixels, or a 1/f spectrum (default: by --recipe)")
@click.option("--pre-activation", type=click.Choice(["auto", "on", "off"]), default="auto",
              show_default=True, help="auto: climb the pre-activation while a map is silent")
@click.option("--snapshots", metavar="STEPS", help="also draw the patterns at these steps, e.g. 0,10,25,50")
@click.option("--per-scale", is_flag=True, help="also one gallery per kind of start")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--save-arrays", is_flag=True, help="also write the patterns as .npz")
@probe_data_options
@trained_dir_option
@figure_options
@strategy_option
@outputs_dir_option
@opens
def filters(model, layer_specs, maps, objective, steps, step_size, scales, starts, pixel_starts,
            data_starts, split, diversity, recipe, regularise, transform, parameterisation,
            pre_activation, snapshots, per_scale, seed, save_arrays, opening) -> None:
    """The input pattern that excites each map most (gradient ascent).

    Every map × start of a layer runs as one batch: smooth noise at several scales, noise
    per pixel, and the map's top dataset images; each map keeps its best pattern and is
    compared with its best real image. Writes outputs/NAME/filters/LAYER/* (galleries,
    patterns-LAYER.json) and records them in outputs/NAME/manifest.json.

    \b
    Examples:
      cnnviz filters                                # every conv layer
      cnnviz filters --layer conv3 --maps 0-15,31 --snapshots 0,10,25,50
      cnnviz filters --layer output                 # what each class looks like
      cnnviz filters --objective "conv3:17 - 0.5*conv3:4"
      cnnviz filters --layer conv3 --maps 5 --diversity 4
    """
    given = objective.strip()
    per_map = given.lower() in ("mean", "center")
    m = opening.load(model)
    m.gallery("filters", m.gallery_dir(opening.outputs_dir), progress_bars(), **opening.figures,
              layers=",".join(layer_specs) or None, maps=maps,
              objective=given.lower() if per_map else given, steps=steps, step_size=step_size,
              scales=scales, starts=starts, pixel_starts=pixel_starts, data_starts=data_starts,
              split=split, diversity=diversity, recipe=recipe, regularise=regularise or None,
              transform=transform, parameterisation=parameterisation,
              pre_activation=pre_activation, snapshots=snapshots or (), per_scale=per_scale,
              seed=seed, save_arrays=save_arrays)


@cli.command()
@click.argument("model", required=False)
@click.option("--layer", "layer_specs", multiple=True, metavar="NAMES",
              help="a conv layer, a comma list, or all (default: all conv layers)")
@model_input_options
@trained_dir_option
@figure_options
@outputs_dir_option
@opens
def kernels(model, layer_specs, opening) -> None:
    """The kernels of conv layers on a colour map centred on zero.

    \b
    Examples:
      cnnviz kernels --layer conv1
      cnnviz kernels
    """
    m = opening.load(model)
    m.gallery("kernels", m.gallery_dir(opening.outputs_dir), **opening.figures,
              layers=",".join(layer_specs) or None)


@cli.command()
@click.argument("model", required=False)
@click.option("--layer", "layer_specs", multiple=True, metavar="NAMES",
              help="a layer, a comma list, or all (default: all)")
@click.option("--split", default="test", show_default=True, help="test or train")
@click.option("--limit", type=int, help="only the first N images of the split, in dataset order")
@click.option("--top", type=int, default=9, show_default=True,
              help="how many top-activating images to keep per map")
@click.option("--compare", "other", metavar="BUNDLE", help="also the same statistics of another bundle")
@click.option("--batch-size", type=int, default=500, show_default=True)
@probe_data_options
@trained_dir_option
@figure_options
@strategy_option
@outputs_dir_option
@opens
def stats(model, layer_specs, split, limit, top, other, batch_size, opening) -> None:
    """How every layer behaves over a whole split, and which images excite each map.

    Writes outputs/NAME/stats/ (stats.json, stats.csv, top_examples.npz, figures) and records
    every file in outputs/NAME/manifest.json.

    \b
    Examples:
      cnnviz stats
      cnnviz stats --layer conv3,dense1 --split train --limit 20000 --top 16
      cnnviz stats mnist-article2 --compare mnist-article3
    """
    m = opening.load(model)
    second = opening.load(other) if other is not None else None
    m.gallery("stats", m.gallery_dir(opening.outputs_dir), progress_bars(), **opening.figures,
              layers=",".join(layer_specs) or None, split=split, limit=limit, top=top,
              batch_size=batch_size, compare=second)


@cli.command()
@click.argument("model", required=False)
@click.option("--layer", "layer_specs", multiple=True, metavar="NAMES",
              help="a conv layer, a comma list, or all (default: every snapshot one)")
@probe_data_options
@trained_dir_option
@figure_options
@outputs_dir_option
@opens
def epochs(model, layer_specs, opening) -> None:
    """The network over its training, from the snapshots of `cnnviz train --snapshots K`:
    for each convolution a grid (a few maps' kernel, output, top image and pattern at each
    snapshot, as Zeiler & Fergus's figure 4) and a frame per snapshot; each layer's dead
    maps and mean output per epoch.

    \b
    Examples:
      cnnviz train --name watched --epochs 10 --snapshots 1
      cnnviz epochs watched
    """
    m = opening.load(model)
    m.gallery("epochs", m.gallery_dir(opening.outputs_dir), **opening.figures,
              layers=",".join(layer_specs) or None)
