"""Training: the input pipeline, fit with per-epoch checkpoints into the bundle, resume, NaN guard."""

from __future__ import annotations

import datetime as _dt
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from cnnviz.runtime import import_tensorflow

import_tensorflow()  # quietly, before the imports below

import keras
import numpy as np
import tensorflow as tf

from cnnviz import bundle, distributed
from cnnviz.version import __version__
from cnnviz.atomic import atomic_path
from cnnviz.data import Dataset, Preprocessing
from cnnviz.errors import CnnvizError, UsageError
from cnnviz.model import build_model, compile_model, current_learning_rate, read_keras
from cnnviz.spec import NetworkSpec, TrainSpec, network_to_json

# Steps run inside one compiled call: this tiny network is dominated by per-step overhead
# (see benchmarks/bench_train.py for the measured effect).
STEPS_PER_EXECUTION = 32
EVAL_BATCH = 1000


class TrainingInterrupted(CnnvizError):
    """Ctrl-C: the bundle keeps the last completed epoch and can be resumed."""

    exit_code = 130


def epoch_order(n: int, seed: int, epoch) -> tf.Tensor:
    """The shuffled image order of one epoch: a pure function of (seed, epoch), so a resumed
    run sees exactly the batches an uninterrupted one would."""
    key = tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)])
    return tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int32), seed=key)


class ShuffledEpochs(keras.callbacks.Callback):
    """The training batches: one finite epoch, reshuffled at every epoch start.

    The preprocessed images stay in one tensor; each batch is a gather of its indices.
    Keras re-iterates a finite dataset every epoch, so an epoch ends exactly at its last
    batch even when several steps run per compiled call.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int):
        super().__init__()
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        images, labels, n = tf.constant(x), tf.constant(y), len(x)
        self.steps = math.ceil(n / batch_size)
        self.dataset = (
            tf.data.Dataset.from_tensors(0)
            .flat_map(lambda _: tf.data.Dataset.from_tensor_slices(
                epoch_order(n, seed, self.epoch.read_value())))
            .batch(batch_size)
            .map(lambda idx: (tf.gather(images, idx), tf.gather(labels, idx)),
                 num_parallel_calls=tf.data.AUTOTUNE)
            .apply(tf.data.experimental.assert_cardinality(self.steps))
            .prefetch(tf.data.AUTOTUNE)
            .with_options(_shard_by_data()))

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch.assign(epoch)


def _shard_by_data() -> tf.data.Options:
    """Under a multi-worker strategy each worker takes its share of every batch (the batches
    come from tensors, not files)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options


def evaluation_dataset(x: np.ndarray, y: np.ndarray) -> tf.data.Dataset:
    return (tf.data.Dataset.from_tensor_slices((x, y)).batch(EVAL_BATCH).cache().prefetch(2)
            .with_options(_shard_by_data()))


def fit(model: keras.Model, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
        *, batch_size: int, seed: int, epochs: int, initial_epoch: int = 0,
        callbacks: Sequence[keras.callbacks.Callback] = (), verbose: int | str = "auto"):
    """cnnviz's training path: model.fit over `ShuffledEpochs`, validating every epoch (on
    the replicas of the strategy whose scope the caller is in)."""
    batches = ShuffledEpochs(x, y, batch_size, seed)
    if isinstance(distributed.active_scope(), tf.distribute.MultiWorkerMirroredStrategy):
        _around_keras_multi_worker(model)
    return model.fit(batches.dataset, epochs=epochs, initial_epoch=initial_epoch,
                     validation_data=evaluation_dataset(x_val, y_val),
                     callbacks=[batches, *callbacks], verbose=verbose, shuffle=False)


def _around_keras_multi_worker(model: keras.Model) -> None:
    """Two gaps of Keras 3's fit under a multi-worker strategy (3.15): its symbolic build
    reduces the first (x, y) batch, a structure the collective reduce refuses; and it
    reduces each scalar log along axis 0. The model is left to the strategy of the scope fit
    runs in (the same one), and every log is given an axis (the same values)."""
    model._distribute_strategy = None

    def with_axis(step):
        return lambda data: {k: tf.reshape(v, [1]) for k, v in step(data).items()}

    model.train_step = with_axis(model.train_step)
    model.test_step = with_axis(model.test_step)


@dataclass
class RunState:
    """What run.json says about a run while it trains."""

    run: dict
    history: dict[str, list[float]] = field(default_factory=dict)
    diverged_epoch: int | None = None


class BundleCheckpoint(keras.callbacks.Callback):
    """After every good epoch: model.keras, history.csv, run.json and curves.png, atomically.

    A NaN or infinite loss stops training without saving, so the bundle keeps the last
    good epoch.
    """

    def __init__(self, folder: Path, state: RunState,
                 after_epoch: Callable[[Path, dict, int], None] | None = None):
        super().__init__()
        self.folder, self.state, self.after_epoch = folder, state, after_epoch
        self._start = 0.0
        self._rate = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._rate = current_learning_rate(self.model)

    def on_train_batch_end(self, batch, logs=None):
        if logs and not math.isfinite(float(logs.get("loss", 0.0))):
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if not all(math.isfinite(float(v)) for v in logs.values()):
            self.state.diverged_epoch = epoch + 1
            self.model.stop_training = True
            return
        seconds = time.perf_counter() - self._start
        row = {k: float(v) for k, v in logs.items()} | {"learning_rate": self._rate,
                                                         "seconds": seconds}
        for key, value in row.items():
            self.state.history.setdefault(key, []).append(value)
        with atomic_path(self.folder / bundle.MODEL_FILE) as tmp:
            self.model.save(tmp)
        bundle.write_history(self.folder, self.state.history)
        run = self.state.run
        run.update(status="running", epochs_completed=epoch + 1, updated=_now(),
                   epoch_seconds=self.state.history["seconds"])
        bundle.write_run(self.folder, run)
        if self.after_epoch is not None:  # e.g. draw the curves (this module never draws)
            self.after_epoch(self.folder, self.state.history, epoch + 1)


@dataclass
class TrainResult:
    folder: Path
    run: dict
    history: dict[str, list[float]]


def train_bundle(folder: Path, network: NetworkSpec, training: TrainSpec, data: Dataset, *,
                 preset: str = "", device: str = "cpu", resume: bool = False,
                 initial_weights: Path | None = None, tensorboard_dir: Path | None = None,
                 callbacks: Sequence[keras.callbacks.Callback] = (),
                 after_epoch: Callable[[Path, dict, int], None] | None = None,
                 verbose: int | str = "auto", log: Callable[[str], None] | None = None,
                 strategy=None) -> TrainResult:
    """Train into the bundle folder (created if needed), or resume the run it holds, on
    `strategy`'s replicas (default: the active one, see cnnviz.distributed); the batch size
    is the global batch, split evenly over the replicas.

    `after_epoch(folder, history, epoch)` runs after each checkpoint (the CLI and the library
    draw curves.png there); `log` receives progress lines (nothing is printed otherwise).

    Raises:
        TrainingInterrupted: on Ctrl-C; the bundle keeps the last completed epoch.
        CnnvizError: when the loss becomes NaN; the bundle keeps the last good epoch.
    """
    log = log or (lambda line: None)
    strategy = distributed.resolve(strategy)
    replicas = distributed.replicas(strategy)
    if training.batch_size % replicas:
        fits = max(replicas, training.batch_size - training.batch_size % replicas)
        raise UsageError(f"batch size {training.batch_size} is the global batch: it must split "
                         f"evenly over the {replicas} replicas (e.g. {fits})", "batch_size")
    if replicas > 1:
        log(f"batch {training.batch_size} = {replicas} replicas × {training.batch_size // replicas}")
    keras.utils.set_random_seed(training.seed)
    with strategy.scope():
        return _train_in_scope(folder, network, training, data, preset, device, resume,
                               initial_weights, tensorboard_dir, callbacks, after_epoch, verbose,
                               log)


def _train_in_scope(folder, network, training, data, preset, device, resume, initial_weights,
                    tensorboard_dir, callbacks, after_epoch, verbose, log) -> TrainResult:
    if resume:
        run = bundle.read_run(folder)
        prep = Preprocessing.from_json(run["preprocessing"])
        model = read_keras(folder / bundle.MODEL_FILE, compile=True)
        start = int(run.get("epochs_completed", 0))
        # run.json is written last in a checkpoint: a process killed just before it leaves
        # history.csv one row ahead, and run.json's count is the one that holds
        history = {key: values[:start] for key, values in bundle.read_history(folder).items()}
        run["training"]["epochs"] = training.epochs
        log(f"resuming {folder.name} after epoch {start} of {training.epochs}")
    else:
        prep = Preprocessing.fit(training.normalize, data.x_train)
        model = build_model(network, training)
        compile_model(model, training, STEPS_PER_EXECUTION)
        if initial_weights is not None:
            load_initial_weights(model, initial_weights)
        folder.mkdir(parents=True, exist_ok=True)
        save_initial_weights(model, folder / bundle.INITIAL_WEIGHTS_FILE)
        start, history = 0, {}
        run = new_run(folder.name, network, training, data, prep, preset, device, initial_weights)
        bundle.write_run(folder, run)
    # Keras 3 cannot run several steps per call on more than one replica (keras#19246)
    model.steps_per_execution = STEPS_PER_EXECUTION if distributed.replicas(
        distributed.active_scope()) == 1 else 1
    state = RunState(run, history)
    extra = [keras.callbacks.TensorBoard(str(tensorboard_dir))] if tensorboard_dir else []
    x_train, x_test = prep.apply(data.x_train), prep.apply(data.x_test)
    try:
        try:
            fit(model, x_train, data.y_train, x_test, data.y_test, batch_size=training.batch_size,
                seed=training.seed, epochs=training.epochs, initial_epoch=start,
                callbacks=[BundleCheckpoint(folder, state, after_epoch), *extra, *callbacks],
                verbose=verbose)
        finally:  # callbacks working in the background (snapshots) end with fit
            for callback in callbacks:
                getattr(callback, "finish", lambda: None)()
    except KeyboardInterrupt:
        run.update(status="interrupted", updated=_now())
        bundle.write_run(folder, run)
        done = run.get("epochs_completed", 0)
        if not done:
            raise TrainingInterrupted(
                f"interrupted before the first epoch of {folder.name} ended: nothing to resume; "
                f"start it again with `cnnviz.train(name={folder.name!r}, force=True)`") from None
        raise TrainingInterrupted(
            f"interrupted: {folder} keeps epoch {done} of {training.epochs}; continue with "
            f"`cnnviz.train(name={folder.name!r}, resume=True)`") from None
    except (tf.errors.UnavailableError, tf.errors.CancelledError, tf.errors.AbortedError):
        # a multi-worker strategy lost a peer: the whole cluster restarts from the checkpoint
        run.update(status="interrupted", updated=_now())
        bundle.write_run(folder, run)
        raise CnnvizError(
            f"a worker of the cluster stopped answering: {folder.name} keeps epoch "
            f"{run.get('epochs_completed', 0)} of {training.epochs}; start every worker again "
            f"with `cnnviz.train(name={folder.name!r}, resume=True, strategy='multi-worker')`"
        ) from None
    if state.diverged_epoch is not None:
        run.update(status="diverged", updated=_now())
        bundle.write_run(folder, run)
        raise CnnvizError(
            f"loss became NaN in epoch {state.diverged_epoch}: training stopped; {folder} "
            f"keeps epoch {run.get('epochs_completed', 0)} (try a lower learning_rate=)")
    # validation runs on the test split after every epoch: its last values are the test metrics
    run.update(status="complete", updated=_now(), metrics={
        "test_accuracy": history_last(state.history, "val_accuracy"),
        "test_loss": history_last(state.history, "val_loss"),
        "train_accuracy": history_last(state.history, "accuracy"),
        "train_loss": history_last(state.history, "loss"),
        "train_metrics_note": "train values are the running mean over the last epoch",
    })
    bundle.write_run(folder, run)
    return TrainResult(folder, run, state.history)


def new_run(name: str, network: NetworkSpec, training: TrainSpec, data: Dataset,
            prep: Preprocessing, preset: str, device: str, initial_weights: Path | None) -> dict:
    """The run.json of a fresh run."""
    return {
        "name": name, "status": "running", "created": _now(), "updated": _now(),
        "epochs_completed": 0, "preset": preset,
        "network": network_to_json(network), "training": asdict(training),
        "seed": training.seed,
        "data": {"dataset": data.name, "source": data.source, "path": data.path,
                 "train_images": int(len(data.x_train)), "test_images": int(len(data.x_test))},
        "preprocessing": prep.to_json(),
        "initial_weights_from": str(initial_weights) if initial_weights else None,
        "device": device, "epoch_seconds": [], "metrics": {},
        "versions": {"python": platform.python_version(), "tensorflow": tf.__version__,
                     "keras": keras.__version__, "numpy": np.__version__,
                     "cnnviz": __version__},
    }


def save_initial_weights(model: keras.Model, path: Path) -> None:
    with atomic_path(path) as tmp:
        model.save_weights(tmp)


def load_initial_weights(model: keras.Model, path: Path) -> None:
    """Start from another bundle's initial weights; the architectures must match."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.load_weights(path)
    except (ValueError, OSError, KeyError) as exc:
        raise CnnvizError(f"from_initial: {path} does not fit this architecture "
                          f"({str(exc).splitlines()[0][:160]})", "from_initial") from None


def history_last(history: dict[str, list[float]], key: str) -> float | None:
    values = history.get(key)
    return float(values[-1]) if values else None


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")
