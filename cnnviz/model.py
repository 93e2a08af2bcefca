"""Keras models: build one from a spec, load one from a bundle or .keras file, describe its layers."""

from __future__ import annotations

import contextlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

from cnnviz.runtime import import_tensorflow

import_tensorflow()  # quietly, before the imports below

import keras

from cnnviz.archive import check_keras_archive
from cnnviz.bundle import ModelRef, dataset_of, read_history, read_run, resolve
from cnnviz.data import IMAGE_SIDE
from cnnviz.errors import CnnvizError, UsageError
from cnnviz.graph import check_model, graph_of
from cnnviz.inputs import Preprocessing, detect
from cnnviz.layers import resolve_layers  # noqa: F401  (where it used to live)
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
    epoch: int | None = None  # a snapshot's epoch: the weights as they were then
    stamp: tuple | None = None  # the model file's (inode, size, modification time) when read

    def reload_if_changed(self) -> bool:
        """Read the weights again when the bundle's model file changed since (a run that is
        training now saves it after every epoch); True when they were. A plain .keras file
        or a snapshot never changes."""
        if self.ref.bundle_dir is None or self.epoch is not None:
            return False
        try:
            stamp = file_stamp(self.ref.model_path)
        except OSError:
            return False
        if stamp == self.stamp:
            return False
        fresh = read_keras(self.ref.model_path)  # written atomically: whole or not yet
        self.model.set_weights(fresh.get_weights())
        self.run, self.stamp = read_run(self.ref.bundle_dir), stamp
        return True

    def training_state(self) -> dict | None:
        """A bundle's run as it stands: status, epochs done and planned, the history so far
        (None for a plain .keras file)."""
        if self.ref.bundle_dir is None:
            return None
        run = read_run(self.ref.bundle_dir)
        return {"status": run.get("status"), "epochs_completed": run.get("epochs_completed", 0),
                "epochs": (run.get("training") or {}).get("epochs"),
                "history": read_history(self.ref.bundle_dir)}

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def folder_name(self) -> str:
        """The name as one safe folder name (outputs/FOLDER_NAME/); see cnnviz.names."""
        return slug(self.ref.name)


    def classes(self, data_names: tuple[str, ...] | None = None) -> tuple[str, ...]:
        """Names of the model's output classes: the bundle's dataset's, else the data's (when
        their count matches the output), else 0, 1, …"""
        from cnnviz.bundle import dataset_of
        from cnnviz.data import class_names

        graph = graph_of(self.model)
        count = graph.shape(graph.output_address)[-1]
        for names in (class_names(dataset_of(self.run)[0]) if self.run else None, data_names,
                      class_names("mnist")):
            if names is not None and len(names) == count:
                return tuple(names)
        return tuple(str(i) for i in range(count))

    @property
    def image_shape(self) -> tuple[int, ...]:
        """The input image: (H, W) for one channel, (H, W, C) otherwise."""
        h, w, c = graph_of(self.model).input_shape[1:]
        return (h, w) if c == 1 else (h, w, c)


def load_model(ref: str | None, trained_root: Path, compile: bool = False,
               preprocess: str | Preprocessing | None = None,
               trust: bool | None = None, epoch: int | None = None) -> LoadedModel:
    """Load a bundle (by name or folder) or a plain .keras file; None: the newest bundle.

    preprocess: how pixels become input for a plain model (see cnnviz.inputs); a bundle
    records its own. epoch: the bundle's weights as they were after that epoch (one of its
    snapshots, see cnnviz.snapshots), named NAME-epoch-K."""
    found = resolve(ref, trained_root)
    if epoch is not None and found.bundle_dir is None:
        raise UsageError(f"epoch={epoch}: {found.name} is a plain .keras file; only a bundle "
                         "trained with snapshots=K has earlier epochs", "epoch")
    run = read_run(found.bundle_dir) if found.bundle_dir else {}
    stamp = file_stamp(found.model_path) if found.bundle_dir else None
    model = read_keras(found.model_path, compile=compile, trust=trust)
    check_model(model)
    if epoch is not None:
        from dataclasses import replace

        from cnnviz import snapshots

        model.set_weights(snapshots.weights(snapshots.read(found.bundle_dir, epoch)))
        found = replace(found, name=f"{found.name}-epoch-{epoch}")
    if found.bundle_dir:
        if preprocess is not None:
            raise UsageError(f"{found.name} is a cnnviz bundle: its preprocessing is recorded "
                             "in run.json; preprocess is for plain models", "preprocess")
        prep = Preprocessing.from_json(run.get("preprocessing"), str(found.bundle_dir / "run.json"),
                                       graph_of(model).input_shape[1:3])
    else:
        prep = input_convention(model, preprocess)
    return LoadedModel(found, model, run, prep, epoch, stamp)


def file_stamp(path: Path) -> tuple[int, int, int]:
    """What changes when a file is replaced (a rename gives a new inode even within the same
    second of a coarse clock)."""
    found = path.stat()
    return found.st_ino, found.st_size, found.st_mtime_ns


def from_keras_model(model: keras.Model, preprocess: str | Preprocessing | None = None) -> LoadedModel:
    """A keras.Model object (a notebook's own) as a LoadedModel, with no run."""
    check_model(model)
    return LoadedModel(ModelRef(model.name, Path(f"{model.name} (in memory)"), None), model, {},
                       input_convention(model, preprocess))


def input_convention(model: keras.Model, preprocess: str | Preprocessing | None) -> Preprocessing:
    """How pixels become this plain model's input: as given, else detected (a leading
    Rescaling or Normalization layer: raw pixels), else pixels / 255 (origin `default`)."""
    if isinstance(preprocess, str):
        preprocess = Preprocessing.parse(preprocess)
    prep = preprocess or detect(model) or Preprocessing("unit")
    prep.check_channels(graph_of(model).input_shape[-1])
    return prep


def input_note(prep: Preprocessing) -> str | None:
    """A line telling how the input was decided, when it was not given or recorded."""
    if prep.origin == "default":
        return (f"input: assumed {prep.describe()}; pass preprocess="
                "unit|raw|symmetric|caffe|torch|MEAN,STD if the model expects otherwise")
    if prep.origin.startswith("detected"):
        return f"input: {prep.describe()} ({prep.origin})"
    return None


def read_keras(path: Path, compile: bool = False, trust: bool | None = None) -> keras.Model:
    """keras.models.load_model with a one-line error for a missing or corrupt file; `trust`:
    load even when that could run code stored in the file (off unless the user says so)."""
    if path.is_file() and not zipfile.is_zipfile(path):
        what = "an empty file" if path.stat().st_size == 0 else "not a .keras (zip) archive"
        raise CnnvizError(f"cannot load {path}: {what}; retrain the bundle or give a valid .keras file")
    if path.is_file():
        check_keras_archive(path)
    try:
        with _quiet_keras_warnings():
            return keras.models.load_model(path, compile=compile,
                                           safe_mode=not trust)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        if "safe_mode" in str(exc):
            raise UsageError(f"{path} was refused: loading it could run code stored in it (a "
                             "Lambda layer or custom code); if you trust this file, pass "
                             "trust_model=True", "trust_model") from None
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

    name: str                   # its address (outer/inner inside a nested model)
    kind: str
    output_shape: tuple
    params: int
    receptive_field: tuple[int, int] | None  # (height, width) in input pixels; None: the
    #                                          whole image (vectors) or unknown (see known)
    stride: tuple[int, int] | None           # input pixels between neighbouring positions
    depth: int = 0              # how deeply nested
    nested: bool = False        # a nested model (its layers follow, indented)
    known: bool = True          # False: a layer whose geometry cnnviz cannot follow

    def field_text(self) -> str:
        if self.receptive_field is None:
            return "image" if self.known else "?"
        return "x".join(map(str, self.receptive_field))

    def stride_text(self) -> str:
        if self.stride is None:
            return "-" if self.known else "?"
        return str(self.stride[0]) if self.stride[0] == self.stride[1] else "x".join(map(str, self.stride))


def layer_table(model: keras.Model) -> list[LayerInfo]:
    """Every layer (nested ones included, after their model) with its receptive field and
    stride measured from the graph: the input pixels one output position sees, followed
    through every branch (article2: conv1 3, pool1 4, conv2 8, pool2 10, conv3 18 pixels)."""
    rows = []
    for step in graph_of(model).steps:
        window = step.window
        field = None if window is None else (window[0].size, window[1].size)
        stride = None if window is None else (window[0].jump, window[1].jump)
        rows.append(LayerInfo(step.address, type(step.layer).__name__, step.shape,
                              int(getattr(step.layer, "count_params", lambda: 0)()), field, stride,
                              step.depth, step.nested, step.known))
    return rows


def parameter_count(model: keras.Model) -> int:
    return int(model.count_params())


def digit_input(loaded) -> bool:
    """Whether a model takes MNIST digits (28×28 gray, trained on mnist; plain models are
    taken to be): its own images are then prepared as MNIST prepared its digits."""
    return tuple(loaded.image_shape) == (IMAGE_SIDE, IMAGE_SIDE) and \
        dataset_of(loaded.run)[0] == "mnist"
