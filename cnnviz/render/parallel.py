"""Many figures drawn at once in worker processes: a big model's galleries draw hundreds of
figures, one after another on one core, while the other cores wait. A job is a renderer and
its (picklable) arguments; few jobs are drawn here, in this process.

Inside `drawing_behind()` (the atlas) every job goes to one worker process that draws while
this one computes the next stage; `Behind.take()` gives the futures of the jobs submitted
since the last call, so that a stage is recorded only once its figures exist.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterator

from cnnviz.interrupts import raise_if_received
from cnnviz.render.style import FigureOutput, figure_output, figure_output_now

PARALLEL_FROM = 40  # jobs below which starting workers (≈ 1–2 s) costs more than it saves
BEHIND = True       # drawing_behind hands jobs to a worker (benchmarks/bench_atlas.py turns it off)


def draw_all(jobs: list[tuple[Callable, tuple]]) -> None:
    """Run every job `renderer(*args)`, in worker processes when there are many and this
    machine has more than one core; figures are written in the resolution and format in
    force here."""
    behind = _BEHIND.get()
    if behind is not None:
        behind.submit(jobs)
        return
    cores = _cores()
    if len(jobs) < PARALLEL_FROM or cores < 2:
        for renderer, args in jobs:
            renderer(*args)
        return
    import concurrent.futures
    import multiprocessing

    output = figure_output_now()
    context = multiprocessing.get_context("spawn")  # never fork a process running TensorFlow
    with concurrent.futures.ProcessPoolExecutor(min(cores, 4), mp_context=context) as pool:
        futures = [pool.submit(_draw, output, renderer, args) for renderer, args in jobs]
        for future, (renderer, args) in zip(futures, jobs):
            _result(future, renderer, args)


def _result(future: Future, function: Callable, args: tuple):
    """The future's result; when its worker could not start or died (a __main__ that cannot
    be imported again, as `python - < script`), the call made here instead."""
    try:
        return future.result()
    except BrokenProcessPool:
        raise_if_received()  # the worker died of the user's Ctrl-C: stop here too
        return function(*args)


def _cores() -> int:
    found = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return found or 1


class Behind:
    """One worker process drawing the submitted jobs in order, while the caller computes."""

    def __init__(self):
        import concurrent.futures
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # never fork a process running TensorFlow
        self.pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=context)
        self.pool.submit(_warm_up)  # imports matplotlib and the renderers while TF computes
        self._new: list[Future] = []

    def submit(self, jobs: list[tuple[Callable, tuple]]) -> None:
        """Hand the jobs to the worker; one that cannot take them (its process could not
        start or died: a broken pool refuses new work) has them drawn here, now."""
        output = figure_output_now()
        for renderer, args in jobs:
            try:
                self._new.append((self.pool.submit(_draw, output, renderer, args), renderer, args))
            except BrokenProcessPool:
                raise_if_received()  # Ctrl-C reached the worker too: stop, do not draw on
                _draw(output, renderer, args)

    def take(self) -> list[tuple[Future, Callable, tuple]]:
        """(future, renderer, args) of the jobs submitted since the last call."""
        taken, self._new = self._new, []
        return taken


_BEHIND: contextvars.ContextVar[Behind | None] = contextvars.ContextVar("cnnviz_behind",
                                                                       default=None)


@contextlib.contextmanager
def drawing_behind() -> Iterator[Behind | None]:
    """Within the block, draw_all hands its jobs to a worker process (None, and nothing
    changes, on one core). On leaving, every job is finished (or, after an error, cancelled)."""
    if _cores() < 2 or not BEHIND:
        yield None
        return
    behind = Behind()
    token = _BEHIND.set(behind)
    try:
        yield behind
    except BaseException:
        behind.pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        _BEHIND.reset(token)
    behind.pool.shutdown(wait=True)


def map_behind(function: Callable, calls: list[tuple], weights: list[float]) -> list:
    """[function(*args) for args in calls], shared with the worker of `drawing_behind` when
    there is one (by weight: it takes the heavier half while this process does the rest)."""
    behind = _BEHIND.get()
    if behind is None:
        return [function(*args) for args in calls]
    mine, theirs, my_load, their_load = [], [], 0.0, 0.0
    for i in sorted(range(len(calls)), key=lambda i: -weights[i]):
        if their_load <= my_load:
            theirs.append(i)
            their_load += weights[i]
        else:
            mine.append(i)
            my_load += weights[i]
    output = figure_output_now()
    try:
        futures = {i: behind.pool.submit(_call, output, function, calls[i]) for i in theirs}
    except BrokenProcessPool:  # the worker is gone (after a Ctrl-C: stop): everything here
        raise_if_received()
        return [function(*args) for args in calls]
    results = {i: function(*calls[i]) for i in mine}
    results.update((i, _result(future, function, calls[i])) for i, future in futures.items())
    return [results[i] for i in range(len(calls))]


def _call(output: FigureOutput, function: Callable, args: tuple):
    with figure_output(output.dpi, output.format):
        return function(*args)


def settled(jobs: list[tuple[Future, Callable, tuple]], wait: bool) -> bool:
    """Whether every job is done (waiting for them with `wait`); a drawing's error is
    raised here, and a job whose worker died is drawn here."""
    if not wait and not all(future.done() for future, _, _ in jobs):
        return False
    for future, renderer, args in jobs:
        _result(future, renderer, args)
    return True


def _warm_up() -> None:
    import cnnviz.render.activations  # noqa: F401
    import cnnviz.render.explain  # noqa: F401
    import cnnviz.render.stats  # noqa: F401


def _draw(output: FigureOutput, renderer: Callable, args: tuple) -> None:
    with figure_output(output.dpi, output.format):
        renderer(*args)
