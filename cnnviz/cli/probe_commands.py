"""`cnnviz activations`, `filters`, `kernels`, `stats`: one technique each."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cnnviz.cli.group import cli
from cnnviz.cli.options import (FINITE, check_writable, chosen_layers, model_input_options, open_data, open_model, parse_scales, with_scales,
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
    chosen = [flag for flag, value in (("--image", image_list), ("--digit", digit),
                                       ("--input", input_file)) if value is not None]
    if len(chosen) > 1:
        raise UsageError(f"{' and '.join(chosen)} exclude each other: choose one way to pick images")
    if count is not None and digit is None:
        raise UsageError("--count goes with --digit (how many images of that class)")
    images = parse_int_list("--image", image_list) if image_list is not None else None
    if input_file is not None and Path(input_file).is_dir():
        raise UsageError(f"--input {input_file} is a folder; give one image file (PNG, JPEG, ...)")
    if input_file is not None and not Path(input_file).is_file():
        raise UsageError(f"--input {input_file}: no such file; give a PNG or JPEG of one digit")

    loaded = open_model(model, trained_dir)
    from cnnviz.galleries import activations as gallery

    layers = chosen_layers(loaded.model, layer_specs)
    selection = (gallery.select_file(input_file, loaded.image_shape) if input_file is not None
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
    out = outputs_dir / loaded.folder_name
    check_writable(out)
    options = gallery.ActivationOptions(
        tuple(layers), loaded.classes(data.class_names if data is not None else None),
        selection if wants_images else None, scale, save_arrays,
        data if class_mean else None, split)
    record_entries(loaded, out, gallery.run(loaded, options, out), gallery.FOLDER)


@cli.command()
@click.argument("model", required=False)
@click.option("--layer", "layer_specs", multiple=True, metavar="NAMES",
              help="a layer, a comma list, or all (default: every conv layer)")
@click.option("--maps", help="map indices and ranges, e.g. 0-15,31 (default: all)")
@click.option("--steps", type=int, default=100, show_default=True)
@click.option("--step-size", type=FINITE, default=0.1, show_default=True,
              help="RMS change of the input per step (standardised units)")
@click.option("--scales", default="auto", show_default=True,
              help="length scales of the start noise, in pixels (auto: 3,7,14,28 on a "
                   "28-pixel input, in proportion on others)")
@click.option("--starts", type=int, default=2, show_default=True, help="random starts per scale")
@click.option("--pre-activation", type=click.Choice(["auto", "on", "off"]), default="auto",
              show_default=True, help="auto: climb the pre-activation while a map is silent")
@click.option("--objective", type=click.Choice(["mean", "center"]), default="mean",
              show_default=True, help="mean over all positions of a map, or its centre only")
@click.option("--snapshots", metavar="STEPS", help="also draw the patterns at these steps, e.g. 0,10,50,100")
@click.option("--per-scale", is_flag=True, help="also one gallery per length scale")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--save-arrays", is_flag=True, help="also write the patterns as .npz")
@model_input_options
@trained_dir_option
@outputs_dir_option
def filters(model, layer_specs, maps, steps, step_size, scales, starts, pre_activation,
            objective, snapshots, per_scale, seed, save_arrays, trained_dir, outputs_dir) -> None:
    """The input pattern that excites each map most (gradient ascent from noise).

    All maps × scales × starts of a layer run as one batch. Writes
    outputs/NAME/filters/LAYER/*.png and records them in outputs/NAME/manifest.json.

    \b
    Examples:
      cnnviz filters                                # every conv layer
      cnnviz filters --layer conv3 --maps 0-15,31 --snapshots 0,10,50,100
      cnnviz filters --layer all --steps 200 --scales 7,14 --starts 4 --save-arrays
    """
    from cnnviz.probes.patterns import DEFAULT_SCALES, PatternSettings

    given = parse_scales(scales)
    settings = PatternSettings(steps=steps, step_size=step_size, scales=given or DEFAULT_SCALES,
                               starts=starts, pre_activation=pre_activation, objective=objective,
                               snapshots=tuple(parse_int_list("--snapshots", snapshots)) if snapshots else (),
                               seed=seed)
    loaded = open_model(model, trained_dir)
    settings = with_scales(settings, given, loaded.image_shape)
    from cnnviz.galleries import filters as gallery
    from cnnviz.graph import graph_of
    from cnnviz.names import slug
    from cnnviz.layers import layers_for
    from cnnviz.probes.patterns import ascent_steps, parse_maps

    layers = chosen_layers(loaded.model, layer_specs, ",".join(layers_for(loaded.model, "kernels")),
                           "patterns")
    plan = [(layer, parse_maps(maps, graph_of(loaded.model).shape(layer)[-1])) for layer in layers]
    out = outputs_dir / loaded.folder_name
    check_writable(out)
    for layer, chosen in plan:
        options = gallery.PatternOptions(layer, settings, chosen, per_scale, save_arrays)
        with click.progressbar(length=ascent_steps(len(chosen), settings,
                                                 graph_of(loaded.model).input_shape[1:]),
                               label=f"{layer}: {len(chosen)} maps × "
                               f"{len(settings.scales) * settings.starts} starts",
                               file=sys.stderr) as bar:
            written = gallery.run(loaded, options, out, click.echo, bar.update)
        record_entries(loaded, out, written, f"{gallery.FILTERS}/{slug(layer)}",
                       refresh=False)  # each layer kept if Ctrl-C
    refresh_page(out)


@cli.command()
@click.argument("model", required=False)
@click.option("--layer", "layer_specs", multiple=True, metavar="NAMES",
              help="a conv layer, a comma list, or all (default: all conv layers)")
@model_input_options
@trained_dir_option
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
    out = outputs_dir / loaded.folder_name
    check_writable(out)
    options = gallery.StatsOptions(tuple(layers), data, split, limit, top, batch_size, second)
    with click.progressbar(length=count * (2 if second else 1), label="stats",
                           file=sys.stderr) as bar:
        written = gallery.run(loaded, options, out, click.echo, bar.update)
    record_entries(loaded, out, written, gallery.FOLDER)
