"""Progress of the library's long calls: a `tqdm.auto` bar (a widget in a notebook, a line in
a terminal), the caller's own callable, or nothing (`progress=False`)."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from cnnviz.errors import UsageError

Progress = bool | Callable[[int], None] | None


@contextlib.contextmanager
def progress_bar(progress: Progress, total: int, label: str) -> Iterator[Callable[[int], None]]:
    """Yields update(n): n more of `total` done. progress: None or True for a bar, False for
    none, or a callable that receives each update."""
    if progress is False:
        yield lambda steps: None
        return
    if callable(progress):
        yield progress
        return
    if progress not in (None, True):
        raise UsageError(f"progress must be True, False or a callable, got {progress!r}",
                         "progress")
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=label, leave=False) as bar:
        yield bar.update


def bars(progress: Progress) -> Callable[[str, int], contextlib.AbstractContextManager]:
    """bar(label, length) → a progress_bar: for the atlas, one bar per long stage."""
    return lambda label, length: progress_bar(progress, length, label)
