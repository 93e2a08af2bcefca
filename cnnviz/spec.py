"""The network and training settings: frozen, validated dataclasses, presets, config files.

Settings live in one flat namespace (`conv`, `kernel`, `learning_rate`, …) shared by the
presets, `--config` files and the CLI flags, so a key means the same thing everywhere.
Later sources override earlier ones: preset < config file < flags.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterator

from cnnviz.data import IMAGE_SIDE, NORMALIZATIONS, NUM_CLASSES
from cnnviz.errors import UsageError

ACTIVATIONS = ("relu", "sigmoid", "elu", "tanh")
OUTPUT_ACTIVATIONS = ("softmax", "sigmoid")
OPTIMIZERS = ("rmsprop", "adam", "nadam", "adamax", "sgd")
MOMENTUM_OPTIMIZERS = ("rmsprop", "sgd")
SCHEDULES = ("none", "inverse-time", "exponential")
REGULARIZERS = ("none", "l1", "l2")
REG_SCOPES = ("dense", "all")


@dataclass(frozen=True)
class ConvLayer:
    filters: int
    kernel: int
    activation: str = "relu"


@dataclass(frozen=True)
class DenseLayer:
    units: int
    activation: str = "relu"


@dataclass(frozen=True)
class NetworkSpec:
    """Architecture: conv layers (each optionally followed by a 2x2 max-pool), dense layers."""

    convs: tuple[ConvLayer, ...]
    pools: tuple[bool, ...]
    dense: tuple[DenseLayer, ...]
    output_activation: str = "softmax"

    def __post_init__(self):
        if not self.convs:
            raise UsageError("conv: at least one conv layer is needed")
        for i, conv in enumerate(self.convs, 1):
            _positive(f"conv{i} filters", conv.filters)
            _positive(f"conv{i} kernel", conv.kernel)
            _choice(f"conv{i} activation", conv.activation, ACTIVATIONS)
        if len(self.pools) != len(self.convs):
            raise UsageError(f"pools: give one yes/no per conv layer ({len(self.convs)}), "
                             f"got {len(self.pools)}")
        for j, dense in enumerate(self.dense, 1):
            _positive(f"dense{j} units", dense.units)
            _choice(f"dense{j} activation", dense.activation, ACTIVATIONS)
        _choice("output_activation", self.output_activation, OUTPUT_ACTIVATIONS)
        list(self.map_sizes())  # raises where the maps would shrink below 1x1

    def map_sizes(self) -> Iterator[tuple[str, int]]:
        """(layer name, side of its square output maps) for every conv and pool layer."""
        side = IMAGE_SIDE
        for i, (conv, pool) in enumerate(zip(self.convs, self.pools), 1):
            if conv.kernel > side:
                raise UsageError(f"conv{i}: kernel {conv.kernel} does not fit its {side}x{side} "
                                 f"input, the maps would shrink below 1x1 (kernel ≤ {side})")
            side = side - conv.kernel + 1
            yield f"conv{i}", side
            if pool:
                if side < 2:
                    raise UsageError(f"pool{i}: its 1x1 input would shrink below 1x1 "
                                     f"(drop this pool or use smaller kernels)")
                side //= 2
                yield f"pool{i}", side

    @property
    def num_classes(self) -> int:
        return NUM_CLASSES


@dataclass(frozen=True)
class TrainSpec:
    """Optimizer, schedule, regularisation, epochs, batch size, seed, input normalisation."""

    optimizer: str = "rmsprop"
    learning_rate: float = 0.001
    momentum: float = 0.0
    schedule: str = "none"
    decay_steps: int = 1
    decay_rate: float = 0.0
    regularizer: str = "none"
    reg_factor: float = 0.0
    reg_scope: str = "dense"
    epochs: int = 5
    batch_size: int = 64
    seed: int = 1
    normalize: str = "standardize"

    def __post_init__(self):
        for name in ("learning_rate", "momentum", "decay_rate", "reg_factor"):
            if not math.isfinite(getattr(self, name)):
                raise UsageError(f"{name} must be a finite number, got {getattr(self, name)}")
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        if not self.learning_rate > 0:
            raise UsageError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0 <= self.momentum < 1:
            raise UsageError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.momentum and self.optimizer not in MOMENTUM_OPTIMIZERS:
            raise UsageError(f"momentum applies to {' and '.join(MOMENTUM_OPTIMIZERS)} only; "
                             f"set momentum=0 to use {self.optimizer}")
        _choice("schedule", self.schedule, SCHEDULES)
        _positive("decay_steps", self.decay_steps)
        if self.decay_rate < 0:
            raise UsageError(f"decay_rate must be ≥ 0, got {self.decay_rate}")
        if self.schedule == "exponential" and not 0 < self.decay_rate <= 1:
            raise UsageError(f"decay_rate for the exponential schedule must be in (0, 1], "
                             f"got {self.decay_rate}")
        _choice("regularizer", self.regularizer, REGULARIZERS)
        if self.reg_factor < 0:
            raise UsageError(f"reg_factor must be ≥ 0, got {self.reg_factor}")
        _choice("reg_scope", self.reg_scope, REG_SCOPES)
        _positive("epochs", self.epochs)
        _positive("batch_size", self.batch_size)
        if self.seed < 0:
            raise UsageError(f"seed must be ≥ 0, got {self.seed}")
        _choice("normalize", self.normalize, NORMALIZATIONS)


# ---- flat settings: presets, config files and flags share these keys ------------------

_LIST_KEYS = {"conv": int, "kernel": int, "conv_activation": str, "pools": bool,
              "dense": int, "dense_activation": str}
_SCALAR_KEYS = {f.name: f.type for f in fields(TrainSpec)} | {"output_activation": "str"}
SETTING_KEYS = tuple(_LIST_KEYS) + tuple(_SCALAR_KEYS)

PRESETS: dict[str, dict[str, Any]] = {
    "article2": {
        "conv": [32, 64, 64], "kernel": [3], "conv_activation": ["relu"], "pools": None,
        "dense": [70], "dense_activation": ["relu"], "output_activation": "softmax",
        "optimizer": "rmsprop", "learning_rate": 0.001, "momentum": 0.0, "schedule": "none",
        "decay_steps": 1, "decay_rate": 0.0, "regularizer": "none", "reg_factor": 0.0,
        "reg_scope": "dense", "epochs": 5, "batch_size": 64, "seed": 1,
        "normalize": "standardize",
    },
}
PRESETS["article3"] = PRESETS["article2"] | {
    "conv": [32, 64, 128], "dense": [120], "momentum": 0.9, "schedule": "inverse-time",
    "learning_rate": 0.001, "decay_steps": 1, "decay_rate": 0.001, "regularizer": "l2",
    "reg_factor": 0.001, "reg_scope": "dense", "epochs": 20,
}


def resolve_settings(preset: str | None = None, config: str | Path | None = None,
                     overrides: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """Merge preset < config file < overrides into one flat settings dict.

    The preset is `preset`, else the config file's `preset` key, else article2.
    Returns (preset name, settings); `specs_from_settings` validates them.
    """
    from_file = read_config(config) if config is not None else {}
    preset = preset or from_file.pop("preset", None) or "article2"
    if preset not in PRESETS:
        raise UsageError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
    settings = dict(PRESETS[preset])
    settings.update(from_file)
    settings.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return preset, {key: coerce(key, value) for key, value in settings.items()}


MAX_CONFIG_BYTES = 2**20


def read_config(path: str | Path) -> dict[str, Any]:
    """Read a JSON or TOML settings file (flat keys, dashes or underscores)."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise UsageError(f"config {path}: not a regular file; give a JSON or TOML file", "config")
    if path.is_file() and path.stat().st_size > MAX_CONFIG_BYTES:
        raise UsageError(f"config {path}: {path.stat().st_size:,} bytes; a settings file is "
                         f"at most {MAX_CONFIG_BYTES:,} bytes", "config")
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except FileNotFoundError:
        raise UsageError(f"config {path}: no such file", "config") from None
    except RecursionError:
        raise UsageError(f"config {path}: nested too deeply; a settings file is one flat "
                         "table of settings", "config") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
        raise UsageError(f"config {path}: not valid {kind} ({str(exc).splitlines()[0]})", "config") from None
    if not isinstance(data, dict):
        raise UsageError(f"config {path}: expected a table of settings, got {type(data).__name__}", "config")
    settings = {str(k).replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(settings) - set(SETTING_KEYS) - {"preset"})
    if unknown:
        raise UsageError(f"config {path}: unknown setting(s) {', '.join(unknown)}; "
                         f"valid: {', '.join(SETTING_KEYS)}", "config")
    return settings


def coerce(key: str, value: Any) -> Any:
    """Turn a flag string or config value into the setting's type, or say what is valid."""
    if key in _LIST_KEYS:
        return None if value is None else _as_list(key, value, _LIST_KEYS[key])
    if key not in _SCALAR_KEYS:
        raise UsageError(f"unknown setting {key!r}; valid: {', '.join(SETTING_KEYS)}")
    kind = {"int": int, "float": float, "str": str}[str(_SCALAR_KEYS[key])]
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    try:
        if kind is int and isinstance(value, (bool, float)):
            raise ValueError
        return kind(value)
    except (TypeError, ValueError):
        wanted = {int: "an integer", float: "a number", str: "text"}[kind]
        raise UsageError(f"{key} must be {wanted}, got {value!r}") from None


def _as_list(key: str, value: Any, item: type) -> list:
    if isinstance(value, str):
        value = [] if value.strip().lower() in ("", "none") else value.split(",")
    elif not isinstance(value, (list, tuple)):
        value = [value]
    parse = _parse_bool if item is bool else (lambda v: item(str(v).strip()))
    out = []
    for v in value:
        try:
            out.append(parse(v))
        except ValueError:
            kind = "yes/no values" if item is bool else "integers"
            raise UsageError(f"{key} must be a comma list of {kind}, got {value!r}") from None
    return out


def _parse_bool(v: Any) -> bool:
    text = str(v).strip().lower()
    if text in ("1", "yes", "true", "y"):
        return True
    if text in ("0", "no", "false", "n"):
        return False
    raise ValueError(v)


def specs_from_settings(settings: dict[str, Any]) -> tuple[NetworkSpec, TrainSpec]:
    """Build the validated network and training specs from flat settings."""
    n = len(settings["conv"])
    if n == 0:
        raise UsageError("conv: at least one conv layer is needed, e.g. conv=32,64,64")
    kernels = _per_layer("kernel", settings["kernel"], n, "conv")
    conv_acts = _per_layer("conv_activation", settings["conv_activation"], n, "conv")
    pools = settings.get("pools") or [True] * (n - 1) + [False]
    pools = _per_layer("pools", pools, n, "conv")
    m = len(settings["dense"])
    dense_acts = _per_layer("dense_activation", settings["dense_activation"], m, "dense") if m else []
    network = NetworkSpec(
        convs=tuple(ConvLayer(f, k, a) for f, k, a in zip(settings["conv"], kernels, conv_acts)),
        pools=tuple(pools),
        dense=tuple(DenseLayer(u, a) for u, a in zip(settings["dense"], dense_acts)),
        output_activation=settings["output_activation"],
    )
    training = TrainSpec(**{f.name: settings[f.name] for f in fields(TrainSpec)})
    return network, training


def _per_layer(key: str, values: list, n: int, kind: str) -> list:
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise UsageError(f"{key}: give one value or one per {kind} layer ({n}), got {len(values)}")
    return values


def settings_of(network: NetworkSpec, training: TrainSpec) -> dict[str, Any]:
    """The flat settings that build exactly these specs (inverse of specs_from_settings)."""
    return {"conv": [c.filters for c in network.convs],
            "kernel": [c.kernel for c in network.convs],
            "conv_activation": [c.activation for c in network.convs],
            "pools": list(network.pools), "dense": [d.units for d in network.dense],
            "dense_activation": [d.activation for d in network.dense] or ["relu"],
            "output_activation": network.output_activation, **asdict(training)}


def same_settings(network: NetworkSpec, training: TrainSpec, given: dict[str, Any]) -> list[str]:
    """Which of the `given` settings (parameters or config values) would change these specs:
    one line per setting, naming both values; [] when all are equal."""
    own = settings_of(network, training)
    differ = []
    for key, value in given.items():
        if key == "preset":
            differ.append("config= preset (the bundle's preset differs)")
            continue
        changed = specs_from_settings(own | {key: coerce(key, value)})
        if changed != (network, training):
            shown = ",".join(map(str, own[key])) if isinstance(own[key], list) else own[key]
            differ.append(f"{key}={value} (the bundle's: {shown})")
    return differ


def network_to_json(network: NetworkSpec) -> dict:
    return asdict(network)


def network_from_json(data: dict) -> NetworkSpec:
    return NetworkSpec(convs=tuple(ConvLayer(**c) for c in data["convs"]),
                       pools=tuple(data["pools"]),
                       dense=tuple(DenseLayer(**d) for d in data["dense"]),
                       output_activation=data["output_activation"])


def _positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{name} must be an integer ≥ 1, got {value!r}")


def _choice(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise UsageError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")
