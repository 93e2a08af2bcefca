"""The `cnnviz` group and its entry point: one-line errors, exit 2 for a request that
cannot be right, 1 for a failure, 130 for Ctrl-C."""

from __future__ import annotations

import os
import sys
import warnings

import click

from cnnviz.version import __version__
from cnnviz.cli.flags import as_flags, flag_of
from cnnviz.errors import CnnvizError, CnnvizWarning
from cnnviz.cli.quiet import stderr_to_null
from cnnviz.runtime import quiet_imports

quiet_imports(stderr_to_null)  # before anything imports TensorFlow (the command line's process)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="cnnviz")
@click.option("--trust-model", is_flag=True, envvar="CNNVIZ_TRUST_MODEL",
              help="load .keras files even when that could run code stored in them "
                   "(Lambda layers); only for files you trust (env CNNVIZ_TRUST_MODEL=1)")
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
    Live:        cnnviz serve                 (draw a digit, watch every layer answer)
    Two runs:    cnnviz train --runs 2 --name b && cnnviz compare b-1 b-2
    Galleries go to outputs/NAME/ (index.html, manifest.json).
    """
    import socket

    socket.setdefaulttimeout(30)  # a stalled download gives up (this process is the CLI's)


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors, exit 2 for usage errors, 1 for failures, 130 for Ctrl-C."""
    import threading

    from cnnviz import interrupts

    if threading.current_thread() is threading.main_thread():
        interrupts.install()
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            code = cli.main(args=argv, prog_name="cnnviz", standalone_mode=False)
        interrupts.raise_if_received()
    except click.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        _fail(f"{exc.format_message()}{hint}", 2)
    except CnnvizError as exc:  # library parameters shown as their flags
        _fail(as_flags(exc.as_flag(flag_of(exc.param))), exc.exit_code)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except (KeyboardInterrupt, click.Abort):
        _fail("interrupted", 130)
    except OSError as exc:  # disk full, permissions, a file vanishing under us
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(f"{where}{exc.strerror or exc}", 1)
    except Exception as exc:  # a bug: still one line, traceback on request
        if interrupts.received():  # Ctrl-C landed inside C code, which then failed
            _fail("interrupted", 130)
        if _lost_worker(exc) and not os.environ.get("CNNVIZ_DEBUG"):
            _fail("another worker of the cluster in TF_CONFIG stopped answering (its own "
                  "output says why); start every worker again (train: with --resume)", 1)
        if os.environ.get("CNNVIZ_DEBUG"):
            raise
        _fail(f"unexpected {type(exc).__name__}: {exc} (set CNNVIZ_DEBUG=1 for the traceback)", 1)
    sys.exit(code if isinstance(code, int) else 0)


def _lost_worker(exc: Exception) -> bool:
    """A collective of a multi-worker strategy failed because a peer went away."""
    return bool(os.environ.get("TF_CONFIG")) and type(exc).__module__.startswith("tensorflow") \
        and type(exc).__name__ in ("UnavailableError", "CancelledError", "AbortedError")


def _show_warning(message, category, *_args, **_kwargs) -> None:
    """cnnviz's own warnings as one `warning:` line; other libraries' are not shown."""
    if issubclass(category, CnnvizWarning):
        click.echo(f"warning: {' '.join(as_flags(message).split())}", err=True)


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {' '.join(str(message).split())}", err=True)
    sys.exit(code)
