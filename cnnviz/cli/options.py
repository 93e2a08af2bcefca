"""Shared options of the commands: Click types and decorators, and the Opening they make
(the parameters of cnnviz.load and of the figures)."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path

import click

from cnnviz.data import DATASETS, NORMALIZATIONS
from cnnviz.errors import UsageError
from cnnviz.cli.flags import as_flags, say
from cnnviz.spec import (ACTIVATIONS, OPTIMIZERS, OUTPUT_ACTIVATIONS, REG_SCOPES, REGULARIZERS,
                         SCHEDULES)


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
    """--dataset / --data for commands that read images: default, the bundle's own data;
    and the model input options."""
    func = model_input_options(func)
    func = click.option("--epoch", type=int, metavar="K", default=None,
                        help="the bundle as it was after epoch K (0: before training), from a "
                             "run trained with --snapshots")(func)
    func = click.option("--data", "data_path", type=click.Path(path_type=Path),
                        help="a .npz, a folder of IDX files or of class subfolders of images "
                             "(default: the bundle's own data source)")(func)
    return click.option("--dataset", type=click.Choice(DATASETS), default=None,
                        help="default: the bundle's own dataset (plain models: mnist)")(func)


FIGURE_FORMATS = ("png", "svg", "pdf")


def figure_options(func):
    """--dpi and --format: every figure the command writes, at that resolution, in that
    format (the arrays and the page's map cards are the same in every format)."""
    func = click.option("--format", "format", type=click.Choice(FIGURE_FORMATS), default=None,
                        help="file format of the figures (default png)")(func)
    return click.option("--dpi", type=click.IntRange(30, 1200), default=None,
                        help="resolution of the figures in dots per inch (default 110)")(func)


def model_input_options(func):
    """--preprocess and --no-resize: how a plain model is fed."""
    func = click.option("--no-resize", is_flag=True,
                        help="refuse images of another size or channel count than the "
                             "model's input instead of converting them")(func)
    return click.option("--preprocess", metavar="unit|raw|symmetric|caffe|torch|MEAN,STD",
                        help="how 0–255 pixels become a plain model's input (default: raw "
                             "if it starts with Rescaling/Normalization, else unit = /255)")(func)


STRATEGIES = ("auto", "default", "mirrored", "multi-worker")


def strategy_option(func):
    """--strategy: how tf.distribute shares the command's work (made by cnnviz.load, before
    the model is read, as a multi-worker strategy must be); --cluster-timeout."""
    func = click.option("--cluster-timeout", type=click.FloatRange(min=0, min_open=True),
                        default=300, show_default=True, metavar="SECONDS",
                        help="multi-worker: how long to wait for the other workers of "
                             "TF_CONFIG to start before giving up (exit 1)")(func)
    return click.option("--strategy", type=click.Choice(STRATEGIES), default="auto",
                        show_default=True,
                        help="tf.distribute: auto (mirrored when several GPUs are visible, "
                             "else default), default (one device), mirrored (every GPU, else "
                             "every logical CPU, of this machine), multi-worker (the cluster "
                             "in TF_CONFIG; only the chief writes)")(func)


@dataclass
class Opening:
    """What the options of a command say about opening its model and drawing its figures:
    the parameters of cnnviz.load (and of the gallery calls' dpi and format)."""

    trained_dir: Path = Path("trained")
    dataset: str | None = None
    data_path: Path | None = None
    preprocess: str | None = None
    no_resize: bool = False
    strategy: str | None = None
    cluster_timeout: float = 300
    dpi: int | None = None
    format: str | None = None
    outputs_dir: Path = Path("outputs")
    trust_model: bool = False
    epoch: int | None = None
    said_sharing: bool = False

    def load(self, model: str | None, err: bool = False):
        """cnnviz.load with these options; its lines printed (to stderr with `err`)."""
        import cnnviz

        opened = cnnviz.load(model, self.trained_dir, data=self.data_path, dataset=self.dataset,
                             preprocess=self.preprocess, resize=not self.no_resize,
                             trust_model=self.trust_model, strategy=self.strategy,
                             cluster_timeout=self.cluster_timeout, epoch=self.epoch,
                             report=say_err if err else say)
        if opened.sharing and not self.said_sharing:
            click.echo(opened.sharing, err=True)
            self.said_sharing = True
        return opened

    @property
    def figures(self) -> dict:
        return {"dpi": self.dpi, "format": self.format}


def opens(func):
    """Collect the opening options of a command into one `opening` argument (Opening)."""
    keys = [f.name for f in dataclasses.fields(Opening)]

    @functools.wraps(func)
    def command(*args, **kwargs):
        given = {key: kwargs.pop(key) for key in keys if key in kwargs}
        root = click.get_current_context().find_root()
        given["trust_model"] = bool(root.params.get("trust_model"))
        return func(*args, opening=Opening(**given), **kwargs)

    return command


def say_err(line: str = "") -> None:
    """A line from the library on stderr (stdout holds the command's JSON)."""
    click.echo(as_flags(line), err=True)


def progress_bars():
    """The library's progress as the command line's bars (none off a terminal)."""
    from cnnviz.cli.progress import progress_bar
    from cnnviz.progress import Bars

    return Bars(lambda label, length: progress_bar(length, label))


def setting_options(func):
    for flag, key, kind, text in reversed(SETTING_FLAGS):
        func = click.option(flag, key, type=kind, default=None, help=text)(func)
    return func


def parse_int_list(flag: str, text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{flag} takes integers separated by commas, got {text!r}") from None
    if not values:
        raise UsageError(f"{flag} takes integers separated by commas, got {text!r}")
    return values
