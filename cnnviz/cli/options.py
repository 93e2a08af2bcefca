"""Shared options and helpers of the commands: Click types and decorators, opening the
model and its data, choosing layers, recording what a command wrote, the page."""

from __future__ import annotations

from pathlib import Path

import click

from cnnviz.data import DATASETS, NORMALIZATIONS
from cnnviz.errors import UsageError
from cnnviz.cli.flags import as_flags
from cnnviz.names import counted
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
    func = click.option("--data", "data_path", type=click.Path(path_type=Path),
                        help="a .npz, a folder of IDX files or of class subfolders of images "
                             "(default: the bundle's own data source)")(func)
    return click.option("--dataset", type=click.Choice(DATASETS), default=None,
                        help="default: the bundle's own dataset (plain models: mnist)")(func)


FIGURE_FORMATS = ("png", "svg", "pdf")


def figure_options(func):
    """--dpi and --format: every figure the command writes, at that resolution, in that
    format (the arrays and the page's map cards are the same in every format)."""
    def enter(ctx, param, value):
        ctx.meta[f"cnnviz.{param.name}"] = value
        if param.name == "format" and (value is not None or ctx.meta.get("cnnviz.dpi") is not None):
            from cnnviz.render.style import figure_output

            ctx.with_resource(figure_output(ctx.meta.get("cnnviz.dpi"), value))
        return value

    func = click.option("--format", "format", type=click.Choice(FIGURE_FORMATS), default=None,
                        expose_value=False, callback=enter, is_eager=False,
                        help="file format of the figures (default png)")(func)
    return click.option("--dpi", type=click.IntRange(30, 1200), default=None, expose_value=False,
                        callback=enter, is_eager=True,
                        help="resolution of the figures in dots per inch (default 110)")(func)


def _keep(ctx, param, value):
    ctx.meta[f"cnnviz.{param.name}"] = value
    return value


def model_input_options(func):
    """--preprocess and --no-resize: how a plain model is fed (read by open_model and
    open_data from the click context, so commands need no parameters for them)."""
    func = click.option("--no-resize", is_flag=True, expose_value=False, callback=_keep,
                        help="refuse images of another size or channel count than the "
                             "model's input instead of converting them")(func)
    return click.option("--preprocess", metavar="unit|raw|symmetric|caffe|torch|MEAN,STD",
                        expose_value=False, callback=_keep,
                        help="how 0–255 pixels become a plain model's input (default: raw "
                             "if it starts with Rescaling/Normalization, else unit = /255)")(func)


STRATEGIES = ("auto", "default", "mirrored", "multi-worker")


def strategy_option(func):
    """--strategy: how tf.distribute shares the command's work (made by open_model, before
    the model is loaded, as a multi-worker strategy must be); --cluster-timeout."""
    func = click.option("--cluster-timeout", type=click.FloatRange(min=0, min_open=True),
                        default=300, show_default=True, metavar="SECONDS", expose_value=False,
                        callback=_keep,
                        help="multi-worker: how long to wait for the other workers of "
                             "TF_CONFIG to start before giving up (exit 1)")(func)
    return click.option("--strategy", type=click.Choice(STRATEGIES), default="auto",
                        show_default=True, expose_value=False, callback=_keep,
                        help="tf.distribute: auto (mirrored when several GPUs are visible, "
                             "else default), default (one device), mirrored (every GPU, else "
                             "every logical CPU, of this machine), multi-worker (the cluster "
                             "in TF_CONFIG; only the chief writes)")(func)


def open_strategy():
    """The command's tf.distribute strategy, made once (the same object on every call), and
    active for the rest of the command; one line says which when it is not one device."""
    ctx = click.get_current_context()
    if "cnnviz.strategy_object" not in ctx.meta:
        from cnnviz import distributed

        strategy = distributed.make_strategy(ctx.meta.get("cnnviz.strategy") or "default",
                                             ctx.meta.get("cnnviz.cluster_timeout") or 300)
        ctx.meta["cnnviz.strategy_object"] = strategy
        ctx.with_resource(distributed.sharing(strategy))
        if distributed.replicas(strategy) > 1 or distributed.workers(strategy) > 1:
            click.echo(distributed.describe(strategy), err=True)
    return ctx.meta["cnnviz.strategy_object"]


def chief_folder(folder: Path) -> Path:
    """Where this process writes `folder` until the command ends (distributed.writes_to);
    a worker that is not the chief says where its copy goes."""
    from cnnviz import distributed

    where = click.get_current_context().with_resource(
        distributed.writes_to(folder, open_strategy()))
    if where != folder:
        click.echo(f"note: this worker's copy of {folder.name} goes to {where.parent}, removed "
                   f"when it ends; the chief writes {folder}", err=True)
    return where


def _context_value(name: str):
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get(f"cnnviz.{name}") if ctx is not None else None


def setting_options(func):
    for flag, key, kind, text in reversed(SETTING_FLAGS):
        func = click.option(flag, key, type=kind, default=None, help=text)(func)
    return func


def has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def open_model(model: str | None, trained_dir: Path, err: bool = False):
    """Import TensorFlow quietly, load the model (a bundle, a .keras file, or the newest
    bundle) and say which one was taken when none was named."""
    from cnnviz.runtime import import_tensorflow

    import_tensorflow()
    if click.get_current_context().meta.get("cnnviz.strategy") is not None:
        open_strategy()
    from cnnviz.model import input_note, load_model

    loaded = load_model(model, trained_dir, preprocess=_context_value("preprocess"))
    if loaded.ref.note:
        click.echo(as_flags(loaded.ref.note), err=err)
    note = input_note(loaded.preprocessing)
    if note:
        click.echo(as_flags(note), err=err)
    return loaded


def open_data(loaded, dataset: str | None, data_path: Path | None, err: bool = False):
    """The data the model was trained on (or the one given), converted to its input, with
    a line saying which (and one per conversion)."""
    import socket

    from cnnviz.data import dataset_for

    socket.setdefaulttimeout(30)  # a stalled download gives up (this process is the CLI's)
    data = dataset_for(loaded, dataset, data_path, resize=not _context_value("no_resize"))
    click.echo(f"data: {data.describe()}", err=err)
    for note in data.notes:
        click.echo(f"note: {as_flags(note)}", err=err)
    return data


def check_image_choice(image_list, digit, count, input_file) -> None:
    """--image, --digit and --input exclude each other; --count goes with --digit."""
    chosen = [flag for flag, value in (("--image", image_list), ("--digit", digit),
                                       ("--input", input_file)) if value is not None]
    if len(chosen) > 1:
        raise UsageError(f"{' and '.join(chosen)} exclude each other: choose one way to pick images")
    if count is not None and digit is None:
        raise UsageError("--count goes with --digit (how many images of that class)")


def chosen_layers(model, layer_specs: tuple[str, ...], default: str = "all",
                  probe: str = "activations") -> list[str]:
    """--layer values → layer names in model order; `all` means every layer the probe takes
    (cnnviz.layers decides), and a named layer it cannot take is refused before any work."""
    from cnnviz.layers import check_layers, layers_for
    from cnnviz.model import resolve_layers

    spec = ",".join(layer_specs) or default
    layers = resolve_layers(model, spec)
    if spec.strip().lower() == "all":
        qualifying = set(layers_for(model, probe))
        return [name for name in layers if name in qualifying]
    check_layers(model, layers, probe)
    return layers


def check_writable(folder: Path) -> None:
    from cnnviz.galleries.record import prepare

    prepare(folder)


def record_entries(loaded, out: Path, entries: list[dict], folder: str | None,
                   refresh: bool = True) -> None:
    """Add the written files to the gallery's manifest and say where they are (folder None:
    quietly), then rebuild the page if there is one (unless the caller will)."""
    from cnnviz.galleries.record import record

    manifest = record(loaded, out, entries)
    if folder is not None:
        written = len({e["path"] for e in entries})
        click.echo(f"wrote {counted(written, 'file')} to {out / folder} (listed in {manifest})")
        if refresh:
            refresh_page(out)


def refresh_page(out: Path) -> None:
    """Keep an existing index.html up to date (no page yet: nothing to do)."""
    from cnnviz.render.site import INDEX_FILE

    if (out / INDEX_FILE).is_file():
        write_site(out)


def write_site(out: Path, err: bool = False):
    """Build the HTML page and say where it is (and what it could not show)."""
    from cnnviz.render.site import build_site

    return say_site(build_site(out), out, err)


def say_site(site, out: Path, err: bool = False):
    """Say where the page is, and what it could not show."""
    if site.recovered:
        click.echo(f"note: {out / 'manifest.json'} was missing or corrupt; rebuilt it from the "
                   f"{counted(site.entries, 'file')} on disk", err=err)
    if site.dropped:
        click.echo(f"note: {len(site.dropped)} manifest entries point outside {out} (e.g. "
                   f"{site.dropped[0]}); dropped", err=err)
    if site.missing:
        click.echo(f"note: {counted(len(site.missing), 'file')} listed in the manifest no longer exist "
                   f"(e.g. {site.missing[0]}); left off the page", err=err)
    click.echo(f"page: {site.index} ({counted(site.entries, 'file')}, "
               f"{counted(site.cards, 'map card')}); open it "
               f"in a browser, no server needed", err=err)
    return site


def parse_int_list(flag: str, text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{flag} takes integers separated by commas, got {text!r}") from None
    if not values:
        raise UsageError(f"{flag} takes integers separated by commas, got {text!r}")
    return values


def parse_scales(text: str) -> tuple[int, ...] | None:
    """--scales: `auto` (None: 3, 7, 14, 28 pixels on a 28-pixel input, in proportion on
    others) or a comma list of pixels."""
    if text.strip().lower() == "auto":
        return None
    return tuple(parse_int_list("--scales", text))


def with_scales(settings, scales: tuple[int, ...] | None, image_shape: tuple[int, ...]):
    """The pattern settings with the model's default length scales when none were given."""
    import dataclasses

    from cnnviz.probes.patterns import default_scales

    settings = settings if scales else dataclasses.replace(settings, scales=default_scales(image_shape))
    settings.check_scales(max(image_shape[:2]))
    return settings
