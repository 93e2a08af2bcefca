"""Watching a run while it trains: the callback that takes its snapshots (see
cnnviz.probes.snapshot and cnnviz.snapshots).

A snapshot is recorded on a copy of the model, by a worker thread, while the next epoch
trains: the training thread only copies the weights (milliseconds). `finish()` waits for the
snapshots under way (cnnviz.training calls it however fit ends, an interrupt included).
"""

from __future__ import annotations

import math
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import keras
import numpy as np

from cnnviz import bundle, snapshots
from cnnviz.data import Dataset


class Snapshots(keras.callbacks.Callback):
    """A snapshot of the bundle at the start, every `every` epochs and after the last; a
    resumed run continues the series with the same plan, and takes the snapshot of its first
    epoch if the interrupted run had not written it. tensorboard_dir: the snapshots also as
    TensorBoard images and histograms (in its `snapshots/`)."""

    def __init__(self, folder: Path, every: int, data: Dataset,
                 tensorboard_dir: Path | None = None):
        super().__init__()
        self.folder, self.every, self.data = folder, every, data
        self.tensorboard_dir = tensorboard_dir
        self.plan = self.recorder = self.writer = self.copy = self.worker = None
        self.pending: list[Future] = []

    def on_train_begin(self, logs=None):
        from cnnviz.inputs import Preprocessing
        from cnnviz.layers import layers_for
        from cnnviz.probes.snapshot import SnapshotPlan, SnapshotRecorder, plan_for

        run = bundle.read_run(self.folder)
        there = snapshots.epochs(self.folder)
        if there:  # the plan the series began with
            self.plan = SnapshotPlan.from_arrays(snapshots.read(self.folder, there[-1], "plan/"))
        else:
            self.plan = plan_for(layers_for(self.model, "activations"),
                                 layers_for(self.model, "kernels"), self.data.y_test,
                                 len(self.data.x_train))
        self.copy = keras.models.clone_model(self.model)
        self.copy.set_weights(self.model.get_weights())
        self.recorder = SnapshotRecorder(
            self.copy, Preprocessing.from_json(run["preprocessing"]), self.plan,
            self.data.x_test[self.plan.probe_index], self.data.x_train[self.plan.subset_index])
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="cnnviz-snapshots")
        start = int(run.get("epochs_completed", 0))
        if self._due(start) and start not in there:
            self._take(start, {})

    def _due(self, epoch: int) -> bool:
        return epoch == 0 or epoch % self.every == 0 or epoch == self.params.get("epochs")

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        if all(math.isfinite(v) for v in logs.values()) and self._due(epoch + 1):
            self._take(epoch + 1, logs)

    def on_train_end(self, logs=None):
        self.finish()

    def _take(self, epoch: int, logs: dict) -> None:
        """Copy the weights now; record and write them on the worker."""
        self.pending.append(self.worker.submit(self._record, epoch, self.model.get_weights(),
                                               logs))
        for done in [f for f in self.pending if f.done()]:
            self.pending.remove(done)
            done.result()  # a failed snapshot fails the run here, not silently

    def _record(self, epoch: int, weights: list, logs: dict) -> None:
        self.copy.set_weights(weights)
        arrays = self.recorder.record() | self.plan.arrays()
        arrays |= {f"metric/{k}": np.array(v) for k, v in logs.items()}
        snapshots.write(self.folder, epoch, arrays)
        if self.tensorboard_dir is not None:
            from cnnviz.probes.snapshot_summaries import summary_writer, write_summaries

            self.writer = self.writer or summary_writer(self.tensorboard_dir / "snapshots")
            write_summaries(self.writer, epoch, arrays, self.copy, self.plan.conv_layers)

    def finish(self) -> None:
        """Wait for the snapshots under way (and raise a failure of one)."""
        if self.worker is None:
            return
        pending, self.pending = self.pending, []
        self.worker.shutdown(wait=True)
        self.worker = None
        for future in pending:
            future.result()
