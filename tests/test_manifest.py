"""The gallery manifest: merged, never losing entries, also under concurrent writers."""

import json
import multiprocessing

import pytest

from cnnviz.errors import CnnvizError
from cnnviz.manifest import add_entries, claim, read_manifest


def entry(path, kind="x"):
    return {"path": path, "caption": f"caption of {path}", "kind": kind}


def test_adding_keeps_other_entries_and_replaces_same_path(tmp_path):
    add_entries(tmp_path, [entry("a.png"), entry("b.png")], model={"name": "m"})
    add_entries(tmp_path, [entry("b.png", kind="new"), entry("c.png")])
    manifest = read_manifest(tmp_path)
    assert [e["path"] for e in manifest["entries"]] == ["a.png", "b.png", "c.png"]
    assert manifest["entries"][1]["kind"] == "new" and manifest["model"] == {"name": "m"}
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def _writer(folder, prefix, start):
    start.wait(60)
    for i in range(25):
        add_entries(folder, [entry(f"{prefix}-{i}.png")])
    for round in range(150):  # new galleries, each made by both writers at once
        if round % 2:
            claim(folder / f"new-{round}")
        add_entries(folder / f"new-{round}", [entry(f"{prefix}.png")])


def test_two_processes_writing_at_once_keep_all_entries(tmp_path):
    """Both writers make the same 150 new galleries at once (the race of a check before the
    lock against the other's first mark lands in some of them) and keep every entry."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(tmp_path, p, start)) for p in ("act", "pat")]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    paths = {e["path"] for e in json.loads((tmp_path / "manifest.json").read_text())["entries"]}
    assert len(paths) == 50
    for round in range(150):
        made = json.loads((tmp_path / f"new-{round}" / "manifest.json").read_text())
        assert {e["path"] for e in made["entries"]} == {"act.png", "pat.png"}, round


def test_a_corrupt_manifest_is_reported_not_overwritten(tmp_path):
    (tmp_path / "manifest.json").write_text("{broken")
    with pytest.raises(CnnvizError, match="manifest.json is corrupt"):
        add_entries(tmp_path, [entry("a.png")])
    assert (tmp_path / "manifest.json").read_text() == "{broken"
