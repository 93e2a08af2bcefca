"""`cnnviz atlas`, `gallery`, `compare`: whole galleries and their pages."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cnnviz import bundle
from cnnviz.cli.flags import say
from cnnviz.cli.group import cli
from cnnviz.cli.progress import progress_bar
from cnnviz.cli.options import (chief_folder, figure_options, strategy_option, FINITE, check_writable, chosen_layers, open_data, open_model,
                                outputs_dir_option, parse_scales, probe_data_options, say_site,
                                trained_dir_option, with_scales, write_site)
from cnnviz.errors import UsageError


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
def atlas(model, split, limit, top, steps, step_size, scales, starts, pixel_starts,
          data_starts, seed, why, layer_specs, dataset,
          data_path, trained_dir, outputs_dir) -> None:
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
    loaded = open_model(model, trained_dir)
    from cnnviz.galleries.atlas import atlas_settings, run_atlas
    from cnnviz.probes.patterns import DEFAULT_SCALES

    given = parse_scales(scales)
    settings = with_scales(atlas_settings(steps, step_size, given or DEFAULT_SCALES, starts, seed,
                                           pixel_starts, data_starts),
                           given, loaded.image_shape)
    data = open_data(loaded, dataset, data_path)
    click.echo(f"loaded in {time.perf_counter() - started:.1f} s")
    out = chief_folder(outputs_dir / loaded.folder_name)
    site = run_atlas(loaded, data, out, settings, split, limit, top,
                     report=say, layers=",".join(layer_specs) or None,
                     bar=lambda label, length: progress_bar(length, label),
                     skip=() if why else ("explain",))
    say_site(site, out)
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

    folder = outputs_dir / gallery_name(model, outputs_dir, trained_dir)
    check_gallery(folder)
    site = write_site(folder)
    if open_page:
        import webbrowser

        webbrowser.open(site.index.resolve().as_uri())


def gallery_name(model: str | None, outputs_dir: Path, trained_dir: Path) -> str:
    """A gallery's folder name inside --outputs-dir: a gallery name, or a bundle's name."""
    from cnnviz.names import slug

    if model is not None and (model != slug(model) or model in ("", ".", "..")):
        raise UsageError(f"gallery {model!r}: give the name of a gallery in {outputs_dir} "
                         "(no path, no '..'), or a bundle name; see --outputs-dir")
    if model is not None and (outputs_dir / model).is_dir():
        return model
    return slug(bundle.resolve(model, trained_dir).name)


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
    loaded = open_model(first, trained_dir, err=as_json)
    from cnnviz.galleries import compare as recipe

    other = open_model(second, trained_dir, err=as_json)
    default = ",".join(recipe.default_layers(loaded.model))
    layers = chosen_layers(loaded.model, layer_specs, default)
    data = open_data(loaded, dataset, data_path, err=as_json)
    recipe.comparable(loaded.model, other.model, layers)  # refuse before any folder exists
    from cnnviz.names import slug

    name = slug(f"compare-{loaded.folder_name}-{other.folder_name}")
    out = chief_folder(outputs_dir / name)
    check_writable(out)  # before the comparison, not after it
    result = recipe.compare(loaded, other, layers, data, split, limit)
    for layer, why in result.skipped.items():
        click.echo(f"note: {layer} skipped: {why}", err=as_json)
    entries = recipe.write_comparison(result, loaded, other, out,
                                      (outputs_dir / loaded.folder_name, outputs_dir / other.folder_name),
                                      data.class_names)
    numbers = result.numbers()
    from cnnviz.galleries.record import record

    record(loaded, out, entries, model=recipe.comparison_card(result, loaded, name))
    if as_json:
        click.echo(json.dumps(result.summary(), indent=2))
        write_site(out, err=True)
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
    write_site(out)
