"""Keras models: build one from a spec, load one from a bundle or .keras file, describe its layers."""

from __future__ import annotations

import contextlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from cnnviz.runtime import import_tensorflow

import_tensorflow()  # quietly, before the imports below

import keras
import numpy as np

from cnnviz.bundle import ModelRef, read_run, resolve
from cnnviz.data import IMAGE_SIDE, Preprocessing
from cnnviz.errors import CnnvizError, UsageError
from cnnviz.names import slug
from cnnviz.spec import NetworkSpec, TrainSpec


def build_model(network: NetworkSpec, training: TrainSpec | None = None) -> keras.Model:
    """The CNN of `network`, named conv1, pool1, …, flatten, dense1, …, output.

    With `training`, its kernel regularisers are attached (compile with `compile_model`).
    """
    reg = _regularizer(training)
    conv_reg = reg if training is not None and training.reg_scope == "all" else None
    inputs = keras.Input((IMAGE_SIDE, IMAGE_SIDE, 1), name="image")
    x = inputs
    for i, (conv, pool) in enumerate(zip(network.convs, network.pools), 1):
        x = keras.layers.Conv2D(conv.filters, conv.kernel, activation=conv.activation,
                                kernel_regularizer=conv_reg, name=f"conv{i}")(x)
        if pool:
            x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for j, dense in enumerate(network.dense, 1):
        x = keras.layers.Dense(dense.units, activation=dense.activation,
                               kernel_regularizer=reg, name=f"dense{j}")(x)
    outputs = keras.layers.Dense(network.num_classes, activation=network.output_activation,
                                 kernel_regularizer=reg, name="output")(x)
    return keras.Model(inputs, outputs, name="cnnviz")


def compile_model(model: keras.Model, training: TrainSpec, steps_per_execution: int = 1) -> None:
    """Compile for training: optimizer with schedule, sparse categorical loss, accuracy."""
    model.compile(optimizer=make_optimizer(training),
                  loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=["accuracy"], steps_per_execution=steps_per_execution)


def make_optimizer(training: TrainSpec) -> keras.optimizers.Optimizer:
    """The optimizer of `training`, with its learning-rate schedule."""
    rate = training.learning_rate
    if training.schedule == "inverse-time":
        rate = keras.optimizers.schedules.InverseTimeDecay(rate, training.decay_steps,
                                                           training.decay_rate)
    elif training.schedule == "exponential":
        rate = keras.optimizers.schedules.ExponentialDecay(rate, training.decay_steps,
                                                           training.decay_rate)
    if training.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(rate, momentum=training.momentum)
    if training.optimizer == "sgd":
        return keras.optimizers.SGD(rate, momentum=training.momentum)
    return {"adam": keras.optimizers.Adam, "nadam": keras.optimizers.Nadam,
            "adamax": keras.optimizers.Adamax}[training.optimizer](rate)


def _regularizer(training: TrainSpec | None):
    if training is None or training.regularizer == "none" or training.reg_factor == 0:
        return None
    return (keras.regularizers.L1 if training.regularizer == "l1"
            else keras.regularizers.L2)(training.reg_factor)


def current_learning_rate(model: keras.Model) -> float:
    """The optimizer's learning rate at its current step (schedules evaluated)."""
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


@dataclass
class LoadedModel:
    """A model with what is known about how it was trained."""

    ref: ModelRef
    model: keras.Model
    run: dict
    preprocessing: Preprocessing

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def folder_name(self) -> str:
        """The name as one safe folder name (outputs/FOLDER_NAME/); see cnnviz.names."""
        return slug(self.ref.name)


def load_model(ref: str | None, trained_root: Path, compile: bool = False) -> LoadedModel:
    """Load a bundle (by name or folder) or a plain .keras file; None: the newest bundle."""
    found = resolve(ref, trained_root)
    run = read_run(found.bundle_dir) if found.bundle_dir else {}
    prep = Preprocessing.from_json(run.get("preprocessing"), str(found.bundle_dir / "run.json")) \
        if found.bundle_dir else Preprocessing()
    model = read_keras(found.model_path, compile=compile)
    _check_input(model, found.model_path)
    return LoadedModel(found, model, run, prep)


def from_keras_model(model: keras.Model) -> LoadedModel:
    """A keras.Model object (a notebook's own) as a LoadedModel: no run, input pixels / 255."""
    if not isinstance(model, keras.Model):
        raise UsageError(f"model must be a bundle name, a .keras path or a keras.Model, got "
                         f"{type(model).__name__}", "model")
    _check_input(model, model.name)
    return LoadedModel(ModelRef(model.name, Path(f"{model.name} (in memory)"), None), model, {},
                       Preprocessing())


def _check_input(model: keras.Model, where) -> None:
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[1:] != (IMAGE_SIDE, IMAGE_SIDE, 1):
        raise UsageError(f"{where}: input shape {shape}; cnnviz needs a model of 28x28x1 images")


TRUST_ENV = "CNNVIZ_TRUST_MODEL"


def trusted() -> bool:
    """Whether the user opted in to loading .keras files that may run code (off by default)."""
    return os.environ.get(TRUST_ENV, "") in ("1", "true", "yes")


def read_keras(path: Path, compile: bool = False) -> keras.Model:
    """keras.models.load_model with a one-line error for a missing or corrupt file."""
    if path.is_file() and not zipfile.is_zipfile(path):
        what = "an empty file" if path.stat().st_size == 0 else "not a .keras (zip) archive"
        raise CnnvizError(f"cannot load {path}: {what}; retrain the bundle or give a valid .keras file")
    try:
        with _quiet_keras_warnings():
            return keras.models.load_model(path, compile=compile, safe_mode=not trusted())
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        if "safe_mode" in str(exc):
            raise UsageError(f"{path} was refused: loading it could run code stored in it (a "
                             "Lambda layer or custom code); if you trust this file, pass "
                             f"--trust-model (or set {TRUST_ENV}=1)") from None
        reason = " ".join(str(exc).split())
        reason = reason if len(reason) <= 200 else reason[:reason.rfind(" ", 0, 200)] + " …"
        reason = reason or type(exc).__name__
        raise CnnvizError(f"cannot load {path}: Keras could not read it ({reason})") from None


@contextlib.contextmanager
def _quiet_keras_warnings():
    """Keras warns on stderr (e.g. about compiled metrics); cnnviz prints only its own lines."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@dataclass(frozen=True)
class LayerInfo:
    """One layer: its output shape, parameters and where it looks on the input image."""

    name: str
    kind: str
    output_shape: tuple
    params: int
    receptive_field: int | None  # side in input pixels; None: the whole image (dense layers)
    stride: int | None           # input pixels between neighbouring output positions


def layer_table(model: keras.Model) -> list[LayerInfo]:
    """Every layer with its receptive field and effective stride on the input image.

    Follows the chain r_out = r_in + (k - 1) * j_in, j_out = j_in * s through conv and pool
    layers (article2: conv1 3, pool1 4, conv2 8, pool2 10, conv3 18 pixels).
    """
    rows, field, jump = [], 1, 1
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        kernel, stride = _window(layer)
        if kernel is not None and field is not None:
            field, jump = field + (kernel - 1) * jump, jump * stride
        elif kernel is None and len(layer.output.shape) != 4:
            field = jump = None
        rows.append(LayerInfo(layer.name, type(layer).__name__, tuple(layer.output.shape),
                              int(layer.count_params()), field, jump))
    return rows


def _window(layer) -> tuple[int | None, int | None]:
    """(kernel side, stride) of a conv or pool layer, scaled for dilation; (None, None) else."""
    if isinstance(layer, keras.layers.Conv2D):
        k, s, d = layer.kernel_size[0], layer.strides[0], layer.dilation_rate[0]
        return d * (k - 1) + 1, s
    if isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)):
        return layer.pool_size[0], layer.strides[0]
    return None, None


def resolve_layers(model: keras.Model, spec: str) -> list[str]:
    """`conv2`, `conv1,pool1` or `all` → layer names, in model order; unknown names list the valid ones."""
    from cnnviz.layers import layers_for

    valid = layers_for(model, "activations")
    if spec.strip().lower() == "all":
        return valid
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in valid]
    if unknown or not names:
        raise UsageError(f"unknown layer {', '.join(unknown) or repr(spec)}; "
                         f"valid: {', '.join(valid)}, all")
    return [n for n in valid if n in names]


def parameter_count(model: keras.Model) -> int:
    return int(np.sum([layer.count_params() for layer in model.layers]))
