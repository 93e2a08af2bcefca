"""Progress bars of the commands: on a terminal, a bar on stderr that updates in place; when
stderr is a file or a pipe, nothing (a bar's leftovers would be bare lines in a log)."""

from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator

import click


@contextlib.contextmanager
def progress_bar(length: int, label: str) -> Iterator[Callable[[int], None]]:
    """Yields update(n): n more steps done."""
    if not sys.stderr.isatty():
        yield lambda steps: None
        return
    with click.progressbar(length=length, label=label, file=sys.stderr) as bar:
        yield bar.update
