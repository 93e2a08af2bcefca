"""`cnnviz explain`: why the network made a prediction, with the sanity checks."""

from __future__ import annotations

from pathlib import Path

import click

from cnnviz.cli.flags import say
from cnnviz.cli.group import cli
from cnnviz.images import check_image_file
from cnnviz.cli.options import (figure_options, check_image_choice, check_writable, open_data, open_model, outputs_dir_option,
                                parse_int_list, probe_data_options, record_entries,
                                trained_dir_option)
from cnnviz.errors import UsageError
from cnnviz.explain_methods import BY_NAME, NAMES



@cli.command()
@click.argument("model", required=False)
@click.option("--image", "image_list", metavar="N[,N…]", help="dataset index of the image(s) (default 0)")
@click.option("--digit", type=int, help="explain the first --count images of this class")
@click.option("--count", type=int, help="how many images with --digit (default 6)")
@click.option("--input", "input_file", type=click.Path(path_type=Path),
              help="your own PNG/JPEG instead of a dataset image")
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@click.option("--method", "methods", default="all", show_default=True, metavar="NAMES",
              help=f"a comma list of: {', '.join(NAMES)}")
@click.option("--target", default="predicted", show_default=True, metavar="predicted|true|CLASS",
              help="the class whose logit is explained")
@click.option("--layer", help="Grad-CAM's layer (default: the last layer with positions)")
@click.option("--baseline", type=click.Choice(["black", "mean", "blur"]), default="black",
              show_default=True, help="integrated gradients: the image the path starts from")
@click.option("--steps", type=int, default=50, show_default=True, help="integrated-gradients steps")
@click.option("--samples", type=int, default=50, show_default=True, help="SmoothGrad samples")
@click.option("--patch", type=int, help="occlusion: the side of the black square (default side/7)")
@click.option("--stride", type=int, help="occlusion: pixels between squares (default patch/2)")
@click.option("--batch-size", type=int, default=256, show_default=True,
              help="inputs per forward pass: bounds the memory whatever --steps and --samples")
@click.option("--check", is_flag=True,
              help="also run the sanity checks: cascading randomisation, deletion/insertion, "
                   "completeness")
@probe_data_options
@trained_dir_option
@figure_options
@outputs_dir_option
def explain(model, image_list, digit, count, input_file, split, methods, target, layer, baseline,
            steps, samples, patch, stride, batch_size, check, dataset, data_path, trained_dir,
            outputs_dir) -> None:
    """Why the network made its prediction: which pixels raise the class logit.

    Writes outputs/NAME/explain/explain-IMAGE.png (the input, the top 3, every method's
    map alone and over the image), attributions-*.npz, and with --check check.png and
    check.json; records them in outputs/NAME/manifest.json.

    \b
    Examples:
      cnnviz explain --image 17
      cnnviz explain --digit 4 --count 3 --method integrated-gradients,grad-cam
      cnnviz explain --input my_digit.png --target 7
      cnnviz explain --image 0,1,2,3 --check
    """
    from cnnviz.probes.attribution import METHODS, ExplainSettings

    check_image_choice(image_list, digit, count, input_file)
    if input_file is not None:
        check_image_file(input_file)
    names = METHODS if methods.strip() == "all" else tuple(m.strip() for m in methods.split(",") if m.strip())
    if target not in ("predicted", "true"):
        try:
            target = int(target)
        except ValueError:
            raise UsageError(f"--target {target!r}: use predicted, true or a class index") from None
    settings = ExplainSettings(methods=names, steps=steps, samples=samples, baseline=baseline,
                               patch=patch, stride=stride, layer=layer, batch_size=batch_size)
    images = parse_int_list("--image", image_list) if image_list is not None else None
    loaded = open_model(model, trained_dir)
    if layer is not None:
        from cnnviz.layers import check_layers
        from cnnviz.probes.attribution import check_spatial

        if any(BY_NAME[name].spatial for name in settings.methods):
            check_spatial(loaded.model, layer)  # a known layer, with positions
        else:
            check_layers(loaded.model, [layer], "activations")
    from cnnviz.galleries import activations as picking
    from cnnviz.galleries import explain as gallery

    data = None
    if input_file is None or baseline == "mean":
        data = open_data(loaded, dataset, data_path)
    from cnnviz.model import digit_input

    selection = (picking.select_file(
                     input_file, loaded.image_shape, digit_input(loaded)) if input_file is not None
                 else picking.select_images(data, split, images, digit, 6 if count is None else count))
    mean = None
    if baseline == "mean":
        from cnnviz.probes.attribution import mean_image

        mean = mean_image(data.split("train")[0])
    classes = loaded.model.outputs[0].shape[-1]
    if isinstance(target, int) and not 0 <= target < classes:
        raise UsageError(f"--target {target}: classes are 0–{classes - 1}, or predicted, true")
    if target == "true" and selection.labels is None:
        raise UsageError("--target true needs dataset images (an image file has no label)")
    out = outputs_dir / loaded.folder_name
    check_writable(out)
    options = gallery.ExplainOptions(selection, settings, target, check, mean)
    record_entries(loaded, out, gallery.run(loaded, options, out, say), gallery.FOLDER)
