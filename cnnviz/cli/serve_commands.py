"""`cnnviz serve`: the live page on a local HTTP server."""

from __future__ import annotations

from pathlib import Path

import click

from cnnviz.cli.group import cli
from cnnviz.cli.options import opens, outputs_dir_option, probe_data_options, trained_dir_option
from cnnviz.errors import CnnvizError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@cli.command()
@click.argument("model", required=False)
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="the port to listen on (0: any free one)")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="the address to listen on; anything but this machine's loopback lets "
                   "others use the page")
@click.option("--open", "open_browser", is_flag=True, help="open the page in the browser")
@click.option("--atlas", "atlas_dir", type=click.Path(file_okay=False, path_type=Path),
              help="the static atlas to serve at /atlas/ (default: OUTPUTS_DIR/NAME)")
@click.option("--verbose", is_flag=True, help="log every request to stderr")
@probe_data_options
@trained_dir_option
@outputs_dir_option
@opens
def serve(model, port, host, open_browser, atlas_dir, verbose, opening) -> None:
    """A live page: draw a digit and watch every layer answer.

    Serves http://127.0.0.1:8765/ until Ctrl-C: a drawing canvas, uploads and test images
    in; the prediction, every layer's maps, saliency and Grad-CAM out; the model's atlas
    (outputs/NAME/) at /atlas/; a JSON API at /api (POST /api/predict, /api/explain).

    \b
    Examples:
      cnnviz serve
      cnnviz serve mnist-article2 --port 0 --open
      curl -s --data-binary @digit.png localhost:8765/api/predict
    """
    from cnnviz import interrupts
    from cnnviz.serve.live import Live
    from cnnviz.serve.running import serve_until_interrupted
    from cnnviz.serve.server import make_server

    m = opening.load(model)
    try:
        m.data()
    except CnnvizError as exc:
        click.echo(f"note: no dataset images to pick from ({exc})")
    atlas = atlas_dir if atlas_dir is not None else m.gallery_dir(opening.outputs_dir)
    live = Live(m, atlas)
    log = (lambda line: click.echo(line, err=True)) if verbose else None
    server = make_server(live, host, port, log)  # a taken port fails before any work
    live.warm_up()
    if host not in LOOPBACK:
        click.echo(f"warning: listening on {host}: anyone who can reach this machine can use "
                   "the page and the API", err=True)
    click.echo(f"atlas: {atlas}" if live.has_atlas() else
               f"atlas: none at {atlas} (cnnviz atlas {m.name} builds it)")
    click.echo(f"serving {m.name} at {server.url}  (Ctrl-C stops)", nl=True)
    if open_browser:
        import webbrowser

        webbrowser.open(server.url)
    serve_until_interrupted(server)
    interrupts.forget()  # Ctrl-C is how a server is meant to stop: exit 0
    click.echo("stopped")
