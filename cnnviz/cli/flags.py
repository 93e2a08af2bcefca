"""The library speaks in parameters (`data=PATH`, `force=True`) and Python calls
(`cnnviz.train(name='cut', resume=True)`); the command line shows them as its flags
(`--data PATH`, `--force`) and commands (`cnnviz train --name cut --resume`). Every line the
CLI prints from the library goes through `as_flags`."""

from __future__ import annotations

import functools
import re

import click

ALIASES = {"layers": "--layer", "methods": "--method", "images": "--image",
           "resize=False": "--no-resize"}
_PARAMETER = re.compile(r"\b([a-z][a-z_]*)=(True\b|False\b|[^\s,;)`'\"]*)")
_CALL = re.compile(r"\bcnnviz\.([a-z]+)\(([^()]*)\)")
_ARGUMENT = re.compile(r"([a-z][a-z_]*)=('[^']*'|\"[^\"]*\"|[^,]+)")


@functools.cache
def _flags() -> frozenset[str]:
    """Every long option of every cnnviz command."""
    from cnnviz.cli.group import cli

    found = set()
    for command in [cli, *cli.commands.values()]:
        for param in command.params:
            found.update(o for o in getattr(param, "opts", []) if o.startswith("--"))
    return frozenset(found)


def as_flags(text: str) -> str:
    """`name=value` → `--name value`, `name=True` → `--name` wherever the command line has
    that flag; anything else is left as it is."""
    known = _flags()

    def command(match: re.Match) -> str:  # cnnviz.train(name='cut', resume=True)
        words = [f"cnnviz {match.group(1)}"]
        for argument in (a.strip() for a in match.group(2).split(",") if a.strip()):
            found = _ARGUMENT.fullmatch(argument)
            name, value = found.groups() if found else (None, argument)
            value = value.strip().strip(chr(39) + chr(34))
            words.append(f"{name}={value}" if name else value)
        return " ".join(words)

    def flag(match: re.Match) -> str:
        name, value = match.groups()
        if f"{name}={value}" in ALIASES:
            return ALIASES[f"{name}={value}"]
        option = ALIASES.get(name) or "--" + name.replace("_", "-")
        if option not in known:
            return match.group(0)
        return option if value in ("True", "") else f"{option} {value}"

    return _PARAMETER.sub(flag, _CALL.sub(command, str(text)))


def flag_of(parameter: str | None) -> str | None:
    """The command line's flag for a library parameter (None: none known)."""
    if parameter is None:
        return None
    return ALIASES.get(parameter) or "--" + parameter.replace("_", "-")


def say(line: str = "") -> None:
    """click.echo of a line from the library, its parameters written as flags."""
    click.echo(as_flags(line))
