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


def small_options(name: str, loaded, data, snapped=None):
    """Options that make each recipe write a little of everything it writes."""
    from cnnviz.galleries.activations import ActivationOptions, select_images
    from cnnviz.galleries.epochs import EpochsOptions
    from cnnviz.galleries.explain import ExplainOptions
    from cnnviz.galleries.geometry import GeometryOptions
    from cnnviz.galleries.filters import PatternOptions
    from cnnviz.galleries.kernels import KernelOptions
    from cnnviz.galleries.stats import StatsOptions
    from cnnviz.galleries.trace import TraceOptions
    from cnnviz.galleries.verify import VerifyOptions
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
        "verify": lambda: VerifyOptions(np.asarray(data.x_test[:4])),
        "trace": lambda: TraceOptions("conv2", 1, (2, 3), one.pixels[0], one.stem(0)),
        "geometry": lambda: GeometryOptions(("conv3", "dense1"), data, limit=60),
        "epochs": lambda: EpochsOptions(snapped / "a2", (0, 1), ("conv2",), data),
    }[name]()


@pytest.mark.parametrize("technique", RECIPES, ids=[t.name for t in RECIPES])
def test_every_recipe_writes_what_it_lists_in_its_own_folder(technique, loaded, small_npz, tmp_path,
                                                              snapped):
    from cnnviz.data import dataset_for
    from cnnviz.model import load_model

    if technique.name == "epochs":  # a bundle with snapshots
        loaded = load_model("a2", snapped)

    recipe = importlib.import_module(f"cnnviz.galleries.{technique.recipe}")
    assert list(inspect.signature(recipe.run).parameters) == ["loaded", "options", "out",
                                                              "report", "progress"]
    data = dataset_for(loaded, path=small_npz)
    entries = recipe.run(loaded, small_options(technique.name, loaded, data, snapped), tmp_path,
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
    from cnnviz.galleries.atlas import DRAW_EARLY

    labels = [label for label, _ in STAGES]  # every stage once: the model's first, then the
    assert sorted(labels) == sorted(t.atlas for t in TECHNIQUES if t.atlas)  # long drawings
    assert labels[:4] == ["curves", "verify", "stats", "explain"] and DRAW_EARLY == (
        "stats", "explain")
    assert set(AFTER_LAYERS) == {t.name for t in TECHNIQUES if t.section == "after"}
    assert layout.EXPLAIN == "explain" and layout.FILTERS == "filters"


# What each technique's request looks like through the one door (Inspected.gallery)
SMALL_REQUESTS = {
    "activations": dict(layers="conv1", images=[0], save_arrays=True),
    "filters": dict(layers="conv1", maps="0-1", steps=2, scales="7", data_starts=0,
                    save_arrays=True),
    "kernels": dict(layers="conv1"),
    "stats": dict(layers="conv1", limit=40, top=2),
    "explain": dict(images=[0], methods="saliency"),
    "verify": dict(images=4),
    "trace": dict(layer="conv2", map=1, at=(2, 3)),
    "geometry": dict(layers="conv3,dense1", limit=60),
    "epochs": dict(layers="conv2"),
}


@pytest.mark.parametrize("technique", RECIPES, ids=[t.name for t in RECIPES])
def test_every_recipe_checks_its_request_and_records_what_it_writes(technique, trained, small_npz,
                                                                    tmp_path, snapped):
    import json

    import cnnviz

    recipe = importlib.import_module(f"cnnviz.galleries.{technique.recipe}")
    assert list(inspect.signature(recipe.request).parameters)[0] == "m"
    lines: list[str] = []
    m = cnnviz.load("a2", trained_dir=snapped if technique.name == "epochs" else trained,
                    data=small_npz, report=lines.append)
    wrong = {"explain": dict(methods="nosuch"), "verify": dict(images=0),
             "trace": dict(layer="nosuch")}.get(technique.name, dict(layers="nosuch"))
    with pytest.raises(cnnviz.UsageError,
                       match="unknown layer nosuch|method 'nosuch'|images must be ≥ 1"):
        m.gallery(technique.name, tmp_path / "refused", **wrong)
    assert not (tmp_path / "refused").exists()  # refused before the folder was touched
    written = m.gallery(technique.name, tmp_path / "g", progress=False,
                        **SMALL_REQUESTS[technique.name])
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    listed = {e["path"] for e in manifest["entries"]}
    on_disk = {p.relative_to(tmp_path / "g").as_posix() for p in (tmp_path / "g").rglob("*")
               if p.is_file() and p.name != "manifest.json" and not p.name.startswith(".")}
    assert set(written.files) == listed == on_disk and listed
    assert any(line.startswith(f"wrote {len(listed)} file") for line in lines), lines


def test_the_command_and_the_library_write_the_same_files(trained, small_npz, tmp_path, run_cli):
    import cnnviz

    done = run_cli("activations", "a2", "--layer", "conv1,pool1", "--image", "3,5",
                   "--save-arrays", "--trained-dir", trained, "--data", small_npz,
                   "--outputs-dir", tmp_path / "cli")
    assert done.code == 0, done.output
    cnnviz.load("a2", trained_dir=trained, data=small_npz).gallery(
        "activations", tmp_path / "lib" / "a2", layers="conv1,pool1", images=[3, 5],
        save_arrays=True)
    files = {p.relative_to(tmp_path / "cli" / "a2").as_posix()
             for p in (tmp_path / "cli" / "a2").rglob("*") if p.is_file()}
    assert files == {p.relative_to(tmp_path / "lib" / "a2").as_posix()
                     for p in (tmp_path / "lib" / "a2").rglob("*") if p.is_file()}
    arrays = [np.load(root / "a2" / "activations" / "test-image-00003-and-1-more.npz")
              for root in (tmp_path / "cli", tmp_path / "lib")]
    assert all(np.array_equal(arrays[0][k], arrays[1][k]) for k in arrays[0].files)


def test_an_unknown_technique_lists_the_registered_ones(trained, small_npz):
    import cnnviz

    m = cnnviz.load("a2", trained_dir=trained, data=small_npz)
    names = ", ".join(t.name for t in RECIPES)
    with pytest.raises(cnnviz.UsageError, match=f"technique must be one of {names}, got 'nosuch'"):
        m.gallery("nosuch")
