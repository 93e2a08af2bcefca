"""The house rules that a reader of the code relies on (issue 28): dependencies point one
way, and the library speaks in parameters, not command-line flags."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_dependencies_point_one_way():
    """The layers contract of pyproject.toml ([tool.importlinter]), checked by import-linter:
    cli, serve → the public API → galleries → probes | render → model, data … → runtime …"""
    cli = pytest.importorskip("importlinter.cli", reason="import-linter is not installed")
    assert cli.lint_imports(config_filename=str(ROOT / "pyproject.toml")) == 0


STILL_NAMING_FLAGS: dict[str, int] = {}  # none left: a new one fails here
FLAG = re.compile(r"[\"'](?:[^\"']*[^a-z-])?--[a-z][a-z-]+")


def test_the_library_outside_the_cli_names_no_flags():
    found: dict[str, int] = {}
    for path in sorted((ROOT / "cnnviz").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith("cnnviz/cli/"):
            continue
        count = sum(bool(FLAG.search(line)) for line in path.read_text().splitlines())
        if count:
            found[relative] = count
    assert found == STILL_NAMING_FLAGS


def test_the_command_line_shows_parameters_and_calls_as_its_flags_and_commands():
    from cnnviz.cli.flags import as_flags

    assert as_flags("continue with `cnnviz.train(name='cut', resume=True)`") == \
        "continue with `cnnviz train --name cut --resume`"
    assert as_flags("with `cnnviz.train(name='b', resume=True, strategy='multi-worker')`") == \
        "with `cnnviz train --name b --resume --strategy multi-worker`"
    assert as_flags("pass data=PATH (.npz)") == "pass --data PATH (.npz)"
    assert as_flags("retrain with force=True; try a lower learning_rate=") == \
        "retrain with --force; try a lower --learning-rate"
    assert as_flags("refused as resize=False") == "refused as --no-resize"
    assert as_flags("pixels=3 and shape=(2, 2)") == "pixels=3 and shape=(2, 2)"  # no such flags
