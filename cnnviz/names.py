"""Safe file and folder names for everything named after a file, a model or a layer.

A layer may be called `..`, `a/b` or `conv 1`; a model file `...keras`. Written as they are,
such names would write outside the gallery or scatter files across it. Every path component
cnnviz derives from a name goes through `slug`; the original name stays in the manifest
and on the page.
"""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
MAX_LENGTH = 80


def slug(name: str, unique: bool = True) -> str:
    """A name that is one harmless path component: letters, digits, '_', '.', '-', not
    starting with '.' or '-', at most MAX_LENGTH characters. With `unique`, a name that had
    to change gets a short hash of the original, so two different names never share a slug."""
    text = str(name)
    safe = _UNSAFE.sub("_", text).lstrip(".-")[:MAX_LENGTH]
    if (safe == text or not unique) and safe:
        return safe
    digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{safe.rstrip('.') or 'unnamed'}-{digest}"


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """'1 file', '2 files' (`plural` for nouns that do not take an s)."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"
