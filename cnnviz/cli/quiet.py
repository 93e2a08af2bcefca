"""Muting the process's stderr (file descriptor 2) while TensorFlow starts: some of its
messages ("Could not find cuda drivers") are written there before its log level applies.
Only the command line's own process does this (cnnviz.runtime.quiet_imports)."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator


@contextlib.contextmanager
def stderr_to_null() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null inside the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
