"""Training into a bundle: checkpoints, resume after an interrupt, NaN guard, schedules."""

import json

import keras
import numpy as np
import pytest

from cnnviz import bundle
from cnnviz.data import Dataset
from cnnviz.errors import CnnvizError
from cnnviz.model import read_keras
from cnnviz.spec import resolve_settings, specs_from_settings
from cnnviz.training import TrainingInterrupted, epoch_order, train_bundle

SMALL = {"conv": "8,16", "dense": "16", "batch_size": 64}


@pytest.fixture(scope="module")
def tiny_data(sample):
    return Dataset("mnist", sample["x_train"][:512], sample["y_train"][:512].astype(np.int32),
                   sample["x_test"][:128], sample["y_test"][:128].astype(np.int32), "test slice")


def specs(**overrides):
    return specs_from_settings(resolve_settings("article2", overrides=SMALL | overrides)[1])


class At(keras.callbacks.Callback):
    """Run `action(model)` when epoch `epoch` (0-based) begins."""

    def __init__(self, epoch, action):
        super().__init__()
        self.epoch, self.action = epoch, action

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            self.action(self.model)


def interrupt(model):
    raise KeyboardInterrupt


def poison(model):
    model.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])


def test_epoch_order_is_a_pure_function_of_seed_and_epoch():
    a = epoch_order(100, 3, 2).numpy()
    np.testing.assert_array_equal(a, epoch_order(100, 3, 2).numpy())
    assert sorted(a) == list(range(100)) and not np.array_equal(a, epoch_order(100, 3, 1).numpy())
    assert not np.array_equal(a, epoch_order(100, 4, 2).numpy())


def test_every_epoch_sees_every_image_once_in_its_own_order(tiny_data):
    """Also with more steps per compiled call than batches per epoch (8 here, 32 per call)."""
    from cnnviz.training import ShuffledEpochs

    x = np.arange(100, dtype=np.float32).reshape(100, 1)
    batches = ShuffledEpochs(x, np.zeros(100, np.int32), batch_size=32, seed=5)
    seen = []
    for epoch in (0, 1, 0):
        batches.on_epoch_begin(epoch)
        seen.append(np.concatenate([b.numpy()[:, 0] for b, _ in batches.dataset]))
    assert [len(s) for s in seen] == [100, 100, 100] and sorted(seen[0]) == list(range(100))
    assert not np.array_equal(seen[0], seen[1])
    np.testing.assert_array_equal(seen[0], seen[2])
    np.testing.assert_array_equal(seen[1], epoch_order(100, 5, 1).numpy())


def test_interrupted_run_resumes_where_it_stopped(tmp_path, tiny_data):
    network, training = specs(epochs=2)
    straight = train_bundle(tmp_path / "straight", network, training, tiny_data, verbose=0)

    folder = tmp_path / "cut"
    with pytest.raises(TrainingInterrupted, match=r"keeps epoch 1 of 2; continue with .*resume=True"):
        train_bundle(folder, network, training, tiny_data, verbose=0, callbacks=[At(1, interrupt)])
    run = json.loads((folder / "run.json").read_text())
    assert (run["status"], run["epochs_completed"]) == ("interrupted", 1)
    assert len(bundle.read_history(folder)["loss"]) == 1

    resumed = train_bundle(folder, network, training, tiny_data, resume=True, verbose=0)
    assert resumed.run["status"] == "complete" and resumed.run["epochs_completed"] == 2
    assert len(resumed.history["loss"]) == 2
    np.testing.assert_allclose(resumed.history["loss"], straight.history["loss"], rtol=1e-4)
    a = read_keras(straight.folder / "model.keras").get_weights()
    b = read_keras(folder / "model.keras").get_weights()
    for wa, wb in zip(a, b):  # same batches, same optimizer state: same weights (CPU float32)
        np.testing.assert_allclose(wa, wb, rtol=1e-4, atol=1e-5)
    assert resumed.run["metrics"]["test_accuracy"] == pytest.approx(
        straight.run["metrics"]["test_accuracy"], abs=1 / 128 + 1e-9)


def test_nan_loss_stops_and_keeps_the_last_good_epoch(tmp_path, tiny_data):
    network, training = specs(epochs=3)
    folder = tmp_path / "nan"
    with pytest.raises(CnnvizError, match=r"loss became NaN in epoch 2: .* keeps epoch 1"):
        train_bundle(folder, network, training, tiny_data, verbose=0, callbacks=[At(1, poison)])
    run = bundle.read_run(folder)
    assert (run["status"], run["epochs_completed"]) == ("diverged", 1)
    weights = read_keras(folder / "model.keras").get_weights()
    assert all(np.isfinite(w).all() for w in weights)


def test_bundle_files_history_and_learning_rate_schedule(tmp_path, tiny_data):
    network, training = specs(epochs=2, schedule="inverse-time", decay_steps=1, decay_rate=0.01)
    from cnnviz.training_run import draw_curves

    drawn = []
    result = train_bundle(tmp_path / "b", network, training, tiny_data, verbose=0,
                          after_epoch=lambda *args: (drawn.append(args[2]), draw_curves(*args)))
    assert drawn == [1, 2]  # the caller draws, after every epoch; training itself never does
    for name in bundle.BUNDLE_FILES:
        assert (result.folder / name).is_file(), name
    assert not [p.name for p in result.folder.iterdir() if p.name.startswith(".")]
    history = bundle.read_history(result.folder)
    assert set(history) >= {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds"}
    steps = 512 // 64
    assert history["learning_rate"][0] == pytest.approx(0.001)
    assert history["learning_rate"][1] == pytest.approx(0.001 / (1 + 0.01 * steps), rel=1e-5)
    run = result.run
    assert run["metrics"]["test_accuracy"] == pytest.approx(history["val_accuracy"][-1], abs=1e-6)
    assert run["data"] == {"dataset": "mnist", "source": "test slice", "path": None,
                           "train_images": 512, "test_images": 128}
    assert set(run["versions"]) == {"python", "tensorflow", "keras", "numpy", "cnnviz"}
    assert len(run["epoch_seconds"]) == 2 and run["seed"] == training.seed


def test_from_initial_starts_from_the_same_weights(tmp_path, tiny_data):
    network, training = specs(epochs=1)
    a = train_bundle(tmp_path / "a", network, training, tiny_data, verbose=0)
    _, other_seed = specs(epochs=1, seed=99)
    b = train_bundle(tmp_path / "b", network, other_seed, tiny_data, verbose=0,
                     initial_weights=a.folder / bundle.INITIAL_WEIGHTS_FILE)
    wa = _initial(network, a.folder)
    wb = _initial(network, b.folder)
    for x, y in zip(wa, wb):
        np.testing.assert_array_equal(x, y)
    assert b.run["initial_weights_from"].endswith("initial.weights.h5")


def _initial(network, folder):
    from cnnviz.model import build_model

    model = build_model(network)
    model.load_weights(folder / bundle.INITIAL_WEIGHTS_FILE)
    return model.get_weights()
