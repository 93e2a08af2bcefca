"""Galleries never touch what cnnviz did not write, never write outside --outputs-dir, and
refuse a damaged manifest before any work (issue 12, items 3, 4, 6, 10)."""

from __future__ import annotations

import json
import shutil

import keras
import pytest

from conftest import assert_one_line_error


def snapshot(folder) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def users_folder(tmp_path):
    """A folder of the user's with files named like a gallery's."""
    folder = tmp_path / "outputs" / "mine"
    (folder / "cards").mkdir(parents=True)
    (folder / "index.html").write_text("<p>my page</p>")
    (folder / "manifest.json").write_text(json.dumps({"entries": [], "app": "other tool"}))
    (folder / "cards" / "important.txt").write_text("keep me")
    return folder


@pytest.mark.parametrize("name", ["/any/folder", "../mine", "", ".", "a/b"])
def test_gallery_refuses_names_that_are_not_a_gallery_inside_outputs_dir(
        name, users_folder, trained, run_cli):
    before = snapshot(users_folder.parent.parent)
    result = run_cli("gallery", name, "--trained-dir", trained,
                     "--outputs-dir", users_folder.parent)
    assert_one_line_error(result, 2, "outputs")
    assert snapshot(users_folder.parent.parent) == before


def test_gallery_and_probes_leave_a_users_folder_untouched(users_folder, trained, run_cli,
                                                           tmp_path):
    before = snapshot(users_folder)
    result = run_cli("gallery", "mine", "--trained-dir", trained,
                     "--outputs-dir", users_folder.parent)
    assert_one_line_error(result, 2, "not written by cnnviz")
    assert snapshot(users_folder) == before and not (users_folder / ".manifest.lock").exists()

    plain = users_folder.parent / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("mine")
    shutil.copytree(trained / "a2", tmp_path / "bundles" / "plain")
    result = run_cli("kernels", "plain", "--trained-dir", tmp_path / "bundles",
                     "--outputs-dir", users_folder.parent)
    assert_one_line_error(result, 2, "not a cnnviz gallery")
    assert snapshot(plain) == {"notes.txt": b"mine"}


def test_names_from_files_and_layers_become_safe_folder_names(run_cli, tmp_path):
    from cnnviz.names import slug

    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="..")(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu", name=".")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="output")(x))
    models = tmp_path / "models"
    models.mkdir()
    model.save(models / "...keras")
    out = tmp_path / "work" / "outputs"
    out.mkdir(parents=True)
    result = run_cli("kernels", models / "...keras", "--layer", "all",
                     "--trained-dir", tmp_path / "none", "--outputs-dir", out)
    assert result.code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["outputs"]
    gallery = out / slug("..")
    assert [p.name for p in out.iterdir()] == [gallery.name]
    assert not gallery.name.startswith(".")
    assert sorted(p.name for p in (gallery / "kernels").iterdir()) == sorted([slug(".."), slug(".")])
    manifest = json.loads((gallery / "manifest.json").read_text())
    assert {e["layer"] for e in manifest["entries"]} == {"..", "."}  # the original names
    assert all(".." not in e["path"].split("/") for e in manifest["entries"])
    assert slug("a/b") != slug("a:b") and slug("conv1") == "conv1"


def test_manifest_entries_outside_the_gallery_are_dropped_with_a_note(atlas, trained, run_cli,
                                                                      tmp_path):
    copy = tmp_path / "a2"
    shutil.copytree(atlas, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["entries"] += [
        {"path": "../../../../etc/passwd", "caption": "x", "kind": "arrays", "command": "x"},
        {"path": "/etc/hostname", "caption": "y", "kind": "curves", "command": "x"}]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    result = run_cli("gallery", "a2", "--trained-dir", trained, "--outputs-dir", tmp_path)
    assert result.code == 0, result.output
    assert "2 manifest entries point outside" in result.output
    page = (copy / "index.html").read_text()
    assert "passwd" not in page and "/etc/hostname" not in page


@pytest.mark.parametrize("damage, fragment", [
    (lambda m: m["entries"].append({"caption": "no path", "kind": "x"}), "no text 'path'"),
    (lambda m: m["entries"].append({"path": 123, "caption": "c", "kind": "x"}), "no text 'path'"),
    (lambda m: m["entries"].append("just a string"), "is a str"),
    (lambda m: m.update(model="x"), "'model' is a str"),
    (lambda m: m["model"]["layers"].append({"name": "conv9"}), "layer row .* lacks kind"),
])
def test_a_damaged_manifest_is_refused_before_any_work(damage, fragment, atlas, trained,
                                                       run_cli, tmp_path):
    copy = tmp_path / "a2"
    shutil.copytree(atlas, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    damage(manifest)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    before = snapshot(copy)
    for args in (["gallery", "a2"], ["activations", "a2", "--layer", "conv1", "--image", "5"],
                 ["kernels", "a2", "--layer", "conv1"]):
        result = run_cli(*args, "--trained-dir", trained, "--outputs-dir", tmp_path)
        assert_one_line_error(result, 1, "manifest.json", fragment)
        assert snapshot(copy) == before, args


def test_compare_of_a_file_with_spaces_and_brackets_names_a_safe_gallery(trained, run_cli,
                                                                          tmp_path):
    from cnnviz.names import slug

    odd = tmp_path / "my model (v2).keras"
    shutil.copy(trained / "a2" / "model.keras", odd)
    result = run_cli("compare", "a2", odd, "--layer", "conv1", "--limit", "50",
                     "--trained-dir", trained, "--outputs-dir", tmp_path / "out")
    assert result.code == 0, result.output
    gallery = tmp_path / "out" / slug(f"compare-a2-{slug('my model (v2)')}")
    assert gallery.is_dir() and (gallery / "index.html").is_file()
    assert "my model (v2)" in (gallery / "manifest.json").read_text()  # the original name
