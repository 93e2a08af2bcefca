"""Planning and running training for the command line and the library: which bundles, with
which settings, from which data; a lock per bundle; resume; the curves drawn after every
epoch; progress as a callback. (cnnviz.training fits one bundle and never draws.)"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator

from cnnviz.runtime import import_tensorflow

import_tensorflow()  # quietly, before Keras

import keras  # noqa: E402

from cnnviz import bundle, distributed
from cnnviz.data import IMAGE_SIDE, Dataset, load_dataset
from cnnviz.errors import CnnvizError, UsageError
from cnnviz.model import LoadedModel, load_model
from cnnviz.render.figures import training_curves
from cnnviz.render.notebook import LiveCurves, in_kernel
from cnnviz.runtime import select_device
from cnnviz.spec import (NetworkSpec, TrainSpec, network_from_json, read_config,
                         resolve_settings, same_settings, specs_from_settings)
from cnnviz.training import TrainResult, train_bundle
from cnnviz.watching import Snapshots


def draw_curves(folder: Path, history: dict, epoch: int) -> None:
    """curves.png of a bundle, redrawn after every epoch."""
    training_curves(history, folder / bundle.CURVES_FILE, title=f"{folder.name}: epoch {epoch}")


class EpochProgress(keras.callbacks.Callback):
    """Calls progress(epoch, logs) after every epoch (1-based)."""

    def __init__(self, progress: Callable[[int, dict], None]):
        super().__init__()
        self.progress = progress

    def on_epoch_end(self, epoch, logs=None):
        self.progress(epoch + 1, {k: float(v) for k, v in (logs or {}).items()})


@dataclass
class Plan:
    """What a training command will do."""

    runs: list[tuple[str, TrainSpec]]  # (bundle name, its training settings), in order
    network: NetworkSpec
    preset: str
    dataset: str
    data_path: str | None
    resumed: dict | None = None        # the run.json of the bundle being resumed
    initial: Path | None = None        # initial weights to start from


def plan_training(trained_dir: Path, *, hold: Callable[[Path], None], name: str | None = None,
                  preset: str | None = None, config: str | Path | None = None,
                  overrides: dict[str, Any] | None = None, dataset: str | None = None,
                  data_path: str | Path | None = None, runs: int = 1, resume: bool = False,
                  force: bool = False, from_initial: str | None = None) -> Plan:
    """Check a training request and plan it. `hold(folder)` is called for every bundle the
    plan will write, before anything about it is read: it takes the bundle's lock."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if runs < 1:
        raise UsageError(f"runs must be ≥ 1, got {runs}", "runs")
    if runs > 1 and resume:
        raise UsageError("runs cannot be combined with resume; resume each run by its name, "
                         "e.g. name=base-2 resume=True", "runs")
    if resume:
        name = bundle.check_name(name or f"{dataset or 'mnist'}-{preset or 'article2'}")
        hold(trained_dir / name)
        run, network, training = _resume_plan(trained_dir / name, preset, config, dataset,
                                              from_initial, force, overrides)
        return Plan([(name, training)], network, run.get("preset", ""),
                    bundle.dataset_of(run)[0], data_path or bundle.recorded_data(run), run)
    preset, settings = resolve_settings(preset, config, overrides)
    network, training = specs_from_settings(settings)
    dataset = dataset or "mnist"
    name = bundle.check_name(name or f"{dataset}-{preset}")
    names = [name] if runs == 1 else [f"{name}-{i}" for i in range(1, runs + 1)]
    for each in names:
        hold(trained_dir / each)
    for each in names:
        if (trained_dir / each).exists() and not force:
            raise UsageError(f"bundle {trained_dir / each} exists; replace it (force=True), "
                             "continue it (resume=True), or choose another name")
    initial = _initial_weights(from_initial, trained_dir) if from_initial else None
    return Plan([(each, replace(training, seed=training.seed + i)) for i, each in enumerate(names)],
                network, preset, dataset, None if data_path is None else str(data_path),
                None, initial)


def run_plan(plan: Plan, trained_dir: Path, data: Dataset, device: str = "cpu",
             callbacks: list = (), tensorboard_dir: Path | None = None,
             verbose: int | str = 0, log: Callable[[str], None] | None = None,
             announce: Callable[[str, TrainSpec], None] | None = None,
             write_dir: Path | None = None, strategy=None, snapshots: int | None = None,
             after_epoch: Callable[[Path, dict, int], None] = draw_curves
             ) -> Iterator[tuple[str, TrainResult]]:
    """Train every bundle of the plan in turn, yielding (name, result) as each ends;
    `announce(name, training)` is called as each starts. write_dir: where a worker that is
    not the chief writes its copy (a bundle to resume is copied there first); trained_dir
    is then only read. snapshots: take one every that many epochs (see Snapshots)."""
    if data.image_shape != (IMAGE_SIDE, IMAGE_SIDE):
        raise CnnvizError(f"{data.source}: x_train has shape {data.x_train.shape}; expected "
                          f"(N, {IMAGE_SIDE}, {IMAGE_SIDE}) or (N, {IMAGE_SIDE}, {IMAGE_SIDE}, 1): "
                          "the article networks take 28x28 gray images")
    if plan.resumed is not None:
        want = (plan.resumed["data"].get("train_images"), plan.resumed["data"].get("test_images"))
        if want != (len(data.x_train), len(data.x_test)):
            raise UsageError(f"resume=True: the run trained on {want[0]} train / {want[1]} test "
                             f"images but {data.describe()}; pass the same data=")
    for name, training in plan.runs:
        folder = (write_dir or trained_dir) / name
        if plan.resumed is None and folder.exists():
            shutil.rmtree(folder)
        if write_dir is not None and plan.resumed is not None:
            shutil.copytree(trained_dir / name, folder, dirs_exist_ok=True)
        if announce is not None:
            announce(name, training)
        yield name, train_bundle(folder, plan.network, training, data, preset=plan.preset,
                                 device=device, resume=plan.resumed is not None,
                                 initial_weights=plan.initial, tensorboard_dir=tensorboard_dir,
                                 callbacks=list(callbacks) + ([Snapshots(
                                     folder, snapshots, data, tensorboard_dir)]
                                     if snapshots else []),
                                 after_epoch=after_epoch,
                                 verbose=verbose, log=log, strategy=strategy)


def train_runs(trained_dir: Path, *, preset: str | None = None, name: str | None = None,
               dataset: str | None = None, data: str | Path | None = None,
               config: str | Path | None = None, settings: dict[str, Any] | None = None,
               runs: int = 1, resume: bool = False, force: bool = False,
               from_initial: str | None = None, device: str = "auto",
               tensorboard: str | Path | None = None, verbose: int | str = 0,
               progress: Callable[[int, dict], None] | None = None, strategy=None,
               cluster_timeout: float = 300, snapshots: int | None = None,
               live: bool | str = False,
               checkpointed: Callable[[Path, int], None] | None = None,
               report: Callable[[str], None] | None = None) -> list[LoadedModel]:
    """`cnnviz.train` and `cnnviz train`: plan, lock each bundle, train every run, and return
    them loaded; `report` receives the lines the command prints (data, each run's start and
    end, the spread over runs). A worker that is not the chief trains its copy in a
    temporary folder (removed at exit) and returns those copies. checkpointed(folder,
    epoch): called after each epoch's checkpoint of each run (on the chief)."""
    from cnnviz import runtime

    say = report or (lambda line: None)
    if tensorboard is not None and not runtime.has_module("tensorboard"):
        raise CnnvizError("tensorboard= needs the tensorboard package: "
                          "pip install 'cnnviz[tensorboard]'", "tensorboard")
    if isinstance(strategy, str):
        if strategy == "multi-worker":
            select_device(device)  # before the strategy, which starts TensorFlow's runtime
        strategy = distributed.make_strategy(strategy, cluster_timeout)
    strategy = distributed.resolve(strategy)
    if distributed.replicas(strategy) > 1 or distributed.workers(strategy) > 1:
        say(distributed.describe(strategy))
    chief = distributed.is_chief(strategy)
    with contextlib.ExitStack() as held:
        plan = plan_training(trained_dir, hold=lambda f: held.enter_context(bundle.writing(f))
                             if chief else None, name=name, preset=preset, config=config,
                             overrides=settings, dataset=dataset, data_path=data, runs=runs,
                             resume=resume, force=force, from_initial=from_initial)
        used_device = select_device(device)
        found = load_dataset(plan.dataset, plan.data_path)
        say(f"data: {found.describe()}")
        write_dir = None if chief else Path(tempfile.mkdtemp(prefix="cnnviz-worker-"))
        if write_dir is not None:
            atexit.register(shutil.rmtree, write_dir, True)
            say(f"note: this worker's copy of {trained_dir.name} goes to {write_dir}, removed "
                f"when it ends; the chief writes {trained_dir}")

        shown: dict = {}  # the live curves of each run, in a notebook

        def announce(each: str, training: TrainSpec) -> None:
            say(f"model: {each} ({plan.preset or 'custom'}), device {used_device}, "
                f"{training.epochs} epochs, batch {training.batch_size}, seed {training.seed}")
            if live is True or (live == "auto" and in_kernel()):
                shown[each] = LiveCurves(each, training.epochs)

        def after_epoch(folder: Path, history: dict, epoch: int) -> None:
            draw_curves(folder, history, epoch)
            if folder.name in shown:
                shown[folder.name].update(history, epoch)
            if checkpointed is not None and chief:
                checkpointed(folder, epoch)

        accuracies = []
        for each, result in run_plan(plan, trained_dir, found, used_device,
                                     [EpochProgress(progress)] if progress else [],
                                     Path(tensorboard) if tensorboard and chief else None,
                                     verbose, say, announce, write_dir, strategy, snapshots,
                                     after_epoch):
            metrics, seconds = result.run["metrics"], result.history.get("seconds", [])
            accuracies.append(metrics["test_accuracy"])
            say(f"done: {each}: {len(seconds)} epochs on {found.name} ({found.source}); test "
                f"accuracy {metrics['test_accuracy']:.4f}, loss {metrics['test_loss']:.4f}; "
                f"{sum(seconds) / max(len(seconds), 1):.1f} s/epoch; bundle: "
                + (f"{result.folder}" if chief else f"{trained_dir / each} (written by the chief)"))
    if len(plan.runs) > 1:
        say(f"{len(plan.runs)} runs: test accuracy {min(accuracies):.4f}–{max(accuracies):.4f};"
            f" compare two with: cnnviz.compare('{plan.runs[0][0]}', '{plan.runs[1][0]}')")
    return [load_model(each, write_dir or trained_dir) for each, _ in plan.runs]


def _resume_plan(folder: Path, preset, config, dataset, from_initial, force,
                 overrides: dict) -> tuple[dict, NetworkSpec, TrainSpec]:
    """The run, network and training specs of the bundle to resume. Settings equal to the
    bundle's own are accepted (people re-run the same call with resume=True); only epochs
    may differ."""
    refused = [name for name, value in (("from_initial=", from_initial), ("force=True", force))
               if value]
    if refused:
        raise UsageError(f"resume=True continues the bundle as it is; it cannot be combined with "
                         f"{' or '.join(refused)}")
    if not (folder / bundle.RUN_FILE).is_file():
        raise UsageError(f"nothing to resume: no bundle {folder}; start it without resume=True")
    run = bundle.read_run(folder)
    if not (folder / bundle.MODEL_FILE).is_file():
        raise UsageError(f"nothing to resume: {folder} finished no epoch yet; "
                         "start again with force=True")
    try:
        network = network_from_json(run["network"])
        training = TrainSpec(**(run["training"] | {"epochs": overrides.get("epochs")
                                                  or run["training"]["epochs"]}))
    except (KeyError, TypeError) as exc:
        raise CnnvizError(f"{folder / bundle.RUN_FILE} is incomplete ({exc}); retrain with "
                          "force=True") from None
    given = {k: v for k, v in overrides.items() if k != "epochs"}
    if config is not None:
        from_file = read_config(config)
        if from_file.pop("preset", None) not in (None, run.get("preset")):
            given.setdefault("preset", "?")
        given = {k: v for k, v in from_file.items() if k != "epochs"} | given
    differ = same_settings(network, training, given)
    differ += [f"{name}={value} (the bundle's: {own})" for name, value, own in
               (("preset", preset, run.get("preset")),
                ("dataset", dataset, bundle.dataset_of(run)[0])) if value and value != own]
    if differ:
        raise UsageError(f"resume=True continues with the bundle's own settings; only epochs= may "
                         f"change (got {'; '.join(differ)})")
    done = int(run.get("epochs_completed", 0))
    if done >= training.epochs:
        raise UsageError(f"{folder.name} has finished {done} of {training.epochs} epochs; "
                         f"pass epochs=N with N > {done} to train further")
    return run, network, training


def _initial_weights(other: str, trained_dir: Path) -> Path:
    found = bundle.resolve(other, trained_dir)
    path = (found.bundle_dir / bundle.INITIAL_WEIGHTS_FILE) if found.bundle_dir else None
    if path is None or not path.is_file():
        raise UsageError(f"from_initial {other}: no {bundle.INITIAL_WEIGHTS_FILE} there; "
                         "name a bundle trained by cnnviz", "from_initial")
    return path
