"""`cnnviz train`, `cnnviz info`, `cnnviz list`: bundles."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cnnviz import bundle
from cnnviz.cli.flags import say
from cnnviz.cli.group import cli
from cnnviz.cli.options import (chief_folder, open_strategy, strategy_option, model_input_options, has_module, open_model, outputs_dir_option, setting_options,
                                trained_dir_option)
from cnnviz.data import DATASETS
from cnnviz.errors import CnnvizError
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
@strategy_option
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
      cnnviz train --strategy mirrored --batch-size 512   # 512 split over every GPU
    """
    from cnnviz.training_run import plan_training

    if tensorboard is not None and not has_module("tensorboard"):
        raise CnnvizError("--tensorboard needs the tensorboard package: "
                          "pip install 'cnnviz[tensorboard]'")
    from cnnviz.runtime import select_device

    context = click.get_current_context()  # each bundle's lock is held until the command ends
    chief = True
    if context.meta.get("cnnviz.strategy") == "multi-worker":  # made before TensorFlow runs
        from cnnviz import distributed

        select_device(device)
        chief = distributed.is_chief(open_strategy())

    def hold(folder: Path) -> None:  # only the chief writes the bundle
        if chief:
            context.with_resource(bundle.writing(folder))

    plan = plan_training(trained_dir, hold=hold, name=name, preset=preset, config=config,
                         overrides=overrides, dataset=dataset, data_path=data_path, runs=runs,
                         resume=resume, force=force,
                         from_initial=from_initial)
    from cnnviz.data import load_dataset
    from cnnviz.training_run import run_plan

    used_device = select_device(device)
    open_strategy()
    data = load_dataset(plan.dataset, plan.data_path)
    click.echo(f"data: {data.describe()}")
    accuracies = []

    def announce(name, training) -> None:
        click.echo(f"model: {name} ({plan.preset or 'custom'}), device {used_device}, "
                   f"{training.epochs} epochs, batch {training.batch_size}, seed {training.seed}")

    verbose = 0 if quiet else (1 if sys.stdout.isatty() else 2)
    for name, result in run_plan(plan, trained_dir, data, used_device,
                                 tensorboard_dir=tensorboard if chief else None,
                                 verbose=verbose, log=say, announce=announce,
                                 write_dir=None if chief else chief_folder(trained_dir)):
        metrics, seconds = result.run["metrics"], result.history.get("seconds", [])
        accuracies.append(metrics["test_accuracy"])
        click.echo(
            f"done: {name}: {len(seconds)} epochs on {data.name} ({data.source}); test "
            f"accuracy {metrics['test_accuracy']:.4f}, loss {metrics['test_loss']:.4f}; "
            f"{sum(seconds) / max(len(seconds), 1):.1f} s/epoch; bundle: "
            + (f"{result.folder}" if chief else f"{trained_dir / name} (written by the chief)"))
    if len(plan.runs) > 1:
        click.echo(f"{len(plan.runs)} runs: test accuracy {min(accuracies):.4f}–"
                   f"{max(accuracies):.4f}; compare two with: cnnviz compare "
                   f"{plan.runs[0][0]} {plan.runs[1][0]}")


@cli.command()
@click.argument("model", required=False)
@model_input_options
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
    from cnnviz.graph import graph_of
    from cnnviz.model import layer_table, parameter_count

    where = loaded.ref.bundle_dir or loaded.ref.model_path
    click.echo(f"model: {loaded.name} ({where})\n")
    rows = layer_table(loaded.model)
    width = max([10] + [len(r.name) + 2 * r.depth for r in rows])
    kinds = max([14] + [len(r.kind) + 9 * r.nested for r in rows])
    h, w, c = graph_of(loaded.model).input_shape[1:]
    click.echo(f"input: {h}x{w}x{c}, fed {loaded.preprocessing.describe()}\n")
    click.echo(f"{'layer':<{width}} {'kind':<{kinds}} {'output shape':<14} {'params':>10}  "
               f"{'receptive field':>15}  {'stride':>6}")
    for row in rows:
        shape = "x".join(str(d) for d in row.output_shape[1:])
        name = "  " * row.depth + row.name
        kind = row.kind + (" (nested)" if row.nested else "")
        click.echo(f"{name:<{width}} {kind:<{kinds}} {shape:<14} {row.params:>10,}  "
                   f"{row.field_text():>15}  {row.stride_text():>6}")
    if any(not r.known for r in rows):
        click.echo("?: a layer whose geometry cnnviz cannot follow (and those after it)")
    click.echo(f"\ntotal parameters: {parameter_count(loaded.model):,}")
    for line in bundle.describe_run(loaded.run):
        click.echo(line)
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
