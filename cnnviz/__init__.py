"""cnnviz: train a small CNN on MNIST-style images and look inside it.

    import cnnviz
    m = cnnviz.load("mnist-article2")          # a bundle name or folder, a .keras file, a keras.Model
    a = m.activations([17, 3], layers="conv2")  # a["conv2"]: (2, 11, 11, 64); a.show()
    p = m.patterns("conv3", maps=range(8))      # p.pixels (8, 28, 28) for a 28x28 gray input
    m.atlas("outputs/mnist-article2")

Importing cnnviz imports no TensorFlow; the first call that needs it does.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from cnnviz.errors import CnnvizError, CnnvizWarning, UsageError

if TYPE_CHECKING:
    from cnnviz.inspected import Inspected

from cnnviz.version import __version__
__all__ = ["__version__", "load", "train", "live", "compare", "page", "bundles", "CnnvizError", "CnnvizWarning", "UsageError",
           "Objective", "channel", "neuron"]
_OBJECTIVES = ("Objective", "channel", "neuron")


def __getattr__(name: str):
    """cnnviz.channel / neuron / Objective (composable pattern objectives), imported on first
    use so that `import cnnviz` stays free of TensorFlow."""
    if name in _OBJECTIVES:
        from cnnviz.runtime import import_tensorflow

        import_tensorflow()
        from cnnviz.probes import objectives

        return getattr(objectives, name)
    raise AttributeError(f"module 'cnnviz' has no attribute {name!r}")


def load(model: Any = None, trained_dir: str | Path = "trained",
         data: str | Path | None = None, dataset: str | None = None,
         preprocess: str | None = None, resize: bool = True,
         trust_model: bool = False, strategy: Any = None, cluster_timeout: float = 300,
         report: Callable[[str], None] | None = None, epoch: int | None = None) -> "Inspected":
    """Open a model: a bundle name or folder in `trained_dir`, a .keras file, a keras.Model
    object, or None for the newest bundle.

    data: a dataset file or folder to use instead of the bundle's own; dataset: mnist,
    fashion, cifar10 or cifar100 (default: the bundle's, else mnist). preprocess: how pixels
    become a plain model's input (unit, raw, symmetric, caffe, torch or "MEAN,STD"; default:
    detected from a leading Rescaling/Normalization layer, else unit). resize=False refuses
    data of another image size instead of converting it. trust_model=True loads a .keras
    file whose loading could run code stored in it (a Lambda layer): only files you trust.
    strategy: a tf.distribute strategy or its name (auto, default, mirrored, multi-worker;
    see cnnviz.distributed), made before the model is read, that every method shares its
    work over (a multi-worker one waits cluster_timeout seconds for its peers). report:
    receives the lines the command line prints (which bundle, which data, notes); without
    it, notes are CnnvizWarnings. epoch: a bundle trained with snapshots=K as it was after
    that epoch (0: before training), named NAME-epoch-K."""
    from cnnviz.checks import flag, path, real, text, whole

    trained_dir, data = path(trained_dir, "trained_dir"), path(data, "data", optional=True)
    text(dataset, "dataset", optional=True)
    real(cluster_timeout, "cluster_timeout", 0, above=True)
    flag(resize, "resize"), flag(trust_model, "trust_model")
    epoch = None if epoch is None else whole(epoch, "epoch", 0)
    if report is not None and not callable(report):
        raise UsageError(f"report must be a callable taking a line, got {report!r}", "report")
    from cnnviz.runtime import import_tensorflow

    import_tensorflow()
    from cnnviz.inputs import Preprocessing
    from cnnviz.inspected import Inspected
    from cnnviz.model import from_keras_model, input_note, load_model

    if preprocess is not None and not isinstance(preprocess, (str, Preprocessing)):
        raise UsageError(f"preprocess must be unit, raw, symmetric, caffe, torch or "
                         f"\"MEAN,STD\", got {preprocess!r}", "preprocess")
    import keras

    if model is not None and not isinstance(model, (str, Path, keras.Model)):
        raise UsageError(f"model must be a bundle name or folder, a .keras file or a "
                         f"keras.Model, got {type(model).__name__}", "model")
    if strategy is not None:  # a multi-worker strategy must exist before any model does
        from cnnviz import distributed

        strategy = distributed.make_strategy(strategy, cluster_timeout) \
            if isinstance(strategy, str) else strategy
    if model is not None and not isinstance(model, (str, Path)):
        if epoch is not None:
            raise UsageError("epoch is for a bundle trained with snapshots=K, not a "
                             "keras.Model object", "epoch")
        loaded = from_keras_model(model, preprocess)
    else:
        loaded = load_model(None if model is None else str(model), Path(trained_dir),
                            preprocess=preprocess, trust=trust_model, epoch=epoch)
    note = input_note(loaded.preprocessing)
    if report is not None:
        for line in (loaded.ref.note, note):
            if line:
                report(line)
    elif loaded.preprocessing.origin == "default":
        import warnings

        warnings.warn(CnnvizWarning(note), stacklevel=2)
    return Inspected(loaded, data, dataset, resize, report, strategy)


def bundles(trained_dir: str | Path = "trained") -> list:
    """The model bundles in trained_dir, by name: name, dataset, epochs, test
    accuracy, status (finished, interrupted, broken) and when each was updated. No
    TensorFlow needed."""
    from cnnviz import bundle
    from cnnviz.checks import path

    return bundle.list_bundles(path(trained_dir, "trained_dir"))


def compare(a: Any, b: Any, outputs_dir: str | Path = "outputs",
            layers: Any = None, split: str = "test", limit: int | None = None,
            dpi: int | None = None, format: str | None = None) -> Any:  # noqa: A002
    """Do two models learn the same maps? Every map of `a` is correlated with every map of
    `b` over a split of a's data, matched one to one, and against an untrained copy of `a`;
    written to OUTPUTS_DIR/compare-A-B/ with its page. Returns the Comparison (.summary(),
    .numbers(), .folder, .page). a, b: opened models (what `load` returns) or anything
    `load` takes (a bundle name, a .keras file). layers: default conv and hidden dense
    layers."""
    from cnnviz.checks import path

    a, b = (m if hasattr(m, "loaded") else load(m) for m in (a, b))
    from cnnviz.galleries.compare import compare_models
    from cnnviz.render.style import figure_output

    with figure_output(dpi, format):
        return compare_models(a, b, path(outputs_dir, "outputs_dir"), layers, split, limit)


def page(name: str | None = None, outputs_dir: str | Path = "outputs",
         trained_dir: str | Path = "trained",
         report: Callable[[str], None] | None = None) -> Path:
    """Rebuild a gallery's index.html and map cards from its manifest.json (no TensorFlow
    needed); returns the page's path. name: a gallery in outputs_dir, or a bundle's name
    (None: the newest bundle's). report: receives where it is and what it could not show."""
    from cnnviz.checks import path
    from cnnviz.layout import gallery_folder
    from cnnviz.manifest import check_gallery
    from cnnviz.render.site import build_page

    folder = gallery_folder(name, path(outputs_dir, "outputs_dir"), path(trained_dir, "trained_dir"))
    check_gallery(folder)
    return build_page(folder, report or (lambda line: None))


def train(preset: str | None = None, name: str | None = None, dataset: str | None = None,
          data: str | Path | None = None, trained_dir: str | Path = "trained",
          force: bool = False, progress: Callable[[int, dict], None] | None = None,
          strategy: Any = None, cluster_timeout: float = 300, config: str | Path | None = None,
          runs: int = 1, resume: bool = False, from_initial: str | None = None,
          device: str = "auto", tensorboard: str | Path | None = None, verbose: int = 0,
          snapshots: int | None = None, live: Any = "auto", serve: int | None = None,
          report: Callable[[str], None] | None = None, **settings: Any) -> Any:
    """Train a network into trained_dir/NAME (a bundle) and return it opened.

    preset: article1, article2 (default), article3 ...; dataset: mnist (default) or fashion;
    settings: any training setting by its name (epochs=3, learning_rate=1e-3, conv=[16, 32],
    seed=2, ...), or config: a JSON/TOML file of them. An existing bundle is refused unless
    force=True; resume=True continues an interrupted one (only epochs= may change);
    from_initial: start from another bundle's initial weights. runs=N trains NAME-1 … NAME-N
    with seeds SEED … SEED+N-1 and returns the list. progress(epoch, logs) is called after
    every epoch; verbose: Keras' fit output (0 none, 1 a bar, 2 a line per epoch); report:
    receives the lines the command prints. strategy: a tf.distribute strategy or its name
    (auto, default, mirrored, multi-worker; see cnnviz.distributed); batch_size is the
    global batch. tensorboard: also write TensorBoard logs into this folder (with snapshots,
    their kernels, maps and histograms too). snapshots=K: record the network at the start
    and every K epochs into the bundle (its weights, every layer's output for one test image
    per class, each map's top training images, dead maps, a few patterns; see
    cnnviz.load(name, epoch=k) and the atlas's "over training"). live: in a Jupyter kernel
    ("auto") or when True, the curves are shown in the cell and redrawn after every epoch
    (Kernel → Interrupt stops training; the bundle keeps the last finished epoch and
    resume=True continues it). serve=PORT (0: any free port): the live page of the run
    (cnnviz.live) from its first finished epoch on, following it: its curves grow and every
    answer is computed again with the newest weights after each epoch; it goes on serving
    after training (the returned model's `.live_page`: `.url`, `.stop()`)."""
    from cnnviz.checks import path, whole

    trained_dir, runs = path(trained_dir, "trained_dir"), whole(runs, "runs", 1)
    snapshots = None if snapshots is None else whole(snapshots, "snapshots", 1)
    if live not in ("auto", True, False):
        raise UsageError(f"live must be \"auto\", True or False, got {live!r}", "live")
    serve = None if serve is None else whole(serve, "serve", 0, 65535)
    if serve is not None and runs > 1:
        raise UsageError(f"serve follows one run; runs={runs} must be 1", "serve")
    if serve:  # a taken port is said before training, not after its first epoch
        import socket

        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", serve))
            except OSError as exc:
                raise CnnvizError(f"serve={serve}: cannot listen there ({exc.strerror}); "
                                  "choose another port or 0 for a free one", "serve") from None
    pages: dict = {}

    def follow(folder: Path, epoch: int) -> None:  # the live page, from the first checkpoint
        if serve is None or pages:
            return
        import cnnviz  # this function's `live` parameter hides cnnviz.live

        pages[folder.name] = cnnviz.live(load(folder.name, trained_dir=folder.parent, data=data,
                                              dataset=dataset, report=lambda line: None),
                                         port=serve)
        (report or (lambda line: None))(f"live page of {folder.name}: {pages[folder.name].url} "
                                        "(it follows the training)")

    from cnnviz.runtime import import_tensorflow

    import_tensorflow()
    from cnnviz.inspected import Inspected
    from cnnviz.training_run import train_runs

    trained = train_runs(trained_dir, preset=preset, name=name, dataset=dataset, data=data,
                         config=config, settings=settings, runs=runs, resume=resume,
                         force=force, from_initial=from_initial, device=device,
                         tensorboard=tensorboard, verbose=verbose, progress=progress,
                         strategy=strategy, cluster_timeout=cluster_timeout,
                         snapshots=snapshots, live=live,
                         checkpointed=follow if serve is not None else None, report=report)
    opened = [Inspected(loaded, data, report=report) for loaded in trained]
    for each in opened:
        each.live_page = pages.get(each.loaded.ref.name)
    return opened[0] if runs == 1 else opened


def live(model: Any = None, port: int = 8765, host: str = "127.0.0.1",
         atlas: str | Path | None = None, **load_options: Any):
    """The live page of `cnnviz serve`, served from a background thread (a notebook goes on
    running): returns a handle with `.url` and `.stop()`. model: an opened model (what
    `load` returns) or anything `load` takes (load_options go to it); port 0 picks a free
    one; atlas: the folder served at /atlas/ (default outputs/NAME)."""
    from cnnviz.checks import path, text, whole

    port, host = whole(port, "port", 0, 65535), text(host, "host")
    folder = path(atlas, "atlas", optional=True)
    from cnnviz.inspected import Inspected

    opened = model if isinstance(model, Inspected) else load(model, **load_options)
    from cnnviz.serve.live import Live
    from cnnviz.serve.running import start_in_background

    folder = folder or Path("outputs") / opened.loaded.folder_name
    return start_in_background(Live(opened, folder), host, port)
