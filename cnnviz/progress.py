"""Progress of the library's long calls: a `tqdm.auto` bar (a widget in a notebook, a line in
a terminal), the caller's own callable, or nothing (`progress=False`)."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from cnnviz.errors import UsageError



class Bars:
    """progress=Bars(bar): a bar of the caller's own for each long stage, where
    bar(label, length) is a context manager giving update(n) (the command line's)."""

    def __init__(self, bar: Callable[[str, int], contextlib.AbstractContextManager]):
        self.bar = bar


Progress = bool | Callable[[int], None] | Bars | None


@contextlib.contextmanager
def progress_bar(progress: Progress, total: int, label: str) -> Iterator[Callable[[int], None]]:
    """Yields update(n): n more of `total` done. progress: None or True for a bar, False for
    none, a callable that receives each update, or Bars (no length: no bar)."""
    if progress is False or not total:
        yield lambda steps: None
        return
    if isinstance(progress, Bars):
        with progress.bar(label, total) as update:
            yield update
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
