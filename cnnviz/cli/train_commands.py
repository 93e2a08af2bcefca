"""`cnnviz train`, `cnnviz info`, `cnnviz list`: bundles."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cnnviz.cli.flags import say
from cnnviz.cli.group import cli
from cnnviz.cli.options import (model_input_options, opens, outputs_dir_option, setting_options,
                                strategy_option, trained_dir_option)
from cnnviz.data import DATASETS
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
@click.option("--snapshots", type=int, metavar="K", help="record the network at the start and "
              "every K epochs into the bundle (weights, every layer's output for one test image "
              "per class, top images, dead maps, patterns): the atlas shows them over training")
@click.option("--serve", "serve_port", type=click.IntRange(0, 65535), default=None,
              metavar="PORT", help="the live page of the run on 127.0.0.1:PORT (0: any free "
              "port) from its first epoch on, recomputed after every epoch; it stays up after "
              "training until Ctrl-C")
@click.option("--quiet", is_flag=True, help="no per-step progress bar")
@click.option("--runs", type=int, default=1, show_default=True,
              help="train N bundles NAME-1 … NAME-N with seeds SEED … SEED+N-1, all else equal")
@strategy_option
@trained_dir_option
def train(preset, config, name, dataset, data_path, device, resume, from_initial, force,
          tensorboard, snapshots, serve_port, quiet, runs, strategy, cluster_timeout,
          trained_dir, **overrides) -> None:
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
      cnnviz train --name watched --epochs 10 --snapshots 1 --serve 8765
    """
    import cnnviz

    trained = cnnviz.train(preset, name, dataset, data_path, trained_dir, force, strategy=strategy,
                 cluster_timeout=cluster_timeout, config=config, runs=runs, resume=resume,
                 from_initial=from_initial, device=device, tensorboard=tensorboard,
                 snapshots=snapshots, live=False, serve=serve_port,
                 verbose=0 if quiet else (1 if sys.stdout.isatty() else 2), report=say,
                 **overrides)
    page = getattr(trained, "live_page", None)
    if page is not None:  # the run's live page stays until Ctrl-C
        import time

        from cnnviz import interrupts

        click.echo(f"training done; the live page stays at {page.url} until Ctrl-C")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            page.stop()
            interrupts.forget()  # Ctrl-C is how a server is meant to stop: exit 0
            click.echo("stopped")


@cli.command()
@click.argument("model", required=False)
@model_input_options
@trained_dir_option
@outputs_dir_option
@opens
def info(model, opening) -> None:
    """Layers, shapes, parameters, receptive fields and run metadata of a model.

    MODEL is a bundle name, a bundle folder or a .keras file (default: the newest bundle).

    \b
    Examples:
      cnnviz info
      cnnviz info mnist-article2
      cnnviz info path/to/any_model.keras
    """
    m = opening.load(model)
    click.echo(m.info(opening.outputs_dir))


@cli.command(name="list")
@trained_dir_option
def list_(trained_dir) -> None:
    """The model bundles in trained/ with dataset, epochs, test accuracy and date.

    \b
    Example:
      cnnviz list
    """
    import cnnviz

    rows = cnnviz.bundles(trained_dir)
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
