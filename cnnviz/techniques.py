"""The techniques of cnnviz, registered once: the name (the command and the gallery folder),
its heading on the page, where the page shows it, its stage in the atlas and its recipe
(the module of cnnviz.galleries whose `run(loaded, options, out, report, progress)` writes
it). The gallery folders (cnnviz.layout), the page's sections (render/site.py) and the
atlas's stages (galleries/atlas.py) are read from here. Imports nothing heavy.

Adding a technique: a probe module, a renderer, a recipe, and one line here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Technique:
    name: str            # the command, and the gallery folder outputs/NAME/<name>/
    title: str           # its heading on the page
    section: str         # where the page shows it: "model" (the top), "layer" (each layer's
    #                      section) or "after" (a section of its own after the layers)
    atlas: str | None    # the atlas stage's label, None when the atlas does not run it
    recipe: str | None   # the module in cnnviz.galleries with its run(), None: it has
    #                      none of that shape (train writes bundles; compare takes two models)


TECHNIQUES = (
    Technique("train", "train", "model", "curves", None),
    Technique("verify", "verify", "model", "verify", "verify"),
    Technique("activations", "activations", "layer", "activations", "activations"),
    Technique("filters", "filters", "layer", "patterns", "filters"),
    Technique("kernels", "kernels", "layer", "kernels", "kernels"),
    Technique("stats", "stats", "layer", "stats", "stats"),
    Technique("epochs", "over training", "layer", "epochs", "epochs"),
    Technique("explain", "Why (explain)", "after", "explain", "explain"),
    Technique("trace", "Arithmetic (trace)", "after", None, "trace"),
    Technique("geometry", "Geometry (probes, PCA, CKA)", "after", "geometry", "geometry"),
    Technique("compare", "compare", "model", None, None),  # two models: galleries/compare.py
)
BY_NAME = {technique.name: technique for technique in TECHNIQUES}


def folder(name: str) -> str:
    """The gallery folder of a registered technique."""
    return BY_NAME[name].name
