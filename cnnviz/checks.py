"""Checks of values given to the public API: a UsageError naming the parameter and what is
valid, never a raw Python or TensorFlow error, never a silent truncation (1.7 is no index).

    steps = whole(steps, "steps", minimum=1)
    check_fields(settings)      # a dataclass: every int, float, str and bool field by its type
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from pathlib import Path

import numpy as np

from cnnviz.errors import UsageError


def whole(value, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """`value` as an int: an integer (or an integral float), within the bounds."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or \
            not math.isfinite(value) or value != int(value):
        raise UsageError(f"{name} must be a whole number, got {value!r}", name)
    value = int(value)
    _bounds(value, name, minimum, maximum)
    return value


def real(value, name: str, minimum: float | None = None, maximum: float | None = None,
         above: bool = False) -> float:
    """`value` as a finite float within the bounds (`above`: strictly above the minimum)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or \
            not math.isfinite(value):
        raise UsageError(f"{name} must be a finite number, got {value!r}", name)
    value = float(value)
    if above and minimum is not None and value <= minimum:
        raise UsageError(f"{name} must be > {minimum:g}, got {value:g}", name)
    _bounds(value, name, minimum, maximum)
    return value


def _bounds(value, name: str, minimum, maximum) -> None:
    if minimum is not None and value < minimum:
        raise UsageError(f"{name} must be ≥ {minimum:g}, got {value:g}", name)
    if maximum is not None and value > maximum:
        raise UsageError(f"{name} must be ≤ {maximum:g}, got {value:g}", name)


def flag(value, name: str) -> bool:
    """`value` when it is True or False (NumPy's bools too)."""
    if not isinstance(value, (bool, np.bool_)):
        raise UsageError(f"{name} must be True or False, got {value!r}", name)
    return bool(value)


def text(value, name: str, optional: bool = False) -> str | None:
    """`value` when it is a string (or None, when optional)."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise UsageError(f"{name} must be a string, got {value!r}", name)
    return value


def path(value, name: str, optional: bool = False) -> Path | None:
    """`value` as a Path when it is a string or path (or None, when optional)."""
    if value is None and optional:
        return None
    if not isinstance(value, (str, Path)) or not str(value):
        raise UsageError(f"{name} must be a file or folder path, got {value!r}", name)
    return Path(value)


def indices(values, name: str) -> np.ndarray:
    """An int, or a list/array of them, as a 1-D int64 array; floats only when integral."""
    array = np.atleast_1d(np.asarray(values))
    if array.ndim != 1 or array.dtype.kind not in "iuf" or (
            array.dtype.kind == "f" and not (np.isfinite(array).all() and
                                             (array == np.round(array)).all())):
        raise UsageError(f"{name} must be whole numbers (an index or a list of them), got "
                         f"{brief(values)}", name)
    return array.astype(np.int64)


def brief(value) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


_SIMPLE = {"int": whole, "float": real}


def check_fields(instance) -> None:
    """Every field of a dataclass annotated int, float, str or bool (or any of them | None)
    holds a value of that kind; ints are stored as int, floats as float."""
    for field in dataclasses.fields(instance):
        kind = str(field.type).replace(" ", "")
        optional = kind.endswith("|None")
        kind = kind.removesuffix("|None")
        value = getattr(instance, field.name)
        if value is None and optional:
            continue
        if kind in _SIMPLE:
            object.__setattr__(instance, field.name, _SIMPLE[kind](value, field.name))
        elif kind == "str":
            text(value, field.name)
        elif kind == "bool":
            flag(value, field.name)
