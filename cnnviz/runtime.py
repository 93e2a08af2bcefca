"""Importing TensorFlow quietly and choosing the device; imported only by commands that compute."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from typing import Callable, ContextManager

from cnnviz.errors import CnnvizError, UsageError

DEVICES = ("auto", "cpu", "gpu")


_QUIET = False  # set by the command line only (quiet_imports): the library changes no logging
_silencer: Callable[[], ContextManager] = contextlib.nullcontext


def quiet_imports(silencer: Callable[[], ContextManager]) -> None:
    """For the command line's own process: TensorFlow's C++ start-up chatter and log
    messages silenced, `silencer()` (a context that mutes the process's stderr) around the
    noisy calls. A library user's process (a notebook) is never changed."""
    global _QUIET, _silencer
    _QUIET, _silencer = True, silencer
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def stderr_silenced() -> ContextManager:
    """In the command line's process, its stderr muted inside the block; in a library
    user's process, nothing."""
    return _silencer()


def import_tensorflow():
    """Import TensorFlow (and Keras, on the TensorFlow backend); in the command line's
    process with its start-up messages quieted.

    Some messages (e.g. "Could not find cuda drivers") are written to file descriptor 2
    before TensorFlow's log level applies, so the command line points stderr at /dev/null
    meanwhile. A library user's loggers and file descriptors are left as they are.
    """
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if not _QUIET:
        import tensorflow as tf
        import keras  # noqa: F401
        return tf
    with warnings.catch_warnings(), stderr_silenced():
        warnings.simplefilter("ignore")
        import tensorflow as tf
        import keras  # noqa: F401  (first import of Keras prints too)
    tf.get_logger().setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    return tf


def select_device(choice: str = "auto") -> str:
    """Make TensorFlow use the chosen device; returns `cpu` or `gpu` (what is used).

    Must run before TensorFlow has placed any operation.
    """
    if choice not in DEVICES:
        raise UsageError(f"unknown device {choice!r}; valid: {', '.join(DEVICES)}")
    tf = import_tensorflow()
    gpus = tf.config.list_physical_devices("GPU")
    if choice == "gpu" and not gpus:
        raise CnnvizError("device=gpu: TensorFlow sees no GPU here; install the gpu extra "
                          "(pip install 'cnnviz[gpu]') on a machine with an NVIDIA GPU, or use "
                          "device=cpu or device=auto")
    try:
        if choice == "cpu" and gpus:
            tf.config.set_visible_devices([], "GPU")
            gpus = []
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError:  # TensorFlow already initialised in this process: keep its devices
        pass
    return "gpu" if gpus else "cpu"


def has_module(name: str) -> bool:
    """Whether an optional package can be imported (without importing it)."""
    import importlib.util

    return importlib.util.find_spec(name) is not None
