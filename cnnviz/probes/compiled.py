"""Compiled functions kept with their model, so a second call does not trace again.

A notebook that asks for one image's activations, then another's, and the live page that
answers every stroke, call the same probe many times: tracing a tf.function costs far
more than running it on a batch. The cache lives on the model object itself (not in a
global table), so it goes when the model goes.
"""

from __future__ import annotations

import threading
from typing import Callable, Hashable

_ATTRIBUTE = "_cnnviz_compiled"
_LOCK = threading.Lock()


def compiled(model, key: Hashable, build: Callable[[], Callable]) -> Callable:
    """The function `build()` made for this model and key, built on first use."""
    with _LOCK:
        cache = model.__dict__.get(_ATTRIBUTE)
        if cache is None:
            cache = {}
            object.__setattr__(model, _ATTRIBUTE, cache)  # past Keras's attribute tracking
        if key not in cache:
            cache[key] = build()
        return cache[key]
