"""Many figures drawn at once in worker processes: a big model's galleries draw hundreds of
figures, one after another on one core, while the other cores wait. A job is a renderer and
its (picklable) arguments; few jobs are drawn here, in this process."""

from __future__ import annotations

import os
from typing import Callable

from cnnviz.render.style import FigureOutput, figure_output, figure_output_now

PARALLEL_FROM = 40  # jobs below which starting workers (≈ 1–2 s) costs more than it saves


def draw_all(jobs: list[tuple[Callable, tuple]]) -> None:
    """Run every job `renderer(*args)`, in worker processes when there are many and this
    machine has more than one core; figures are written in the resolution and format in
    force here."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if len(jobs) < PARALLEL_FROM or (cores or 1) < 2:
        for renderer, args in jobs:
            renderer(*args)
        return
    import concurrent.futures
    import multiprocessing

    output = figure_output_now()
    context = multiprocessing.get_context("spawn")  # never fork a process running TensorFlow
    with concurrent.futures.ProcessPoolExecutor(min(cores, 4), mp_context=context) as pool:
        for done in [pool.submit(_draw, output, renderer, args) for renderer, args in jobs]:
            done.result()


def _draw(output: FigureOutput, renderer: Callable, args: tuple) -> None:
    with figure_output(output.dpi, output.format):
        renderer(*args)
