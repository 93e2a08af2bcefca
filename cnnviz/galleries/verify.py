"""`cnnviz verify`: every layer of the model against an independent float64 NumPy forward
pass, into outputs/NAME/verify/ (verify.json, verify.png); the page's summary states it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from cnnviz.checks import real, whole
from cnnviz.errors import CheckFailed, UsageError
from cnnviz.layout import VERIFY
from cnnviz.manifest import entry
from cnnviz.model import LoadedModel
from cnnviz.probes.forward64 import verify
from cnnviz.render.style import figure_name
from cnnviz.trace_results import VerificationResult

FOLDER = VERIFY


@dataclass(frozen=True)
class VerifyOptions:
    """The images (pixels 0–255 at the model's size), where they come from, how close."""

    pixels: np.ndarray
    split: str = "test"
    tolerance: float = 1e-4
    batch_size: int = 32


def verify_request(m, images=100, split: str = "test", tolerance: float = 1e-4,
                   batch_size: int = 32) -> VerifyOptions:
    """images: how many of the split (the first N), or raw images (N, H, W[, C]) 0–255."""
    tolerance = real(tolerance, "tolerance", 0, above=True)
    batch_size = whole(batch_size, "batch_size", 1)
    if np.ndim(images) == 0:
        count = whole(images, "images", 1)
        if split not in ("test", "train"):
            raise UsageError(f"split must be test or train, got {split!r}", "split")
        x = m.data().split(split)[0]
        return VerifyOptions(np.asarray(x[:count]), split, tolerance, batch_size)
    pixels, _, _ = m.images_of(images, split)
    return VerifyOptions(pixels, "your images", tolerance, batch_size)


def request(m, images=100, split: str = "test", tolerance: float = 1e-4,
            batch_size: int = 32) -> list[VerifyOptions]:
    """The part of `m.gallery("verify", ...)`."""
    return [verify_request(m, images, split, tolerance, batch_size)]


def part(loaded: LoadedModel, options: VerifyOptions) -> tuple[str, str, int]:
    return FOLDER, "verify", len(options.pixels)


def verified(loaded: LoadedModel, options: VerifyOptions,
             progress: Callable[[int], None] | None = None) -> VerificationResult:
    inputs = loaded.preprocessing.apply(options.pixels)
    return VerificationResult(verify(loaded.model, inputs, options.tolerance,
                                     options.batch_size, progress), loaded.name)


def run(loaded: LoadedModel, options: VerifyOptions, out: Path,
        report: Callable[[str], None] | None = None,
        progress: Callable[[int], None] | None = None) -> list[dict]:
    """The recipe: the table to `report`, verify.json and verify.png; a deviation or a layer
    the pass cannot compute raises CheckFailed after the files are written."""
    say = report or (lambda line: None)
    result = verified(loaded, options, progress)
    result.save(out / FOLDER)
    for line in result.table.splitlines():
        say(line)
    say(result.summary)
    entries = [entry(f"{FOLDER}/verify.json", result.summary, "verify-summary", "verify"),
               entry(f"{FOLDER}/{Path(figure_name('verify')).name}",
                     f"{loaded.name}: each layer's largest deviation of a float64 NumPy pass "
                     f"from Keras over {len(options.pixels)} {options.split} images",
                     "verify", "verify")]
    if not result.ok:
        raise CheckFailed(result.summary, entries)
    return entries
