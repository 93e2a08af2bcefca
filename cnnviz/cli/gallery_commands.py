"""`cnnviz atlas`, `gallery`, `compare`: whole galleries and their pages."""

from __future__ import annotations

import json

import click

from cnnviz.cli.flags import say
from cnnviz.cli.group import cli
from cnnviz.cli.options import (FINITE, figure_options, opens, outputs_dir_option,
                                probe_data_options, progress_bars, strategy_option,
                                trained_dir_option)


@cli.command()
@click.argument("model", required=False)
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True,
              help="images for the per-class samples and the statistics")
@click.option("--limit", type=int, help="statistics over only the first N images of the split")
@click.option("--top", type=int, default=9, show_default=True, help="top-activating images per map")
@click.option("--steps", type=int, default=50, show_default=True, help="gradient-ascent steps")
@click.option("--step-size", type=FINITE, default=0.5, show_default=True,
              help="Adam step at the start in pixels/255 (decays to a tenth)")
@click.option("--scales", default="auto", show_default=True,
              help="length scales of the start noise (auto: 3,7,14,28 on 28 pixels, in proportion)")
@click.option("--starts", type=int, default=1, show_default=True,
              help="smooth-noise starts per scale")
@click.option("--pixel-starts", type=int, default=2, show_default=True,
              help="starts of noise per pixel (the filters command's default is 6)")
@click.option("--data-starts", type=int, default=2, show_default=True,
              help="starts from each map's top images of --split (filters: 4)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--explain/--no-explain", "why", default=True, show_default=True,
              help="the why section: every explanation method for one image per class")
@click.option("--layer", "layer_specs", multiple=True, metavar="NAMES",
              help="layers for every stage: a comma list, or all (default: every layer of a "
                   "small model; of a big one, the last layer of each resolution)")
@probe_data_options
@trained_dir_option
@figure_options
@strategy_option
@outputs_dir_option
@opens
def atlas(model, split, limit, top, steps, step_size, scales, starts, pixel_starts,
          data_starts, seed, why, layer_specs, opening) -> None:
    """Everything about a model in one run, then the HTML page to browse it.

    Training curves; every layer for the first test image of each class; the best input
    pattern (with its evolution) and the kernels of every conv layer; statistics and
    top-k examples of every layer; why the first test image of each class is predicted as
    it is (every explanation method); then outputs/NAME/index.html with a card per map.

    \b
    Examples:
      cnnviz atlas
      cnnviz atlas mnist-article2 --steps 200 --top 16
    """
    import time

    started = time.perf_counter()
    m = opening.load(model)
    m.data()
    click.echo(f"loaded in {time.perf_counter() - started:.1f} s")
    m.atlas(m.gallery_dir(opening.outputs_dir), steps, top, split, limit,
            layers=",".join(layer_specs) or None, explain=why, progress=progress_bars(),
            step_size=step_size, scales=scales, starts=starts, pixel_starts=pixel_starts,
            data_starts=data_starts, seed=seed, **opening.figures)
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
    import cnnviz

    page = cnnviz.page(model, outputs_dir, trained_dir, say)
    if open_page:
        import webbrowser

        webbrowser.open(page.resolve().as_uri())


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
@figure_options
@strategy_option
@outputs_dir_option
@opens
def compare(first, second, layer_specs, split, limit, as_json, opening) -> None:
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
    import cnnviz

    a = opening.load(first, err=as_json)
    b = opening.load(second, err=as_json)
    result = cnnviz.compare(a, b, opening.outputs_dir, ",".join(layer_specs) or None, split,
                            limit, **opening.figures)
    if as_json:
        click.echo(json.dumps(result.summary(), indent=2))
        return
    click.echo(f"{'layer':<8} {'maps':>5} {'matched':>8} {'>0.8':>6} {'>0.5':>6} {'same idx':>9} "
               f"{'untrained':>10} {'constant A/B':>13} {'tied':>5}")
    for layer, n in result.numbers().items():
        click.echo(f"{layer:<8} {n['maps']:>5} {n['mean_similarity']:>8.3f} {n['above_0_8']:>6.0%} "
                   f"{n['above_0_5']:>6.0%} {n['same_index']:>9.0%} "
                   f"{n['baseline_mean_similarity']:>10.3f} "
                   f"{str(n['constant_a']) + '/' + str(n['constant_b']):>13} {n['tied']:>5}"
                   + (f"   (kernels: {n['kernel_mean_similarity']:.3f}, untrained "
                      f"{n['baseline_kernel_mean_similarity']:.3f})"
                      if "kernel_mean_similarity" in n else ""))
    click.echo("constant: maps with one value on every image (two constant maps count as "
               "similarity 1); tied: maps whose partner could be swapped at the same total")
