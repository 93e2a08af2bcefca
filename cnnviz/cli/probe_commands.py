"""`cnnviz activations`, `filters`, `kernels`, `stats`: one technique each."""

from __future__ import annotations

from pathlib import Path

import click

from cnnviz.cli.flags import say
from cnnviz.cli.group import cli
from cnnviz.cli.progress import progress_bar
from cnnviz.images import check_image_file
from cnnviz.cli.options import (chief_folder, figure_options, strategy_option, check_image_choice, FINITE, check_writable, chosen_layers, model_input_options, open_data, open_model, parse_scales, with_scales,
                                outputs_dir_option, parse_int_list, probe_data_options,
                                record_entries, refresh_page, trained_dir_option)
from cnnviz.errors import UsageError


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
def activations(model, layer_specs, image_list, digit, count, input_file, split, scale,
                class_mean, save_arrays, dataset, data_path, trained_dir, outputs_dir) -> None:
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
    check_image_choice(image_list, digit, count, input_file)
    images = parse_int_list("--image", image_list) if image_list is not None else None
    if input_file is not None:
        check_image_file(input_file)

    loaded = open_model(model, trained_dir)
    from cnnviz.galleries import activations as gallery

    layers = chosen_layers(loaded.model, layer_specs)
    from cnnviz.model import digit_input

    selection = (gallery.select_file(
                     input_file, loaded.image_shape, digit_input(loaded)) if input_file is not None
                 else None)
    if selection is not None and selection.note:
        click.echo(f"note: {selection.note}")
    wants_images = (selection is not None or images is not None or digit is not None
                    or not class_mean)
    data = None
    if (selection is None and wants_images) or class_mean:
        data = open_data(loaded, dataset, data_path)
    if selection is None and wants_images:
        selection = gallery.select_images(data, split, images, digit, 6 if count is None else count)
    out = chief_folder(outputs_dir / loaded.folder_name)
    check_writable(out)
    options = gallery.ActivationOptions(
        tuple(layers), loaded.classes(data.class_names if data is not None else None),
        selection if wants_images else None, scale, save_arrays,
        data if class_mean else None, split)
    record_entries(loaded, out, gallery.run(loaded, options, out), gallery.FOLDER)


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
def filters(model, layer_specs, maps, objective, steps, step_size, scales, starts, pixel_starts,
            data_starts, split, diversity, recipe, regularise, transform, parameterisation,
            pre_activation, snapshots, per_scale, seed, save_arrays, dataset, data_path,
            trained_dir, outputs_dir) -> None:
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
    from cnnviz.probes.patterns import DEFAULT_SCALES, PatternSettings
    from cnnviz.probes.transforms import REGULARISERS, TRANSFORMS, Transforms, parse_weights

    given = parse_scales(scales)
    moves = None if transform is None else Transforms(**parse_weights(transform, TRANSFORMS, "transform"))
    penalties = parse_weights(regularise, tuple(REGULARISERS), "regularise")
    objective = objective.strip()
    expressions = objective.lower() not in ("mean", "center")
    settings = PatternSettings(
        steps=steps, step_size=step_size, scales=given or DEFAULT_SCALES, starts=starts,
        pixel_starts=pixel_starts, data_starts=data_starts, pre_activation=pre_activation,
        objective="mean" if expressions else objective.lower(),
        snapshots=tuple(parse_int_list("--snapshots", snapshots)) if snapshots else (),
        seed=seed, recipe=recipe, regularisers=tuple(penalties.items()) if regularise else None,
        transforms=moves, parameterisation=parameterisation, diversity=diversity)
    if expressions and (layer_specs or maps):
        raise UsageError("--objective expressions name their own layers and maps; drop "
                         "--layer and --maps")
    loaded = open_model(model, trained_dir)
    settings = with_scales(settings, given, loaded.image_shape)
    from cnnviz.galleries import filters as gallery
    from cnnviz.graph import graph_of
    from cnnviz.names import slug
    from cnnviz.layers import layers_for
    from cnnviz.probes.objectives import parse_objectives
    from cnnviz.probes.patterns import ascent_steps, parse_maps

    import numpy as np

    if expressions:
        parsed = parse_objectives(objective, loaded.model)
        plan = [("objectives", np.arange(len(parsed)), parsed)]
    else:
        layers = chosen_layers(loaded.model, layer_specs,
                               ",".join(layers_for(loaded.model, "kernels")), "patterns")
        plan = [(layer, parse_maps(maps, graph_of(loaded.model).shape(layer)[-1]), None)
                for layer in layers]
    out = chief_folder(outputs_dir / loaded.folder_name)
    check_writable(out)
    images = _pattern_data(loaded, dataset, data_path, split) if data_starts else None
    for layer, chosen, parsed in plan:
        options = gallery.PatternOptions(layer, settings, chosen, per_scale, save_arrays, parsed,
                                         images, split)
        length = ascent_steps(len(chosen), settings, graph_of(loaded.model).input_shape[1:],
                              images is not None)
        with progress_bar(length, f"{layer}: {len(chosen)} × "
                          f"{settings.start_count(images is not None)} starts") as update:
            written = gallery.run(loaded, options, out, say, update)
        record_entries(loaded, out, written, f"{gallery.FILTERS}/{slug(layer)}",
                       refresh=False)  # each layer kept if Ctrl-C
    refresh_page(out)


def _pattern_data(loaded, dataset, data_path, split):
    """The split's images for the data starts; without an explicit source, a dataset that
    cannot be read means noise starts only (with a note)."""
    from cnnviz.errors import CnnvizError

    try:
        return open_data(loaded, dataset, data_path).split(split)[0]
    except (CnnvizError, UsageError) as exc:
        if dataset is not None or data_path is not None:
            raise
        click.echo(f"note: no dataset for the data starts ({exc}); noise starts only")
        return None


@cli.command()
@click.argument("model", required=False)
@click.option("--layer", "layer_specs", multiple=True, metavar="NAMES",
              help="a conv layer, a comma list, or all (default: all conv layers)")
@model_input_options
@trained_dir_option
@figure_options
@outputs_dir_option
def kernels(model, layer_specs, trained_dir, outputs_dir) -> None:
    """The kernels of conv layers on a colour map centred on zero.

    \b
    Examples:
      cnnviz kernels --layer conv1
      cnnviz kernels
    """
    loaded = open_model(model, trained_dir)
    from cnnviz.galleries import kernels as gallery

    layers = chosen_layers(loaded.model, layer_specs, probe="kernels")
    out = outputs_dir / loaded.folder_name
    check_writable(out)
    entries = gallery.run(loaded, gallery.KernelOptions(tuple(layers)), out)
    record_entries(loaded, out, entries, gallery.KERNELS)


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
def stats(model, layer_specs, split, limit, top, other, batch_size, dataset, data_path,
          trained_dir, outputs_dir) -> None:
    """How every layer behaves over a whole split, and which images excite each map.

    Writes outputs/NAME/stats/ (stats.json, stats.csv, top_examples.npz, figures) and records
    every file in outputs/NAME/manifest.json.

    \b
    Examples:
      cnnviz stats
      cnnviz stats --layer conv3,dense1 --split train --limit 20000 --top 16
      cnnviz stats mnist-article2 --compare mnist-article3
    """
    if split not in ("test", "train"):
        raise UsageError(f"unknown split {split!r}; valid: test, train")
    for flag, value in (("--limit", limit), ("--top", top), ("--batch-size", batch_size)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be ≥ 1, got {value}")
    loaded = open_model(model, trained_dir)
    from cnnviz.galleries import stats as gallery

    layers = chosen_layers(loaded.model, layer_specs)
    second = open_model(other, trained_dir) if other is not None else None
    data = open_data(loaded, dataset, data_path)
    count = min(limit or len(data.split(split)[0]), len(data.split(split)[0]))
    if top > count:
        raise UsageError(f"--top {top} is larger than the {count:,} images used; "
                         f"choose --top ≤ {count}")
    out = chief_folder(outputs_dir / loaded.folder_name)
    check_writable(out)
    options = gallery.StatsOptions(tuple(layers), data, split, limit, top, batch_size, second)
    with progress_bar(count * (2 if second else 1), "stats") as update:
        written = gallery.run(loaded, options, out, say, update)
    record_entries(loaded, out, written, gallery.FOLDER)
