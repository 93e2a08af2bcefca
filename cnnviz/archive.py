"""A .keras file judged from its zip directory and its config before Keras builds anything.

A small file can declare a huge model (`Dense(units=1000000)` in a 40 KB archive) or a
config that inflates to gigabytes, and Keras allocates all of it before it fails. Here the
archive's member sizes are read first, then the config (bounded in size and nesting), and
the parameters its layers declare are counted: a model that declares more weights than the
file holds (at one byte per weight, the smallest storage Keras has), or more than
`memory_budget()` bytes as float32, is refused before anything is built.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from cnnviz.errors import UsageError

CONFIG = "config.json"
WEIGHTS = "model.weights.h5"
MAX_CONFIG_BYTES = 16 * 2**20  # ResNet152's config is about 0.5 MB
MAX_NESTING = 200  # a config's arrays and objects inside each other
SLACK_BYTES = 2**20  # weights a model may declare beyond what its file holds (rounding, optimiser)


def check_keras_archive(path: Path) -> None:
    """Refuse (UsageError, one line) a .keras archive whose config is too large or too deep,
    or whose layers declare more weights than the file holds or memory allows."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename: info for info in archive.infolist()}
            if CONFIG not in members:
                return  # Keras says what is missing
            if members[CONFIG].file_size > MAX_CONFIG_BYTES:
                raise UsageError(f"{path}: its {CONFIG} is {members[CONFIG].file_size:,} bytes; "
                                 f"at most {MAX_CONFIG_BYTES:,}", "model")
            with archive.open(CONFIG) as handle:
                text = handle.read(MAX_CONFIG_BYTES + 1)
            held = members[WEIGHTS].file_size if WEIGHTS in members else 0
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError):
        return  # not an archive Keras can read either: it says why
    if len(text) > MAX_CONFIG_BYTES:
        raise UsageError(f"{path}: its {CONFIG} inflates past {MAX_CONFIG_BYTES:,} bytes", "model")
    if json_depth(text) > MAX_NESTING:
        raise UsageError(f"{path}: its {CONFIG} nests deeper than {MAX_NESTING} levels", "model")
    try:
        config = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return
    declared = declared_parameters(config)
    if declared > held + SLACK_BYTES:
        raise UsageError(f"{path}: its layers declare {declared:,} weights but the file holds "
                         f"{held:,} bytes of weights; refusing to build it", "model")
    if declared * 4 > memory_budget():
        raise UsageError(f"{path}: its layers declare {declared:,} weights ({declared * 4 / 2**30:.1f} "
                         f"GB as float32), more than half of this machine's memory", "model")


def json_depth(text: bytes) -> int:
    """How deeply a JSON text nests arrays and objects (brackets inside strings count too:
    an over-estimate, which only refuses odd texts)."""
    brackets = np.frombuffer(text.translate(None, _NOT_BRACKETS), np.uint8)
    if not brackets.size:
        return 0
    opening = (brackets == ord("[")) | (brackets == ord("{"))
    return int(np.cumsum(np.where(opening, 1, -1)).max())


_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def declared_parameters(config) -> int:
    """The weights the layers of a Keras config declare (layers cnnviz does not know count 0;
    a layer with no recorded input size counts one input channel: a lower bound)."""
    total, stack = 0, [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("class_name"), str) and isinstance(item.get("config"), dict):
                total += _layer_parameters(item["class_name"], item["config"],
                                           item.get("build_config"))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return total


def _layer_parameters(kind: str, config: dict, build) -> int:
    inputs = _input_channels(build, config.get("data_format"))

    def size(name: str) -> int:
        value = config.get(name, 1)
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
            return 0
        return int(np.prod(values, dtype=object))

    filters, kernel = size("filters"), size("kernel_size")
    if kind == "Dense":
        return size("units") * (inputs + 1)
    if kind.startswith("Conv") and kind[4:6] in ("1D", "2D", "3D"):
        return filters * kernel * max(inputs // max(size("groups"), 1), 1) + filters
    if kind.startswith("DepthwiseConv"):
        return kernel * inputs * size("depth_multiplier")
    if kind.startswith("SeparableConv"):
        return inputs * size("depth_multiplier") * (kernel + filters) + filters
    if kind == "Embedding":
        return size("input_dim") * size("output_dim")
    if kind == "BatchNormalization":
        return 4 * inputs
    return 0


def _input_channels(build, data_format) -> int:
    """The channels of a layer's input from its build_config (1 when not recorded)."""
    shape = build.get("input_shape") if isinstance(build, dict) else None
    if not isinstance(shape, list) or not shape:
        return 1
    channels = shape[1 if data_format == "channels_first" and len(shape) > 2 else -1]
    return channels if isinstance(channels, int) and not isinstance(channels, bool) and \
        channels > 0 else 1


def memory_budget() -> int:
    """Half of this machine's physical memory, in bytes (8 GiB where it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30
