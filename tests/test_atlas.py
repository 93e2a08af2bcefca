"""`cnnviz atlas` and `cnnviz gallery`: every gallery, one page, every link resolving."""

from __future__ import annotations

import json
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest

from conftest import assert_one_line_error

VOID = {"meta", "img", "br", "link", "input", "hr", "source", "col", "area", "base", "wbr"}


class PageParser(HTMLParser):
    """Collects links and image sources and checks that every element is closed in order."""

    def __init__(self):
        super().__init__()
        self.stack, self.links, self.images, self.ids, self.errors = [], [], [], set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag == "img":
            self.images.append(attrs.get("src"))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()


def parse(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    assert not parser.errors and parser.stack == [], (path, parser.errors[:3], parser.stack)
    return parser


def assert_targets_exist(page: Path, parser: PageParser) -> None:
    """Every relative link and image points at a file that exists (anchors at an id)."""
    for target in parser.links + parser.images:
        url = urlsplit(target)
        assert not url.scheme and not url.netloc, f"{page}: external reference {target}"
        path = (page.parent / unquote(url.path)).resolve() if url.path else page
        assert path.is_file(), f"{page}: {target} does not exist"
        if url.fragment:
            assert url.fragment in parse_ids(path), f"{page}: no #{url.fragment} in {path}"


_ids: dict[Path, set] = {}


def parse_ids(path: Path) -> set:
    if path not in _ids:
        _ids[path] = parse(path).ids
    return _ids[path]


def test_atlas_writes_every_gallery(atlas):
    manifest = json.loads((atlas / "manifest.json").read_text())
    kinds = {e["kind"] for e in manifest["entries"]}
    assert {"curves", "activations-by-image", "patterns", "patterns-evolution", "kernels",
            "stats-top-examples", "stats-histogram", "arrays"} <= kinds
    for e in manifest["entries"]:
        assert (atlas / e["path"]).is_file(), e["path"]
    layers = [row["name"] for row in manifest["model"]["layers"]]
    assert layers == ["conv1", "pool1", "conv2", "pool2", "conv3", "flatten", "dense1", "output"]
    assert manifest["model"]["parameters"] == 96_844
    for layer in ("conv1", "conv2", "conv3"):
        with np.load(atlas / "filters" / layer / f"patterns-{layer}.npz") as z:
            assert z["snapshot_pixels"].shape == (z["maps"].size, 3, 28, 28)
            np.testing.assert_array_equal(z["snapshot_steps"], [0, 1, 6])
    with np.load(atlas / "activations" / "test-one-per-class.npz") as z:
        np.testing.assert_array_equal(z["labels"], np.arange(10))
    why = [e for e in manifest["entries"] if e["command"] == "explain"]  # the page's "why"
    assert len([e for e in why if e["kind"] == "explanation"]) == 10
    with np.load(atlas / "explain" / "attributions-test-one-per-class.npz") as z:
        np.testing.assert_array_equal(z["pixels"].shape, (10, 28, 28))
        assert z["integrated_gradients"].shape == (10, 28, 28) and z["grad_cam"].shape == (10, 28, 28)
    assert "<h2>Why (explain)</h2>" in (atlas / "index.html").read_text()


def test_every_entry_is_on_the_page_and_every_reference_resolves(atlas):
    manifest = json.loads((atlas / "manifest.json").read_text())
    index = atlas / "index.html"
    parser = parse(index)
    referenced = {unquote(t) for t in parser.links + parser.images}
    for e in manifest["entries"]:
        assert e["path"] in referenced, f"{e['path']} is not on the page"
    assert {"model", "layer-conv1", "layer-conv3", "layer-dense1"} <= parser.ids
    assert_targets_exist(index, parser)
    cards = sorted((atlas / "cards").rglob("*.html"))
    assert len(cards) == 32 + 32 + 64 + 64 + 64 + 70 + 10
    for card in cards:
        assert_targets_exist(card, parse(card))


def test_a_map_card_holds_everything_known_about_the_map(atlas):
    stats = json.loads((atlas / "stats" / "stats.json").read_text())["layers"]["conv2"]["maps"]
    card = (atlas / "cards" / "conv2" / "map-007.html").read_text()
    for section in ("Kernel", "Best input pattern", "Evolution of the pattern",
                    "Top dataset examples", "Output on one image per class", "Statistics",
                    "Mean output per class"):
        assert section in card, section
    assert f"{stats['mean'][7]:.4g}" in card
    with np.load(atlas / "filters" / "conv2" / "patterns-conv2.npz") as arrays:
        reached, best = float(arrays["objective"][7]), float(arrays["reference"][7])
        assert reached >= best and list(arrays["curve_steps"])[0] == 0
    assert f"activation reached {reached:.3g} (best real image {best:.3g}" in card
    assert "over steps 0: " in card
    assert 'href="map-006.html"' in card and 'href="map-008.html"' in card
    assert "../../index.html#layer-conv2" in card
    first = (atlas / "cards" / "conv2" / "map-000.html").read_text()
    assert "map--01" not in first and 'href="map-001.html"' in first


def test_gallery_rebuilds_from_the_manifest_and_keeps_other_entries(atlas, trained, run_cli,
                                                                    tmp_path):
    copy = tmp_path / "a2"
    shutil.copytree(atlas, copy)
    result = run_cli("activations", "a2", "--image", "5", "--layer", "conv1",
                     "--trained-dir", trained, "--outputs-dir", tmp_path)
    assert result.code == 0, result.output
    page = (copy / "index.html").read_text()  # the page existed, so the command updated it
    assert "activations/conv1/test-image-00005-conv1.png" in page
    assert "filters/conv3/patterns-conv3.png" in page
    os.remove(copy / "index.html")
    shutil.rmtree(copy / "cards")
    result = run_cli("gallery", "a2", "--trained-dir", trained, "--outputs-dir", tmp_path)
    assert result.code == 0, result.output
    assert "activations/conv1/test-image-00005-conv1.png" in (copy / "index.html").read_text()
    assert (copy / "cards" / "conv3" / "map-063.html").is_file()


def test_a_corrupt_or_missing_manifest_is_rebuilt_from_the_files(atlas, trained, run_cli, tmp_path):
    copy = tmp_path / "a2"
    shutil.copytree(atlas, copy)
    (copy / "manifest.json").write_text("{ not json")
    result = run_cli("gallery", "a2", "--trained-dir", trained, "--outputs-dir", tmp_path)
    assert result.code == 0, result.output
    assert "rebuilt it from the" in result.out
    assert (copy / "manifest.json.corrupt").read_text() == "{ not json"
    parser = parse(copy / "index.html")
    assert "filters/conv2/patterns-conv2.png" in parser.images
    assert_targets_exist(copy / "index.html", parser)
    assert (copy / "cards" / "conv2" / "map-010.html").is_file()  # arrays found by their paths
    os.remove(copy / "manifest.json")
    assert run_cli("gallery", "a2", "--trained-dir", trained, "--outputs-dir", tmp_path).code == 0


def test_gallery_errors(trained, run_cli, tmp_path):
    empty = tmp_path / "a2"
    empty.mkdir()
    result = run_cli("gallery", "a2", "--trained-dir", trained, "--outputs-dir", tmp_path)
    assert_one_line_error(result, 1, "no manifest.json and no gallery files", "cnnviz atlas")
    result = run_cli("gallery", "nosuch", "--trained-dir", trained, "--outputs-dir", tmp_path)
    assert_one_line_error(result, 2, "nosuch")


def test_atlas_refuses_an_outputs_folder_it_cannot_create(trained, run_cli, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_cli("atlas", "a2", "--trained-dir", trained, "--outputs-dir", blocker / "out")
    assert_one_line_error(result, 1, "cannot write to", "a-file")
    assert blocker.read_text() == "not a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_atlas_refuses_a_read_only_outputs_folder(trained, run_cli, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = run_cli("atlas", "a2", "--trained-dir", trained, "--outputs-dir", locked)
        assert_one_line_error(result, 1, "cannot write to", "locked")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_a_model_without_conv_layers_still_gets_a_page(run_cli, tmp_path, small_npz):
    import keras

    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Flatten(name="flatten")(inputs)
    x = keras.layers.Dense(16, activation="relu", name="dense1")(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="output")(x))
    path = tmp_path / "mlp.keras"
    model.save(path)
    result = run_cli("atlas", path, "--steps", "3", "--top", "2", "--limit", "50",
                     "--data", small_npz, "--outputs-dir", tmp_path / "out")
    assert result.code == 0, result.output
    index = tmp_path / "out" / "mlp" / "index.html"
    parser = parse(index)
    assert {"layer-dense1", "layer-output"} <= parser.ids
    assert_targets_exist(index, parser)
    assert "curves" not in {e["kind"] for e in json.loads(
        (tmp_path / "out" / "mlp" / "manifest.json").read_text())["entries"]}


def test_gallery_open_hands_the_page_to_the_browser(atlas, trained, run_cli, monkeypatch):
    import webbrowser

    opened = []
    monkeypatch.setattr(webbrowser, "open", lambda uri: opened.append(uri) or True)
    result = run_cli("gallery", "a2", "--open", "--trained-dir", trained,
                     "--outputs-dir", atlas.parent)
    assert result.code == 0, result.output
    assert opened == [(atlas / "index.html").resolve().as_uri()]


def test_the_atlas_off_a_terminal_writes_no_bare_lines_and_counts_in_words(run_cli, trained, tmp_path):
    """Issue 27: a progress bar's leftovers (`  conv1`, `stats`) on stderr, `wrote 1 files`."""
    result = run_cli("atlas", "a2", "--layer", "conv1", "--steps", "2", "--scales", "7",
                     "--limit", "50", "--top", "2", "--no-explain", "--trained-dir", trained,
                     "--outputs-dir", tmp_path)
    assert result.code == 0, result.output
    assert result.err == "", result.err
    assert "curves: 1 file in" in result.out and "1 files" not in result.out
