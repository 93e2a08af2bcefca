"""The `cnnviz` command line: parse, call the library, print a summary.

TensorFlow is imported inside the commands that compute, never at module import, so
`cnnviz --help` and `cnnviz list` stay instant.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import click
import numpy as np

from cnnviz import __version__, bundle
from cnnviz.data import DATASETS, NORMALIZATIONS
from cnnviz.errors import CnnvizError, UsageError
from cnnviz.runtime import DEVICES, quiet_tensorflow
from cnnviz.spec import (ACTIVATIONS, OPTIMIZERS, OUTPUT_ACTIVATIONS, PRESETS, REG_SCOPES,
                         REGULARIZERS, SCHEDULES)

quiet_tensorflow()


class FiniteFloat(click.ParamType):
    """A float flag that refuses inf and nan (a usage error, exit 2)."""

    name = "number"

    def convert(self, value, param, ctx):
        import math

        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a valid float", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


FINITE = FiniteFloat()

# (flag, setting key, click type, help) for every training setting; keys as in spec.py.
SETTING_FLAGS = [
    ("--conv", "conv", str, "filters per conv layer, e.g. 32,64,64"),
    ("--kernel", "kernel", str, "kernel side: one value or one per conv layer, e.g. 3"),
    ("--conv-activation", "conv_activation", str,
     f"one or one per conv layer: {'|'.join(ACTIVATIONS)}"),
    ("--pools", "pools", str, "max-pool 2x2 after each conv, e.g. 1,1,0 (default: all but last)"),
    ("--dense", "dense", str, "units per hidden dense layer, e.g. 70 ('none': no hidden layer)"),
    ("--dense-activation", "dense_activation", str,
     f"one or one per dense layer: {'|'.join(ACTIVATIONS)}"),
    ("--output-activation", "output_activation", click.Choice(OUTPUT_ACTIVATIONS), None),
    ("--optimizer", "optimizer", click.Choice(OPTIMIZERS), None),
    ("--learning-rate", "learning_rate", FINITE, "initial learning rate"),
    ("--momentum", "momentum", FINITE, "momentum for rmsprop and sgd"),
    ("--schedule", "schedule", click.Choice(SCHEDULES), "learning-rate schedule"),
    ("--decay-steps", "decay_steps", int, "schedule: steps per decay unit"),
    ("--decay-rate", "decay_rate", FINITE, "schedule: decay rate"),
    ("--regularizer", "regularizer", click.Choice(REGULARIZERS), "weight penalty"),
    ("--reg-factor", "reg_factor", FINITE, "weight penalty factor"),
    ("--reg-scope", "reg_scope", click.Choice(REG_SCOPES), "layers the penalty applies to"),
    ("--epochs", "epochs", int, None),
    ("--batch-size", "batch_size", int, None),
    ("--seed", "seed", int, "seed of weights and batch order"),
    ("--normalize", "normalize", click.Choice(NORMALIZATIONS),
     "standardize: per-pixel, fitted on the training split; unit: /255"),
]


def trained_dir_option(func):
    return click.option("--trained-dir", type=click.Path(file_okay=False, path_type=Path),
                        envvar="CNNVIZ_TRAINED", default="trained", show_default=True,
                        help="folder of model bundles (env CNNVIZ_TRAINED)")(func)


def outputs_dir_option(func):
    return click.option("--outputs-dir", type=click.Path(file_okay=False, path_type=Path),
                        envvar="CNNVIZ_OUTPUTS", default="outputs", show_default=True,
                        help="folder of galleries (env CNNVIZ_OUTPUTS)")(func)


def probe_data_options(func):
    """--dataset / --data for commands that read images: default, the bundle's own data."""
    func = click.option("--data", "data_path", type=click.Path(path_type=Path),
                        help="default: the bundle's own data source")(func)
    return click.option("--dataset", type=click.Choice(DATASETS), default=None,
                        help="default: the bundle's own dataset")(func)


def setting_options(func):
    for flag, key, kind, text in reversed(SETTING_FLAGS):
        func = click.option(flag, key, type=kind, default=None, help=text)(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="cnnviz")
@click.option("--trust-model", is_flag=True,
              help="load .keras files even when that could run code stored in them "
                   "(Lambda layers); only for files you trust")
@click.pass_context
def cli(ctx: click.Context, trust_model: bool) -> None:
    """Train a small CNN on MNIST-style digits and look inside it.

    \b
    Start with:  cnnviz train                 (article2 network on MNIST, ~1 min on 2 cores)
    then:        cnnviz atlas                 (everything below, and an HTML page to browse it)
    or one by one:
                 cnnviz info                  (layers, receptive fields, run metadata)
                 cnnviz activations --image 17  (what every map outputs for a test digit)
                 cnnviz filters               (the input pattern each map wants)
                 cnnviz kernels, cnnviz stats (weights; every layer over the test split)
                 cnnviz gallery --open        (rebuild the page and open it)
    Two runs:    cnnviz train --runs 2 --name b && cnnviz compare b-1 b-2
    Galleries go to outputs/NAME/ (index.html, manifest.json).
    """
    if trust_model:
        from cnnviz.model import TRUST_ENV

        before = os.environ.get(TRUST_ENV)
        os.environ[TRUST_ENV] = "1"
        ctx.call_on_close(lambda: os.environ.pop(TRUST_ENV) if before is None
                          else os.environ.__setitem__(TRUST_ENV, before))


@cli.command()
@click.option("--preset", type=click.Choice(list(PRESETS)), default=None,
              help="starting settings (default article2; flags override)")
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path),
              help="JSON or TOML file of settings (keys as the flags, e.g. learning_rate)")
@setting_options
@click.option("--name", help="bundle name (default DATASET-PRESET, e.g. mnist-article2)")
@click.option("--dataset", type=click.Choice(DATASETS), default=None, help="default: mnist")
@click.option("--data", "data_path", type=click.Path(path_type=Path),
              help="a .npz (x_train, y_train, x_test, y_test) or a folder of IDX files")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--resume", is_flag=True, help="continue an interrupted run from its last epoch")
@click.option("--from-initial", "from_initial", metavar="BUNDLE",
              help="start from another bundle's initial weights")
@click.option("--force", is_flag=True, help="replace an existing bundle of the same name")
@click.option("--tensorboard", type=click.Path(file_okay=False, path_type=Path),
              help="also write TensorBoard logs here")
@click.option("--quiet", is_flag=True, help="no per-step progress bar")
@click.option("--runs", type=int, default=1, show_default=True,
              help="train N bundles NAME-1 … NAME-N with seeds SEED … SEED+N-1, all else equal")
@trained_dir_option
def train(preset, config, name, dataset, data_path, device, resume, from_initial, force,
          tensorboard, quiet, runs, trained_dir, **overrides) -> None:
    """Train a network and save it as a model bundle in trained/NAME/.

    \b
    Examples:
      cnnviz train                                   # article2 on MNIST, 5 epochs
      cnnviz train --dataset fashion --epochs 10
      cnnviz train --preset article3 --data ~/mnist.npz
      cnnviz train --conv 16,32 --dense 64 --optimizer adam --learning-rate 3e-4 --name small
      cnnviz train --name mnist-article2 --resume    # after Ctrl-C
      cnnviz train --runs 3 --name base              # base-1, base-2, base-3: seeds 1, 2, 3
    """
    from cnnviz.spec import resolve_settings, specs_from_settings

    if runs < 1:
        raise UsageError(f"--runs must be ≥ 1, got {runs}")
    if runs > 1 and resume:
        raise UsageError("--runs cannot be combined with --resume; resume each run by its "
                         "name, e.g. cnnviz train --name base-2 --resume")

    if resume:
        name = bundle.check_name(name or f"{dataset or 'mnist'}-{preset or 'article2'}")
        run_names = [name]
    else:
        preset, settings = resolve_settings(preset, config, overrides)
        network, training = specs_from_settings(settings)
        dataset = dataset or "mnist"
        name = bundle.check_name(name or f"{dataset}-{preset}")
        run_names = [name] if runs == 1 else [f"{name}-{i}" for i in range(1, runs + 1)]
    for run_name in run_names:  # one writer per bundle; held until the command ends
        click.get_current_context().with_resource(bundle.writing(trained_dir / run_name))
    if resume:
        run, network, training = _resume_plan(trained_dir / name, preset, config, dataset,
                                              from_initial, force, overrides)
        dataset, data_path = bundle.dataset_of(run)[0], data_path or _recorded_data(run)
        preset = run.get("preset", "")
    else:
        plan = [(run_name, replace(training, seed=training.seed + i))
                for i, run_name in enumerate(run_names)]
        for run_name, _ in plan:
            if (trained_dir / run_name).exists() and not force:
                raise UsageError(f"bundle {trained_dir / run_name} exists; pass --force to replace "
                                 "it, --resume to continue it, or choose another --name")
    initial = _initial_weights(from_initial, trained_dir) if from_initial else None
    if tensorboard is not None and not _has_module("tensorboard"):
        raise CnnvizError("--tensorboard needs the tensorboard package: "
                          "pip install 'cnnviz[tensorboard]'")

    from cnnviz.runtime import select_device

    used_device = select_device(device)
    from cnnviz.data import load_dataset
    from cnnviz.training import train_bundle
    from cnnviz.training_run import draw_curves

    data = load_dataset(dataset, data_path)
    click.echo(f"data: {data.describe()}")
    if resume:
        _check_same_data(run, data)
        plan = [(name, training)]
    accuracies = []
    for run_name, run_training in plan:
        folder = trained_dir / run_name
        if not resume and folder.exists():
            shutil.rmtree(folder)
        click.echo(f"model: {run_name} ({preset or 'custom'}), device {used_device}, "
                   f"{run_training.epochs} epochs, batch {run_training.batch_size}, "
                   f"seed {run_training.seed}")
        result = train_bundle(folder, network, run_training, data, preset=preset,
                              device=used_device, resume=resume, initial_weights=initial,
                              tensorboard_dir=tensorboard, after_epoch=draw_curves,
                              verbose=0 if quiet else (1 if sys.stdout.isatty() else 2),
                              log=click.echo)
        metrics, seconds = result.run["metrics"], result.history.get("seconds", [])
        accuracies.append(metrics["test_accuracy"])
        click.echo(
            f"done: {run_name}: {len(seconds)} epochs on {data.name} ({data.source}); test "
            f"accuracy {metrics['test_accuracy']:.4f}, loss {metrics['test_loss']:.4f}; "
            f"{sum(seconds) / max(len(seconds), 1):.1f} s/epoch; bundle: {folder}")
    if len(plan) > 1:
        click.echo(f"{len(plan)} runs: test accuracy {min(accuracies):.4f}–{max(accuracies):.4f}; "
                   f"compare two with: cnnviz compare {plan[0][0]} {plan[1][0]}")


def _resume_plan(folder: Path, preset, config, dataset, from_initial, force, overrides):
    """The run, network and training specs of the bundle to resume. Flags equal to the
    bundle's own settings are accepted (people re-run the same command with --resume);
    only --epochs may differ."""
    from cnnviz.spec import TrainSpec, network_from_json, read_config, same_settings

    refused = [flag for flag, value in (("--from-initial", from_initial), ("--force", force))
               if value]
    if refused:
        raise UsageError(f"--resume continues the bundle as it is; it cannot be combined with "
                         f"{' or '.join(refused)}")
    if not (folder / bundle.RUN_FILE).is_file():
        raise UsageError(f"nothing to resume: no bundle {folder}; start it without --resume")
    run = bundle.read_run(folder)
    if not (folder / bundle.MODEL_FILE).is_file():
        raise UsageError(f"nothing to resume: {folder} finished no epoch yet; "
                         "start again with --force")
    try:
        network = network_from_json(run["network"])
        training = TrainSpec(**(run["training"] | {"epochs": overrides.get("epochs")
                                                  or run["training"]["epochs"]}))
    except (KeyError, TypeError) as exc:
        raise CnnvizError(f"{folder / bundle.RUN_FILE} is incomplete ({exc}); retrain with --force") from None
    given = {k: v for k, v in overrides.items() if v is not None and k != "epochs"}
    if config is not None:
        from_file = read_config(config)
        if from_file.pop("preset", None) not in (None, run.get("preset")):
            given.setdefault("preset", "?")
        given = {k: v for k, v in from_file.items() if k != "epochs"} | given
    differ = same_settings(network, training, given)
    differ += [f"--{flag} {value} (the bundle's: {own})" for flag, value, own in
               (("preset", preset, run.get("preset")),
                ("dataset", dataset, bundle.dataset_of(run)[0])) if value and value != own]
    if differ:
        raise UsageError(f"--resume continues with the bundle's own settings; only --epochs may "
                         f"change (got {'; '.join(differ)})")
    done = int(run.get("epochs_completed", 0))
    if done >= training.epochs:
        raise UsageError(f"{folder.name} has finished {done} of {training.epochs} epochs; "
                         f"pass --epochs N with N > {done} to train further")
    return run, network, training


def _recorded_data(run: dict) -> str | None:
    """The data path a bundle recorded, refused (exit 2) when it is gone."""
    recorded = bundle.dataset_of(run)[1]
    if recorded is not None and not Path(recorded).exists():
        raise UsageError(f"the data this bundle was trained on, {recorded}, is gone; pass "
                         "--data PATH")
    return recorded


def _check_same_data(run: dict, data) -> None:
    want = (run["data"].get("train_images"), run["data"].get("test_images"))
    if want != (len(data.x_train), len(data.x_test)):
        raise UsageError(f"--resume: the run trained on {want[0]} train / {want[1]} test images "
                         f"but {data.describe()}; pass the same --data")


def _initial_weights(other: str, trained_dir: Path) -> Path:
    found = bundle.resolve(other, trained_dir)
    path = (found.bundle_dir / bundle.INITIAL_WEIGHTS_FILE) if found.bundle_dir else None
    if path is None or not path.is_file():
        raise UsageError(f"--from-initial {other}: no {bundle.INITIAL_WEIGHTS_FILE} there; "
                         "name a bundle trained by cnnviz")
    return path


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


@cli.command()
@click.argument("model", required=False)
@trained_dir_option
@outputs_dir_option
def info(model, trained_dir, outputs_dir) -> None:
    """Layers, shapes, parameters, receptive fields and run metadata of a model.

    MODEL is a bundle name, a bundle folder or a .keras file (default: the newest bundle).

    \b
    Examples:
      cnnviz info
      cnnviz info mnist-article2
      cnnviz info path/to/any_model.keras
    """
    loaded = _load(model, trained_dir)
    from cnnviz.model import layer_table, parameter_count

    where = loaded.ref.bundle_dir or loaded.ref.model_path
    click.echo(f"model: {loaded.name} ({where})\n")
    click.echo(f"{'layer':<10} {'kind':<14} {'output shape':<14} {'params':>8}  "
               f"{'receptive field':>15}  {'stride':>6}")
    for row in layer_table(loaded.model):
        shape = "x".join(str(d) for d in row.output_shape[1:])
        field = f"{row.receptive_field}x{row.receptive_field}" if row.receptive_field else "image"
        stride = str(row.stride) if row.stride else "-"
        click.echo(f"{row.name:<10} {row.kind:<14} {shape:<14} {row.params:>8,}  "
                   f"{field:>15}  {stride:>6}")
    click.echo(f"\ntotal parameters: {parameter_count(loaded.model):,}")
    for line in bundle.describe_run(loaded.run):
        click.echo(line)
    if loaded.preprocessing.kind == "unit" and not loaded.run:
        click.echo("preprocessing: none recorded; assuming pixels / 255")
    gallery = outputs_dir / loaded.folder_name
    click.echo(f"galleries: {gallery}" + ("" if gallery.is_dir() else " (none yet)"))


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

    loaded = _load(model, trained_dir)
    from cnnviz.data import class_names
    from cnnviz.galleries import activations as gallery

    layers = _layers(loaded.model, layer_specs)
    selection = gallery.select_file(input_file) if input_file is not None else None
    if selection is not None and selection.note:
        click.echo(f"note: {selection.note}")
    wants_images = (selection is not None or images is not None or digit is not None
                    or not class_mean)
    data = None
    if (selection is None and wants_images) or class_mean:
        data = _load_data(loaded, dataset, data_path)
    if selection is None and wants_images:
        selection = gallery.select_images(data, split, images, digit, 6 if count is None else count)
    out = outputs_dir / loaded.folder_name
    _check_writable(out)
    names = class_names(dataset or bundle.dataset_of(loaded.run)[0])
    entries = []
    if wants_images:
        entries += gallery.write_image_activations(loaded, layers, selection, out, scale,
                                                   save_arrays, names)
    if class_mean:
        entries += gallery.write_class_means(loaded, layers, data, split, out, names)
    _record(loaded, out, entries, gallery.FOLDER)


@cli.command()
@click.argument("model", required=False)
@click.option("--layer", "layer_specs", multiple=True, metavar="NAMES",
              help="a layer, a comma list, or all (default: every conv layer)")
@click.option("--maps", help="map indices and ranges, e.g. 0-15,31 (default: all)")
@click.option("--steps", type=int, default=100, show_default=True)
@click.option("--step-size", type=FINITE, default=0.1, show_default=True,
              help="RMS change of the input per step (standardised units)")
@click.option("--scales", default="3,7,14,28", show_default=True,
              help="length scales of the start noise, in pixels")
@click.option("--starts", type=int, default=2, show_default=True, help="random starts per scale")
@click.option("--pre-activation", type=click.Choice(["auto", "on", "off"]), default="auto",
              show_default=True, help="auto: climb the pre-activation while a map is silent")
@click.option("--objective", type=click.Choice(["mean", "center"]), default="mean",
              show_default=True, help="mean over all positions of a map, or its centre only")
@click.option("--snapshots", metavar="STEPS", help="also draw the patterns at these steps, e.g. 0,10,50,100")
@click.option("--per-scale", is_flag=True, help="also one gallery per length scale")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--save-arrays", is_flag=True, help="also write the patterns as .npz")
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
    from cnnviz.probes.patterns import PatternSettings

    settings = PatternSettings(steps=steps, step_size=step_size,
                               scales=tuple(parse_int_list("--scales", scales)), starts=starts,
                               pre_activation=pre_activation, objective=objective,
                               snapshots=tuple(parse_int_list("--snapshots", snapshots)) if snapshots else (),
                               seed=seed)
    loaded = _load(model, trained_dir)
    from cnnviz.data import class_names
    from cnnviz.galleries.filters import FILTERS, write_patterns
    from cnnviz.probes.kernels import conv_layers
    from cnnviz.probes.patterns import ascent_steps, parse_maps, pattern_layers, response

    layers = _layers(loaded.model, layer_specs, ",".join(conv_layers(loaded.model)),
                     pattern_layers(loaded.model))
    plan = []
    for layer in layers:
        response(loaded.model, layer)  # says now, before any work, if a layer has no maps
        count = loaded.model.get_layer(layer).output.shape[-1]
        plan.append((layer, parse_maps(maps, count)))
    out = outputs_dir / loaded.folder_name
    _check_writable(out)
    names = class_names(bundle.dataset_of(loaded.run)[0])
    for layer, chosen in plan:
        with click.progressbar(length=ascent_steps(len(chosen), settings),
                               label=f"{layer}: {len(chosen)} maps × "
                               f"{len(settings.scales) * settings.starts} starts",
                               file=sys.stderr) as bar:
            written, result = write_patterns(loaded, layer, chosen, settings, out, names,
                                             per_scale, save_arrays, bar.update)
        reached = result.best_objective
        click.echo(f"{layer}: {int((reached > 0).sum())}/{len(reached)} maps with a positive "
                   f"objective, median {float(np.median(reached)):.3g}, {result.seconds:.1f} s")
        _record(loaded, out, written, f"{FILTERS}/{layer}", refresh_page=False)  # kept if Ctrl-C
    _refresh_page(out)


@cli.command()
@click.argument("model", required=False)
@click.option("--layer", "layer_specs", multiple=True, metavar="NAMES",
              help="a conv layer, a comma list, or all (default: all conv layers)")
@trained_dir_option
@outputs_dir_option
def kernels(model, layer_specs, trained_dir, outputs_dir) -> None:
    """The kernels of conv layers on a colour map centred on zero.

    \b
    Examples:
      cnnviz kernels --layer conv1
      cnnviz kernels
    """
    loaded = _load(model, trained_dir)
    from cnnviz.galleries.filters import KERNELS, write_kernels
    from cnnviz.probes.kernels import conv_kernels, conv_layers

    layers = _layers(loaded.model, layer_specs, eligible=conv_layers(loaded.model))
    for layer in layers:
        conv_kernels(loaded.model, layer)  # a non-conv layer is refused before anything is written
    out = outputs_dir / loaded.folder_name
    _check_writable(out)
    entries = [entry for layer in layers for entry in write_kernels(loaded, layer, out)]
    _record(loaded, out, entries, KERNELS)


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
    loaded = _load(model, trained_dir)
    from cnnviz.data import class_names
    from cnnviz.galleries import stats as gallery
    from cnnviz.model import load_model

    layers = _layers(loaded.model, layer_specs)
    second = load_model(other, trained_dir) if other is not None else None
    data = _load_data(loaded, dataset, data_path)
    count = min(limit or len(data.split(split)[0]), len(data.split(split)[0]))
    if top > count:
        raise UsageError(f"--top {top} is larger than the {count:,} images used; "
                         f"choose --top ≤ {count}")
    if second is not None and second.preprocessing.kind != loaded.preprocessing.kind:
        click.echo(f"note: {second.name} normalises with {second.preprocessing.kind}, "
                   f"{loaded.name} with {loaded.preprocessing.kind}: each gets its own")
    out = outputs_dir / loaded.folder_name
    _check_writable(out)
    result = gallery.compute(loaded, layers, data, split, limit, top, batch_size)
    entries = gallery.write_stats(loaded, result, data, split, out, class_names(data.name))
    for layer, s in result.items():
        click.echo(f"{layer:<8} {len(s.mean):>4} {'maps' if len(s.shape) == 3 else 'units'}: "
                   f"{s.active_fraction.mean():6.1%} of values > 0, {int(s.dead.sum())} dead, "
                   f"{int(s.always_on.sum())} always on")
    if second is not None:
        shared = [n for n in layers if n in {layer.name for layer in second.model.layers}]
        theirs = gallery.compute(second, shared, data, split, limit, top, batch_size)
        written, notes = gallery.write_comparison((loaded.name, second.name), result, theirs, out)
        entries += written
        for note in notes:
            click.echo(f"note: {note}")
    _record(loaded, out, entries, gallery.FOLDER)


@cli.command()
@click.argument("model", required=False)
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True,
              help="images for the per-class samples and the statistics")
@click.option("--limit", type=int, help="statistics over only the first N images of the split")
@click.option("--top", type=int, default=9, show_default=True, help="top-activating images per map")
@click.option("--steps", type=int, default=100, show_default=True, help="gradient-ascent steps")
@click.option("--step-size", type=FINITE, default=0.1, show_default=True)
@click.option("--scales", default="3,7,14,28", show_default=True, help="length scales of the start noise")
@click.option("--starts", type=int, default=1, show_default=True,
              help="random starts per scale (the filters command's default is 2)")
@click.option("--seed", type=int, default=0, show_default=True)
@probe_data_options
@trained_dir_option
@outputs_dir_option
def atlas(model, split, limit, top, steps, step_size, scales, starts, seed, dataset, data_path,
          trained_dir, outputs_dir) -> None:
    """Everything about a model in one run, then the HTML page to browse it.

    Training curves; every layer for the first test image of each class; the best input
    pattern (with its evolution) and the kernels of every conv layer; statistics and
    top-k examples of every layer; then outputs/NAME/index.html with a card per map.

    \b
    Examples:
      cnnviz atlas
      cnnviz atlas mnist-article2 --steps 200 --top 16
    """
    import time

    started = time.perf_counter()
    loaded = _load(model, trained_dir)
    from cnnviz.galleries.atlas import atlas_settings, run_atlas

    settings = atlas_settings(steps, step_size, tuple(parse_int_list("--scales", scales)),
                              starts, seed)
    data = _load_data(loaded, dataset, data_path)
    click.echo(f"loaded in {time.perf_counter() - started:.1f} s")
    site = run_atlas(loaded, data, outputs_dir / loaded.folder_name, settings, split, limit, top,
                     report=click.echo)
    _say_site(site, outputs_dir / loaded.folder_name)
    click.echo(f"atlas done in {time.perf_counter() - started:.1f} s")


@cli.command()
@click.argument("model", required=False)
@click.option("--open", "open_page", is_flag=True, help="open the page in the default browser")
@trained_dir_option
@outputs_dir_option
def gallery(model, open_page, trained_dir, outputs_dir) -> None:
    """Rebuild outputs/NAME/index.html (and the map cards) from outputs/NAME/manifest.json.

    MODEL is a bundle name or a gallery folder name (default: the newest bundle). No
    TensorFlow is needed: the page is built from the manifest and the files it lists.

    \b
    Examples:
      cnnviz gallery --open
      cnnviz gallery mnist-article2
    """
    from cnnviz.manifest import check_gallery

    folder = outputs_dir / _gallery_name(model, outputs_dir, trained_dir)
    check_gallery(folder)
    site = _write_site(folder)
    if open_page:
        import webbrowser

        webbrowser.open(site.index.resolve().as_uri())


def _gallery_name(model: str | None, outputs_dir: Path, trained_dir: Path) -> str:
    """A gallery's folder name inside --outputs-dir: a gallery name, or a bundle's name."""
    from cnnviz.names import slug

    if model is not None and (model != slug(model) or model in ("", ".", "..")):
        raise UsageError(f"gallery {model!r}: give the name of a gallery in {outputs_dir} "
                         "(no path, no '..'), or a bundle name; see --outputs-dir")
    if model is not None and (outputs_dir / model).is_dir():
        return model
    return slug(bundle.resolve(model, trained_dir).name)


def _write_site(out: Path, err: bool = False):
    """Build the HTML page and say where it is (and what it could not show)."""
    from cnnviz.render.site import build_site

    return _say_site(build_site(out), out, err)


def _say_site(site, out: Path, err: bool = False):
    """Say where the page is, and what it could not show."""
    if site.recovered:
        click.echo(f"note: {out / 'manifest.json'} was missing or corrupt; rebuilt it from the "
                   f"{site.entries} files on disk", err=err)
    if site.dropped:
        click.echo(f"note: {len(site.dropped)} manifest entries point outside {out} (e.g. "
                   f"{site.dropped[0]}); dropped", err=err)
    if site.missing:
        click.echo(f"note: {len(site.missing)} files listed in the manifest no longer exist "
                   f"(e.g. {site.missing[0]}); left off the page", err=err)
    click.echo(f"page: {site.index} ({site.entries} files, {site.cards} map cards); open it "
               f"in a browser, no server needed", err=err)
    return site


def _check_writable(folder: Path) -> None:
    from cnnviz.galleries.record import prepare

    prepare(folder)


@cli.command()
@click.argument("first")
@click.argument("second")
@click.option("--layer", "layer_specs", multiple=True, metavar="NAMES",
              help="a layer, a comma list, or all (default: conv layers and hidden dense layers)")
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@click.option("--limit", type=int, help="only the first N images of the split")
@click.option("--json", "as_json", is_flag=True, help="print the per-layer numbers as JSON")
@probe_data_options
@trained_dir_option
@outputs_dir_option
def compare(first, second, layer_specs, split, limit, as_json, dataset, data_path, trained_dir,
            outputs_dir) -> None:
    """Do two models learn the same maps? Match them and measure how similar they are.

    Every map of FIRST is correlated with every map of SECOND over the images of a split
    (each map's spatial mean per image), matched one to one (Hungarian assignment), and
    the same is done against an untrained copy of FIRST as the baseline. Writes
    outputs/compare-FIRST-SECOND/ with figures, summary.json and an index.html.

    \b
    Examples:
      cnnviz train --runs 3 --name base && cnnviz compare base-1 base-2
      cnnviz compare base-1 base-2 --layer conv1,conv3 --json
    """
    if limit is not None and limit < 2:
        raise UsageError(f"--limit must be ≥ 2 (a correlation needs two images), got {limit}")
    loaded = _load(first, trained_dir, err=as_json)
    from cnnviz.data import class_names
    from cnnviz.galleries import compare as recipe
    from cnnviz.model import load_model

    other = load_model(second, trained_dir)
    for one in (loaded, other):
        if not one.run:
            click.echo(f"note: {one.name} is a plain .keras file without run.json: assuming its "
                       "input is pixels / 255", err=as_json)
    default = ",".join(recipe.default_layers(loaded.model))
    layers = _layers(loaded.model, layer_specs, default)
    data = _load_data(loaded, dataset, data_path, err=as_json)
    recipe.comparable(loaded.model, other.model, layers)  # refuse before any folder exists
    from cnnviz.names import slug

    name = slug(f"compare-{loaded.folder_name}-{other.folder_name}")
    out = outputs_dir / name
    _check_writable(out)  # before the comparison, not after it
    result = recipe.compare(loaded, other, layers, data, split, limit)
    for layer, why in result.skipped.items():
        click.echo(f"note: {layer} skipped: {why}", err=as_json)
    entries = recipe.write_comparison(result, loaded, other, out,
                                      (outputs_dir / loaded.folder_name, outputs_dir / other.folder_name),
                                      class_names(data.name))
    numbers = result.numbers()
    from cnnviz import interrupts
    from cnnviz.manifest import add_entries

    interrupts.raise_if_received()
    add_entries(out, entries, model=recipe.comparison_card(result, loaded, name))
    if as_json:
        click.echo(json.dumps({"a": loaded.name, "b": other.name, "split": split,
                               "images": result.images, "layers": numbers,
                               "skipped": result.skipped}, indent=2))
        _write_site(out, err=True)
        return
    click.echo(f"{'layer':<8} {'maps':>5} {'matched':>8} {'>0.8':>6} {'>0.5':>6} {'same idx':>9} "
               f"{'untrained':>10} {'constant A/B':>13} {'tied':>5}")
    for layer, n in numbers.items():
        click.echo(f"{layer:<8} {n['maps']:>5} {n['mean_similarity']:>8.3f} {n['above_0_8']:>6.0%} "
                   f"{n['above_0_5']:>6.0%} {n['same_index']:>9.0%} "
                   f"{n['baseline_mean_similarity']:>10.3f} "
                   f"{str(n['constant_a']) + '/' + str(n['constant_b']):>13} {n['tied']:>5}"
                   + (f"   (kernels: {n['kernel_mean_similarity']:.3f}, untrained "
                      f"{n['baseline_kernel_mean_similarity']:.3f})"
                      if "kernel_mean_similarity" in n else ""))
    click.echo("constant: maps with one value on every image (two constant maps count as "
               "similarity 1); tied: maps whose partner could be swapped at the same total")
    _write_site(out)


def _load(model: str | None, trained_dir: Path, err: bool = False):
    """Import TensorFlow quietly, load the model (a bundle, a .keras file, or the newest
    bundle) and say which one was taken when none was named."""
    from cnnviz.runtime import import_tensorflow

    import_tensorflow()
    from cnnviz.model import load_model

    loaded = load_model(model, trained_dir)
    if loaded.ref.note:
        click.echo(loaded.ref.note, err=err)
    return loaded


def _load_data(loaded, dataset: str | None, data_path: Path | None, err: bool = False):
    """The data the model was trained on (or the one given), with a line saying which."""
    from cnnviz.data import load_dataset

    name, path = bundle.dataset_of(loaded.run)
    path = data_path or (_recorded_data(loaded.run) if dataset in (None, name) else None)
    data = load_dataset(dataset or name, path)
    click.echo(f"data: {data.describe()}", err=err)
    return data


def _layers(model, layer_specs: tuple[str, ...], default: str = "all",
            eligible: list[str] | None = None) -> list[str]:
    """--layer values → layer names in model order; `all` means every eligible layer."""
    from cnnviz.model import resolve_layers

    spec = ",".join(layer_specs) or default
    layers = resolve_layers(model, spec)
    if eligible is not None and spec.strip().lower() == "all":
        layers = [name for name in layers if name in eligible]
    return layers


def _record(loaded, out: Path, entries: list[dict], folder: str | None,
            refresh_page: bool = True) -> None:
    """Add the written files to the gallery's manifest and say where they are (folder None:
    quietly), then rebuild the page if there is one (unless the caller will)."""
    from cnnviz.galleries.record import record

    manifest = record(loaded, out, entries)
    if folder is not None:
        written = len({e["path"] for e in entries})
        click.echo(f"wrote {written} files to {out / folder} (listed in {manifest})")
        if refresh_page:
            _refresh_page(out)


def _refresh_page(out: Path) -> None:
    """Keep an existing index.html up to date (no page yet: nothing to do)."""
    from cnnviz.render.site import INDEX_FILE

    if (out / INDEX_FILE).is_file():
        _write_site(out)


def parse_int_list(flag: str, text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{flag} takes integers separated by commas, got {text!r}") from None
    if not values:
        raise UsageError(f"{flag} takes integers separated by commas, got {text!r}")
    return values


@cli.command(name="list")
@trained_dir_option
def list_(trained_dir) -> None:
    """The model bundles in trained/ with dataset, epochs, test accuracy and date.

    \b
    Example:
      cnnviz list
    """
    rows = bundle.list_bundles(trained_dir)
    if not rows:
        click.echo(f"no bundles in {trained_dir}; run `cnnviz train` to make one")
        return
    width = max(len(r.name) for r in rows)
    click.echo(f"{'name':<{width}}  {'dataset':<8} {'epochs':>6}  {'test acc':>8}  "
               f"{'status':<11} updated")
    for r in rows:
        acc = f"{r.test_accuracy:.4f}" if r.test_accuracy is not None else "-"
        click.echo(f"{r.name:<{width}}  {r.dataset:<8} {r.epochs:>6}  {acc:>8}  "
                   f"{r.status:<11} {r.updated[:16].replace('T', ' ')}"
                   + (f"({r.problem})" if r.problem else ""))


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors, exit 2 for usage errors, 1 for failures, 130 for Ctrl-C."""
    import threading

    from cnnviz import interrupts

    if threading.current_thread() is threading.main_thread():
        interrupts.install()
    try:
        code = cli.main(args=argv, prog_name="cnnviz", standalone_mode=False)
        interrupts.raise_if_received()
    except click.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        _fail(f"{exc.format_message()}{hint}", 2)
    except UsageError as exc:
        _fail(exc.as_flag(), exc.exit_code)  # library parameters shown as their flags
    except CnnvizError as exc:
        _fail(str(exc), exc.exit_code)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except (KeyboardInterrupt, click.Abort):
        _fail("interrupted", 130)
    except OSError as exc:  # disk full, permissions, a file vanishing under us
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(f"{where}{exc.strerror or exc}", 1)
    except Exception as exc:  # a bug: still one line, traceback on request
        if os.environ.get("CNNVIZ_DEBUG"):
            raise
        _fail(f"unexpected {type(exc).__name__}: {exc} (set CNNVIZ_DEBUG=1 for the traceback)", 1)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {' '.join(str(message).split())}", err=True)
    sys.exit(code)
