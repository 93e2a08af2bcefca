"""Ctrl-C that is never lost.

Python raises KeyboardInterrupt wherever the main thread happens to be; when that is a
weakref callback or a __del__ (TensorFlow has many), the exception is printed as "ignored"
and the command runs on. The handler here also sets a flag, and the CLI checks it before
it records anything in a manifest and when a command returns; the "ignored" report of such
a swallowed Ctrl-C is not printed (the user sees one `error: interrupted` line).
"""

from __future__ import annotations

import signal
import sys

_received = False


def _on_sigint(signum, frame) -> None:
    global _received
    _received = True
    raise KeyboardInterrupt


def install() -> None:
    """Route SIGINT through the flag-setting handler (main thread only)."""
    global _received
    _received = False
    signal.signal(signal.SIGINT, _on_sigint)
    if not getattr(sys.unraisablehook, "_cnnviz", False):
        sys.unraisablehook = _quiet_about_interrupts(sys.unraisablehook)


def _quiet_about_interrupts(default):
    def hook(unraisable) -> None:
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            default(unraisable)

    hook._cnnviz = True
    return hook


def received() -> bool:
    return _received


def forget() -> None:
    """A Ctrl-C that was the expected way to stop (a server) is no error."""
    global _received
    _received = False


def raise_if_received() -> None:
    """Turn a Ctrl-C that was swallowed somewhere into a KeyboardInterrupt now."""
    if _received:
        raise KeyboardInterrupt
