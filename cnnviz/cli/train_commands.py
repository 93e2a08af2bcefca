"""`cnnviz train`, `cnnviz info`, `cnnviz list`: bundles."""

from __future__ import annotations

import shutil
import sys
from dataclasses import replace
from pathlib import Path

import click

from cnnviz import bundle
from cnnviz.cli.group import cli
from cnnviz.cli.options import (
    has_module,
    open_model,
    outputs_dir_option,
    recorded_data,
    setting_options,
    trained_dir_option,
)
from cnnviz.data import DATASETS
from cnnviz.errors import CnnvizError, UsageError
from cnnviz.runtime import DEVICES
from cnnviz.spec import PRESETS


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
        dataset, data_path = bundle.dataset_of(run)[0], data_path or recorded_data(run)
        preset = run.get("preset", "")
    else:
        plan = [(run_name, replace(training, seed=training.seed + i))
                for i, run_name in enumerate(run_names)]
        for run_name, _ in plan:
            if (trained_dir / run_name).exists() and not force:
                raise UsageError(f"bundle {trained_dir / run_name} exists; pass --force to replace "
                                 "it, --resume to continue it, or choose another --name")
    initial = _initial_weights(from_initial, trained_dir) if from_initial else None
    if tensorboard is not None and not has_module("tensorboard"):
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
    loaded = open_model(model, trained_dir)
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
