"""Where everything lives inside a gallery folder (outputs/NAME/), named once.

Recipes (galleries/) write these paths and the page (render/cards.py) reads them; both
import this module, so a rename happens here only. Paths are relative, with "/" separators,
and every layer part is a safe slug (cnnviz.names).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnviz.errors import UsageError
from cnnviz.names import slug
from cnnviz.techniques import folder

TRAIN, ACTIVATIONS, FILTERS, KERNELS, STATS, EXPLAIN, COMPARE, TRACE, VERIFY, GEOMETRY, EPOCHS = (
    folder(name) for name in ("train", "activations", "filters", "kernels", "stats", "explain",
                              "compare", "trace", "verify", "geometry", "epochs"))
CURVES = f"{TRAIN}/curves.png"
STATS_JSON = f"{STATS}/stats.json"
STATS_CSV = f"{STATS}/stats.csv"
TOP_EXAMPLES = f"{STATS}/top_examples.npz"  # keys: LAYER, LAYER_score, LAYER_pixels (+ fields)
KERNELS_KEY = "kernels"                     # (kh, kw, in, out) in kernels_arrays(layer)
CARDS_DIR = "cards"                         # the page's map cards: cards/LAYER/map-007.html


def card_file(index: int) -> str:
    """A map card's file name inside cards/LAYER/."""
    return f"map-{index:03d}.html"


def card_url(layer: str, index: int) -> str:
    """A map card's path inside the gallery folder, with "/" separators."""
    return f"{CARDS_DIR}/{slug(layer)}/{card_file(index)}"


def layer_file(folder: str, layer: str, stem: str, suffix: str) -> str:
    """FOLDER/LAYER/STEM-LAYER.SUFFIX, the layer as a slug."""
    place = slug(layer)
    return f"{folder}/{place}/{stem}-{place}.{suffix}"


def patterns_arrays(layer: str) -> str:
    """The .npz of a layer's patterns: input, pixels (M, H, W[, C]), objective, maps, …"""
    return layer_file(FILTERS, layer, "patterns", "npz")


def kernels_arrays(layer: str) -> str:
    return layer_file(KERNELS, layer, "kernels", "npz")


def top_keys(layer: str) -> tuple[str, str]:
    """The keys of a layer's dataset indices (maps, k) and scores in TOP_EXAMPLES."""
    return layer, f"{layer}_score"


# The top images themselves are stored once, shared by every layer and map: TOP_PIXELS (the
# distinct images, (N, H, W[, C])) and TOP_PIXELS_INDEX (their dataset indices, sorted).
TOP_PIXELS, TOP_PIXELS_INDEX = "~pixels", "~pixels_index"  # no layer is named so


def top_pixels(arrays, layer: str, maps=slice(None)):
    """The pixels of the top images of a layer's maps (maps, k, H, W[, C]) from the arrays
    of TOP_EXAMPLES (an open .npz or a dict)."""
    index = arrays[layer][maps]
    return arrays[TOP_PIXELS][np.searchsorted(arrays[TOP_PIXELS_INDEX], index)]


def top_field_keys(layer: str) -> tuple[str, str]:
    """The keys, in TOP_EXAMPLES, of where each map fires hardest on its top images
    (maps, k, 2: row, column of the layer's output) and the input box that position sees
    (maps, k, 4: top, left, bottom, right, exclusive); for spatial layers, the first
    FIELD_MAPS maps."""
    return f"{layer}_position", f"{layer}_box"


FIELD_MAPS = 256


def gallery_folder(name: str | None, outputs_dir: Path, trained_dir: Path) -> Path:
    """A gallery's folder: OUTPUTS_DIR/NAME for a gallery name or a bundle's name (None:
    the newest bundle's)."""
    from cnnviz import bundle

    if name is not None and (not isinstance(name, str) or name != slug(name)
                             or name in ("", ".", "..")):
        raise UsageError(f"gallery {name!r}: give the name of a gallery in {outputs_dir} "
                         "(no path, no '..'), or a bundle name; see outputs_dir=", "name")
    if name is not None and (outputs_dir / name).is_dir():
        return outputs_dir / name
    return outputs_dir / slug(bundle.resolve(name, trained_dir).name)
