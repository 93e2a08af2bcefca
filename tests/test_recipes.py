"""One contract for every registered recipe (cnnviz.techniques): the same signature, and it
writes exactly the files its manifest entries list, all inside its own folder. A technique
registered later fails here until its small options are added below."""

from __future__ import annotations

import importlib
import inspect

import numpy as np
import pytest

from cnnviz.techniques import TECHNIQUES

RECIPES = [t for t in TECHNIQUES if t.recipe is not None]


def small_options(name: str, loaded, data):
    """Options that make each recipe write a little of everything it writes."""
    from cnnviz.galleries.activations import ActivationOptions, select_images
    from cnnviz.galleries.explain import ExplainOptions
    from cnnviz.galleries.filters import PatternOptions
    from cnnviz.galleries.kernels import KernelOptions
    from cnnviz.galleries.stats import StatsOptions
    from cnnviz.probes.attribution import ExplainSettings
    from cnnviz.probes.patterns import PatternSettings

    one = select_images(data, "test", [0])
    return {
        "activations": lambda: ActivationOptions(("conv1",), loaded.classes(), one,
                                                 save_arrays=True),
        "filters": lambda: PatternOptions("conv1", PatternSettings(steps=2, scales=(7,),
                                                                   data_starts=0),
                                          np.arange(2), save_arrays=True),
        "kernels": lambda: KernelOptions(("conv1",)),
        "stats": lambda: StatsOptions(("conv1",), data, limit=40, top=2),
        "explain": lambda: ExplainOptions(one, ExplainSettings(methods=("saliency",))),
    }[name]()


@pytest.mark.parametrize("technique", RECIPES, ids=[t.name for t in RECIPES])
def test_every_recipe_writes_what_it_lists_in_its_own_folder(technique, loaded, small_npz, tmp_path):
    from cnnviz.data import dataset_for

    recipe = importlib.import_module(f"cnnviz.galleries.{technique.recipe}")
    assert list(inspect.signature(recipe.run).parameters) == ["loaded", "options", "out",
                                                              "report", "progress"]
    data = dataset_for(loaded, path=small_npz)
    entries = recipe.run(loaded, small_options(technique.name, loaded, data), tmp_path,
                         lambda line: None, lambda steps: None)
    listed = {e["path"] for e in entries}
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert listed and listed == written
    assert all(path.startswith(f"{technique.name}/") for path in listed)


def test_the_page_the_atlas_and_the_folders_follow_the_registry():
    from cnnviz import layout
    from cnnviz.galleries.atlas import STAGES
    from cnnviz.render.site import AFTER_LAYERS, COMMAND_ORDER

    assert COMMAND_ORDER == tuple(t.name for t in TECHNIQUES)
    assert [label for label, _ in STAGES] == [t.atlas for t in TECHNIQUES if t.atlas]
    assert set(AFTER_LAYERS) == {t.name for t in TECHNIQUES if t.section == "after"}
    assert layout.EXPLAIN == "explain" and layout.FILTERS == "filters"
