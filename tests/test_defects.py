"""Issue 12: each defect found by trying cnnviz as a new user, with the test that failed
before its fix (galleries and names are in test_gallery_safety.py, ties and constant maps
in test_compare.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from conftest import assert_one_line_error

SMALL_RUN = ["--conv", "8,16,16", "--dense", "16", "--epochs", "1", "--quiet"]


@pytest.fixture
def bundles(trained, tmp_path):
    """A private copy of the trained bundle `a2` that a test may damage."""
    root = tmp_path / "trained"
    shutil.copytree(trained / "a2", root / "a2")
    return root


def edit_run(folder, change) -> None:
    run = json.loads((folder / "run.json").read_text())
    change(run)
    (folder / "run.json").write_text(json.dumps(run))


# ---- 5, 15: one writer per bundle; stale temporaries removed -----------------------------

def test_a_second_writer_of_a_bundle_is_refused_naming_the_holder(bundles, small_npz, run_cli):
    from cnnviz import bundle

    with bundle.writing(bundles / "a2"):
        for extra in (["--force", "--data", small_npz, *SMALL_RUN], ["--resume", "--epochs", "3"]):
            result = run_cli("train", "--name", "a2", *extra, "--trained-dir", bundles)
            assert_one_line_error(result, 1, f"a2 is being written by process {os.getpid()}")
    assert not (bundles / ".a2.lock").exists()  # released and removed
    with bundle.writing(bundles / "a2"):  # and can be taken again
        pass


def test_stale_temporaries_of_dead_processes_are_removed_when_a_bundle_is_written(bundles):
    from cnnviz import bundle

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    dead = bundles / "a2" / f".tmp-{finished.stdout.strip()}-abcd1234-model.keras"
    live = bundles / "a2" / f".tmp-{os.getpid()}-abcd1234-model.keras"
    dead.write_bytes(b"half")
    live.write_bytes(b"in use")
    with bundle.writing(bundles / "a2"):
        assert not dead.exists() and live.exists()


# ---- 8, 13: configs and numbers that cannot be right -------------------------------------

def test_configs_that_are_not_small_regular_files_are_refused(tmp_path, run_cli):
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"epochs": 1, "pad": "x" * 2_000_000}))
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    for path, fragment in (("/dev/zero", "not a regular file"), (big, "at most 1,048,576 bytes"),
                           (deep, "nested too deeply"), (tmp_path, "is a directory")):
        result = run_cli("train", "--config", path, "--trained-dir", tmp_path / "t")
        assert_one_line_error(result, 2, "--config", fragment)
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("args", [
    ["train", "--learning-rate", "inf"], ["train", "--learning-rate", "nan"],
    ["train", "--momentum", "nan"], ["train", "--reg-factor", "inf"],
    ["filters", "a2", "--step-size", "inf"], ["filters", "a2", "--step-size", "nan"],
    ["atlas", "a2", "--step-size", "-inf"]])
def test_non_finite_numbers_are_usage_errors(args, tmp_path, run_cli):
    result = run_cli(*args, "--trained-dir", tmp_path / "t")
    assert_one_line_error(result, 2, "not a finite number")


def test_a_non_finite_config_value_is_refused(tmp_path, run_cli):
    config = tmp_path / "c.json"
    config.write_text('{"learning_rate": Infinity}')
    result = run_cli("train", "--config", config, "--trained-dir", tmp_path / "t")
    assert_one_line_error(result, 2, "learning_rate must be a finite number")


# ---- 11, 12, 18: damaged run.json: refused naming the field, never garbage --------------

@pytest.mark.parametrize("change, field", [
    (lambda r: r.update(epochs_completed="five"), "epochs_completed"),
    (lambda r: r["metrics"].update(test_accuracy="high"), "metrics.test_accuracy"),
    (lambda r: r.update(preprocessing="abc"), "preprocessing"),
    (lambda r: r.update(data="x"), "data"),
    (lambda r: r.pop("preprocessing"), "preprocessing"),
    (lambda r: r["preprocessing"].update(mean=[[0.0] * 28] * 27), "preprocessing.mean"),
    (lambda r: r["preprocessing"].update(std=[[0.0] * 28] * 28), "preprocessing.std"),
    (lambda r: r["preprocessing"].update(std=[[float("nan")] * 28] * 28), "preprocessing.std"),
    (lambda r: r["preprocessing"].update(kind="zscore"), "preprocessing.kind"),
])
def test_a_damaged_run_json_is_refused_and_listed_as_broken(change, field, bundles, trained,
                                                            run_cli):
    shutil.copytree(trained / "a2", bundles / "fine")
    edit_run(bundles / "a2", change)
    result = run_cli("info", "a2", "--trained-dir", bundles)
    assert_one_line_error(result, 1, "run.json", field.replace(".", r"\."))
    listing = run_cli("list", "--trained-dir", bundles)
    assert listing.code == 0, listing.output
    rows = {line.split()[0]: line for line in listing.out.splitlines()[1:]}
    assert "broken" in rows["a2"] and field in rows["a2"] and "complete" in rows["fine"]
    assert run_cli("info", "fine", "--trained-dir", bundles).code == 0


def test_a_bundle_without_a_model_says_why(bundles, run_cli):
    (bundles / "a2" / "model.keras").unlink()
    edit_run(bundles / "a2", lambda r: r.update(status="diverged", epochs_completed=0))
    result = run_cli("info", "a2", "--trained-dir", bundles)
    assert_one_line_error(result, 2, "a2.* has no trained model: status diverged, 0 epochs",
                          "--force")


# ---- 14: the recorded data source --------------------------------------------------------

def test_the_data_path_is_recorded_resolved_and_its_loss_reported(sample, tmp_path, run_cli,
                                                                  monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    np.savez(work / "small.npz", x_train=sample["x_train"][:300], y_train=sample["y_train"][:300],
             x_test=sample["x_test"][:100], y_test=sample["y_test"][:100])
    monkeypatch.chdir(work)
    assert run_cli("train", "--data", "small.npz", "--name", "rel", *SMALL_RUN,
                   "--trained-dir", tmp_path / "t").code == 0
    recorded = json.loads((tmp_path / "t" / "rel" / "run.json").read_text())["data"]["path"]
    assert recorded == str(work / "small.npz")
    monkeypatch.chdir(tmp_path)
    result = run_cli("activations", "rel", "--image", "3", "--layer", "conv1",
                     "--trained-dir", tmp_path / "t", "--outputs-dir", tmp_path / "o")
    assert result.code == 0, result.output
    (work / "small.npz").unlink()
    result = run_cli("stats", "rel", "--trained-dir", tmp_path / "t", "--outputs-dir",
                     tmp_path / "o")
    assert_one_line_error(result, 2, f"the data this bundle was trained on, {work / 'small.npz'}, "
                                     "is gone; pass --data")


# ---- 20: --resume with the bundle's own values -------------------------------------------

def test_resume_accepts_equal_values_and_names_both_of_a_different_one(small_npz, tmp_path,
                                                                       run_cli):
    args = ["--data", small_npz, "--name", "r", "--seed", "7", "--trained-dir", tmp_path, *SMALL_RUN]
    assert run_cli("train", *args).code == 0
    result = run_cli("train", "--name", "r", "--resume", "--seed", "7", "--conv", "8,16,16",
                     "--kernel", "3,3,3", "--preset", "article2", "--epochs", "2", "--quiet",
                     "--trained-dir", tmp_path)
    assert result.code == 0, result.output
    result = run_cli("train", "--name", "r", "--resume", "--seed", "8", "--epochs", "3",
                     "--trained-dir", tmp_path)
    assert_one_line_error(result, 2, r"--seed 8 \(the bundle's: 7\)")


# ---- 16, 19, 21: other people's models and images ----------------------------------------

@pytest.fixture(scope="module")
def keras_example(tmp_path_factory):
    """The Keras example's MNIST convnet: a Sequential with Dropout and a linear output,
    saved with model.save (never called: a loaded Sequential has no `model.input`)."""
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(8, 3, activation="relu", name="c1"),
        keras.layers.MaxPooling2D(2, name="p1"),
        keras.layers.Conv2D(8, 3, activation="relu", name="c2"),
        keras.layers.Flatten(name="f"),
        keras.layers.Dropout(0.5, name="drop"),
        keras.layers.Dense(10, name="logits")])
    path = tmp_path_factory.mktemp("models") / "example.keras"
    model.save(path)
    return path


def test_a_saved_sequential_works_with_every_probe(keras_example, tmp_path, run_cli):
    common = ["--trained-dir", tmp_path / "t", "--outputs-dir", tmp_path / "o"]
    for args in (["activations", keras_example, "--image", "2", "--layer", "c1,c2", "--save-arrays"],
                 ["filters", keras_example, "--layer", "c2", "--steps", "3", "--scales", "7",
                  "--starts", "1"],
                 ["kernels", keras_example], ["stats", keras_example, "--limit", "50", "--top", "2"]):
        result = run_cli(*args, *common)
        assert result.code == 0, (args, result.output)


def test_logits_are_never_labelled_probabilities(keras_example, tmp_path, run_cli):
    from cnnviz.model import load_model
    from cnnviz.probes.activations import activations

    loaded = load_model(str(keras_example), tmp_path)
    x = np.random.default_rng(0).random((3, 28, 28, 1)).astype(np.float32)
    result = activations(loaded.model, ["c1"], x)
    assert not result.softmax and result.output_name == "scores"
    np.testing.assert_allclose(result.probabilities, loaded.model(x), rtol=1e-5, atol=1e-6)
    run_cli("activations", keras_example, "--image", "0", "--layer", "c1", "--save-arrays",
            "--trained-dir", tmp_path / "t", "--outputs-dir", tmp_path / "o")
    arrays = next((tmp_path / "o" / "example" / "activations").glob("*.npz"))
    with np.load(arrays) as z:
        assert "scores" in z.files and "probabilities" not in z.files


def test_gray_alpha_images_and_animations_are_read(tmp_path, trained, run_cli):
    from PIL import Image

    from cnnviz.data import read_image

    stroke = np.zeros((280, 280), np.uint8)
    stroke[60:220, 130:150] = 255
    la = Image.fromarray(np.stack([np.zeros_like(stroke), stroke], -1), "LA")  # black ink on clear
    la.save(tmp_path / "la.png")
    frames = [Image.fromarray(255 - stroke), Image.fromarray(stroke)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "one.gif")
    for name, note in (("la.png", None), ("one.gif", None), ("anim.gif", "2 frames; using the first")):
        pixels, said = read_image(tmp_path / name)
        assert pixels.shape == (28, 28) and pixels[14, 14] > 200 and pixels[2, 2] < 30, name
        assert said == note or note in said
    result = run_cli("activations", "a2", "--input", tmp_path / "anim.gif", "--layer", "conv1",
                     "--trained-dir", trained, "--outputs-dir", tmp_path / "o")
    assert result.code == 0 and "note: anim.gif has 2 frames; using the first" in result.out
    result = run_cli("activations", "a2", "--input", tmp_path, "--trained-dir", trained,
                     "--outputs-dir", tmp_path / "o")
    assert_one_line_error(result, 2, "is a folder")


def test_a_lambda_model_is_refused_with_the_reason_and_loads_when_trusted(tmp_path, run_cli):
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Lambda(lambda t: t * 1.0, name="scale")(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv1")(x)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    model.save(tmp_path / "lam.keras")
    result = run_cli("info", tmp_path / "lam.keras", "--trained-dir", tmp_path)
    assert_one_line_error(result, 2, "refused: loading it could run code", "--trust-model")
    result = run_cli("--trust-model", "info", tmp_path / "lam.keras", "--trained-dir", tmp_path)
    assert result.code == 0 and "conv1" in result.out
    assert "CNNVIZ_TRUST_MODEL" not in os.environ  # the opt-in ends with the command


# ---- 17: only cnnviz's own lines -----------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["filters", "a2", "--layer", "conv1", "--steps", "2", "--scales", "7", "--starts", "1"],
    ["train", "--name", "quiet", "--conv", "4", "--dense", "none", "--epochs", "1", "--quiet"]],
    ids=["filters", "train"])
def test_commands_print_no_tensorflow_or_keras_lines(args, trained, small_npz, tmp_path):
    env = dict(os.environ, CNNVIZ_OFFLINE="1")
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    root = tmp_path / "t"
    shutil.copytree(trained / "a2", root / "a2")
    extra = ["--data", str(small_npz)] if args[0] == "train" else ["--outputs-dir", str(tmp_path)]
    done = subprocess.run([sys.executable, "-m", "cnnviz", *args, *extra, "--trained-dir",
                           str(root)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    for line in (done.stdout + done.stderr).splitlines():
        assert not any(word in line for word in ("tensorflow", "cuda", "oneDNN", "absl",
                                                 "WARNING", "I0000", "W0000", "E0000")), line


# ---- 22: true counts -----------------------------------------------------------------------

def test_repeated_scales_count_once(trained, tmp_path, run_cli):
    result = run_cli("filters", "a2", "--layer", "conv1", "--steps", "2", "--scales", "7,7,7",
                     "--starts", "1", "--pixel-starts", "0", "--data-starts", "0", "--per-scale",
                     "--trained-dir", trained, "--outputs-dir", tmp_path)
    assert result.code == 0, result.output
    files = [p for p in (tmp_path / "a2" / "filters").rglob("*") if p.is_file()]
    assert f"wrote {len(files)} files" in result.out and len(files) == 3  # patterns, scale 7, report


# ---- 7, 9: bounded memory, and a branched model never crashes -----------------------------

def test_the_ascent_in_pieces_equals_one_batch(loaded, monkeypatch):
    from cnnviz.probes import ascent, patterns
    from cnnviz.probes.patterns import PatternSettings, ascent_steps, optimal_patterns

    settings = PatternSettings(steps=6, scales=(7, 14, 28), starts=3, pixel_starts=0,
                               snapshots=(0, 3, 6))
    maps = np.arange(7)
    whole = optimal_patterns(loaded.model, "conv2", maps, loaded.preprocessing, settings)
    per_item = 4 * 28 * 28 * (8 + 3)
    monkeypatch.setattr(ascent, "GRADIENT_CHUNK", 4)
    monkeypatch.setattr(patterns, "PIECE_BYTES", per_item * 10)  # 63 items → 8 pieces of 8
    counted = []
    pieces = optimal_patterns(loaded.model, "conv2", maps, loaded.preprocessing, settings,
                              counted.append)
    assert sum(counted) == ascent_steps(len(maps), settings) == 6 * 8
    np.testing.assert_allclose(pieces.objective, whole.objective, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(pieces.start_objective, whole.start_objective, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(pieces.best, whole.best)
    np.testing.assert_allclose(pieces.best_inputs, whole.best_inputs, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(pieces.group_inputs, whole.group_inputs, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(pieces.curve, whole.curve, rtol=1e-4, atol=1e-5)
    for step in settings.snapshots:
        np.testing.assert_allclose(pieces.snapshots[step], whole.snapshots[step], atol=1e-4)


def test_piece_size_does_not_grow_with_the_flags():
    from cnnviz.probes.ascent import GRADIENT_CHUNK
    from cnnviz.probes.patterns import PIECE_BYTES, piece_size

    size = piece_size((28, 28, 1), 4)
    assert size % GRADIENT_CHUNK == 0 and size * 4 * 28 * 28 * 12 <= PIECE_BYTES
    assert piece_size((224, 224, 3), 4) == GRADIENT_CHUNK or \
        piece_size((224, 224, 3), 4) * 4 * 224 * 224 * 3 * 12 <= PIECE_BYTES


BRANCHED = textwrap.dedent("""
    import numpy as np
    from cnnviz.runtime import import_tensorflow
    import_tensorflow()
    import keras
    from cnnviz.data import Preprocessing
    from cnnviz.probes.patterns import PatternSettings, optimal_patterns
    keras.utils.set_random_seed(0)
    inputs = keras.Input((28, 28, 1))
    a = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="a")(inputs)
    b = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="b")(a)
    added = keras.layers.Add(name="add")([a, b])
    c = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c")(added)
    joined = keras.layers.Concatenate(name="cat")([added, c])
    d = keras.layers.Conv2D(16, 3, activation="relu", name="d")(joined)
    x = keras.layers.GlobalAveragePooling2D()(d)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    result = optimal_patterns(model, "d", np.arange(16), Preprocessing(),
                              PatternSettings(steps=4, scales=(7, 14), starts=3, pixel_starts=0))
    assert np.isfinite(result.objective).all()
    print("ok")
""")


@pytest.mark.slow
def test_the_ascent_on_a_branched_model_never_crashes_in_6_processes(tmp_path):
    """96 items in chunks of 64 (the looped path, with padding) on a model with Add and
    Concatenate: parallel chunks crashed oneDNN one run in three. The chunks run one at a
    time (checked first); 6 clean runs catch another such crash with 91 % certainty."""
    from cnnviz.probes import ascent

    assert ascent.PARALLEL_CHUNKS == 1
    script = tmp_path / "branched.py"
    script.write_text(BRANCHED)
    env = dict(os.environ, CNNVIZ_OFFLINE="1")
    codes = []
    for _ in range(3):  # two at a time: the machine has two cores
        procs = [subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        for proc in procs:
            out, err = proc.communicate(timeout=300)
            codes.append((proc.returncode, out.strip(), err[-300:]))
    assert all(code == 0 and out == "ok" for code, out, _ in codes), codes
