"""Datasets: where the images come from, how they are read, and how pixels become input.

Sources are tried in this order (see the README, "Data"):
an explicit path (.npz or a folder of IDX files), the Keras cache, Debian's
`dataset-fashion-mnist` files (fashion only), a Keras download when the network answers,
and last the 10,000 real MNIST digits embedded in the package (mnist only).
Each dataset keeps its own train/test split and order: test image N is always the same.
"""

from __future__ import annotations

import gzip
import os
import socket
import zipfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from cnnviz.errors import CnnvizError, UsageError
from cnnviz.cifar import CIFAR_FOLDERS, read_cifar
from cnnviz.images import (DIGIT_SIDE, MAX_IMAGE_SIDE, FolderImages, LazyImages,  # noqa: F401
                           check_image_file, decode_image, fit_images, folder_classes,
                           read_image, read_image_file)  # (re-exported: image files)
from cnnviz.inputs import NORMALIZATIONS, STD_FLOOR, Preprocessing  # noqa: F401 (re-exported)

DATASETS = ("mnist", "fashion", "cifar10", "cifar100")
IMAGE_SIDE = DIGIT_SIDE  # the article networks' input side
NUM_CLASSES = 10   # mnist, fashion, cifar10
EMBEDDED_SAMPLE = Path(__file__).parent / "data" / "mnist_sample.npz"
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
DOWNLOAD_HOST = ("storage.googleapis.com", 443)

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")

_IDX_PARTS = {
    "x_train": "train-images*idx3*",
    "y_train": "train-labels*idx1*",
    "x_test": "t10k-images*idx3*",
    "y_test": "t10k-labels*idx1*",
}
_NPZ_KEYS = tuple(_IDX_PARTS)


@dataclass(frozen=True)
class Dataset:
    """Raw images (uint8, 0–255; (N, H, W) gray or (N, H, W, C)) and integer labels, with
    their own split. Images may be lazy (cnnviz.images): read a batch at a time."""

    name: str
    x_train: np.ndarray | LazyImages
    y_train: np.ndarray
    x_test: np.ndarray | LazyImages
    y_test: np.ndarray
    source: str
    path: str | None = None  # the explicit --data path, when one was given
    classes: tuple[str, ...] | None = None  # class names (None: those of `name`)
    notes: tuple[str, ...] = ()             # conversions made for the model

    def describe(self) -> str:
        """One line: which dataset, from where, how many images."""
        return (f"{self.name} from {self.source}: {len(self.x_train):,} train / "
                f"{len(self.x_test):,} test images")

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.classes or class_names(self.name)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """(H, W) for gray images, (H, W, C) otherwise."""
        return tuple(self.x_test.shape[1:])

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Images and labels of the `train` or `test` split."""
        if name == "train":
            return self.x_train, self.y_train
        if name == "test":
            return self.x_test, self.y_test
        raise UsageError(f"unknown split {name!r}; valid: train, test")


def class_names(dataset: str) -> tuple[str, ...]:
    """Names of the classes: digits for mnist, garment names for fashion, CIFAR-10's names."""
    if dataset == "fashion":
        return FASHION_CLASSES
    if dataset == "cifar10":
        return CIFAR10_CLASSES
    if dataset == "cifar100":
        return tuple(str(d) for d in range(100))
    return tuple(str(d) for d in range(NUM_CLASSES))


def fit_to_model(data: Dataset, image_shape: tuple[int, ...], resize: bool = True) -> Dataset:
    """The dataset as the model takes it: images of another size or channel count are
    converted a batch at a time (a note says how); resize=False refuses instead."""
    wanted = tuple(image_shape[:-1]) if image_shape[-1] == 1 else tuple(image_shape)
    if data.image_shape == wanted:
        return data
    if not resize:
        raise UsageError(f"the images are {_shape_text(data.image_shape)}, the model takes "
                         f"{_shape_text(wanted)}; they are refused as resize=False; allow "
                         "converting them", "resize")
    note = (f"images converted from {_shape_text(data.image_shape)} to "
            f"{_shape_text(wanted)} for the model")
    return replace(data, x_train=fit_images(data.x_train, wanted),
                   x_test=fit_images(data.x_test, wanted), notes=data.notes + (note,))


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) + ("x1" if len(shape) == 2 else "")


def load_dataset(name: str = "mnist", path: str | os.PathLike | None = None,
                 download: bool | None = None,
                 image_shape: tuple[int, ...] = (IMAGE_SIDE, IMAGE_SIDE)) -> Dataset:
    """Load a dataset from the first source that has it (see module docstring).

    Args:
        name: mnist, fashion, cifar10 or cifar100.
        path: an explicit .npz file, folder of IDX files, or folder of class subfolders of
            images; when given, nothing else is tried.
        download: allow a Keras download; default: yes unless env CNNVIZ_OFFLINE=1.
        image_shape: the shape images of a folder are read as ((H, W) gray or (H, W, C)).
    """
    if name not in DATASETS:
        raise UsageError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    if path is not None:
        path = Path(path)
        folder = _read_image_folder(path, image_shape) if path.is_dir() else None
        if folder is not None:
            return folder
        return _check(name, *_read_path(path), source=str(path), path=str(path.resolve()))
    for finder in (_from_keras_cache, _from_debian, _from_download, _from_embedded):
        found = finder(name, download)
        if found is not None:
            arrays, source = found
            return _check(name, *arrays, source=source)
    where = {"fashion": f"put the files in {_keras_datasets_dir() / 'fashion-mnist'}, or install "
                        "Debian's dataset-fashion-mnist",
             "mnist": f"put mnist.npz in {_keras_datasets_dir()}"}.get(
        name, f"put the Keras {name} download in {_keras_datasets_dir()}")
    raise CnnvizError(f"no {name} data found: pass data=PATH (.npz, IDX folder or a folder "
                      f"of class subfolders), {where}")


def _read_image_folder(path: Path, image_shape: tuple[int, ...]) -> Dataset | None:
    """A folder of class subfolders (both splits the same), or of train/ and test/ ones."""
    if any(path.glob("*idx3*")):
        return None
    splits = [path / "train", path / "test"]
    if all(p.is_dir() for p in splits):
        found = [folder_classes(p) for p in splits]
        if None in found or found[0][2] != found[1][2]:
            raise CnnvizError(f"data {path}: train/ and test/ must hold the same class "
                              "subfolders of images", "data")
        split_note = "train/ and test/"
    else:
        found = [folder_classes(path)] * 2
        if found[0] is None:
            return None
        split_note = "one folder, used as both splits"
    (train_paths, y_train, classes), (test_paths, y_test, _) = found
    return Dataset("folder", FolderImages(train_paths, image_shape), y_train,
                   FolderImages(test_paths, image_shape), y_test,
                   f"image folder {path} ({len(classes)} classes, {split_note})",
                   str(path.resolve()), classes)


def _read_path(path: Path) -> tuple[np.ndarray, ...]:
    if not path.exists():
        raise UsageError(f"data {path}: no such file or folder; give a .npz with "
                         f"{', '.join(_NPZ_KEYS)}, a folder of the four IDX files or a folder "
                         "of class subfolders of images", "data")
    if path.is_dir():
        if not any(path.glob("*idx*")):
            raise UsageError(f"data {path}: a folder with no images; give a folder of class "
                             "subfolders of images (PNG, JPEG, …), one with train/ and test/ "
                             "such folders, or one with the four MNIST IDX files", "data")
        return read_idx_folder(path)
    return read_npz(path)


def read_npz(path: Path) -> tuple[np.ndarray, ...]:
    """Read a Keras-style .npz with x_train, y_train, x_test, y_test."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in _NPZ_KEYS if k not in npz.files]
            if missing:
                raise CnnvizError(
                    f"{path}: missing {', '.join(missing)}; a dataset .npz needs "
                    f"{', '.join(_NPZ_KEYS)} (it has {', '.join(npz.files) or 'nothing'})")
            return tuple(npz[k] for k in _NPZ_KEYS)
    except CnnvizError:
        raise
    except (OSError, ValueError, zlib.error, EOFError, zipfile.BadZipFile) as exc:
        raise CnnvizError(f"{path}: not a readable .npz file ({_first_line(exc)})") from None


def read_idx_folder(folder: Path) -> tuple[np.ndarray, ...]:
    """Read the four MNIST IDX files (gzipped or not) from a folder."""
    arrays = []
    for key, pattern in _IDX_PARTS.items():
        matches = sorted(p for p in folder.glob(pattern) if p.is_file())
        if len(matches) != 1:
            found = "none" if not matches else ", ".join(p.name for p in matches)
            raise CnnvizError(
                f"{folder}: need exactly one file matching {pattern} for {key} (found: {found}); "
                "expected train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each optionally .gz")
        arrays.append(read_idx(matches[0]))
    return tuple(arrays)


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file of unsigned bytes (gzip detected by its magic number)."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise CnnvizError(f"{path}: corrupt gzip file ({_first_line(exc)})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise CnnvizError(f"{path}: not an IDX file of unsigned bytes (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + int(np.prod(shape)):
        raise CnnvizError(f"{path}: truncated or padded IDX file (header says shape {shape}, "
                          f"{len(raw) - header} data bytes)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _check(name, x_train, y_train, x_test, y_test, source: str, path: str | None = None) -> Dataset:
    classes = len(class_names(name))  # a file of another class count: --dataset cifar100
    x_train, x_test = _images(x_train, "x_train", source), _images(x_test, "x_test", source)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise CnnvizError(f"{source}: x_train has shape {x_train.shape}; expected "
                          f"(N, {', '.join(map(str, x_test.shape[1:]))}) like x_test")
    y_train = _labels(y_train, x_train, "y_train", source, classes)
    y_test = _labels(y_test, x_test, "y_test", source, classes)
    return Dataset(name, x_train, y_train, x_test, y_test, source, path)


def _images(x: np.ndarray, key: str, source: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim not in (3, 4) or len(x) == 0 or min(x.shape[1:3]) < 1:
        raise CnnvizError(f"{source}: {key} has shape {x.shape}; expected images (N, H, W) "
                          "or (N, H, W, C) with N ≥ 1")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise CnnvizError(f"{source}: {key} has dtype {x.dtype}; expected uint8 pixels 0–255")
    if x.dtype != np.uint8:
        if x.min() < 0 or x.max() > 255:
            raise CnnvizError(f"{source}: {key} pixels range {x.min()}–{x.max()}; expected 0–255")
        x = np.rint(x).astype(np.uint8)
    return x


def _labels(y: np.ndarray, x: np.ndarray, key: str, source: str, classes: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != len(x):
        raise CnnvizError(f"{source}: {key} has shape {y.shape}; expected ({len(x)},), "
                          "one integer label per image")
    top = classes - 1
    if not np.issubdtype(y.dtype, np.integer) or len(y) and (y.min() < 0 or y.max() > top):
        raise CnnvizError(f"{source}: {key} must hold integer labels 0–{top}")
    return y.astype(np.int32)


def _keras_datasets_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"


def _from_keras_cache(name: str, _download) -> tuple[tuple, str] | None:
    if name.startswith("cifar"):
        folder = _keras_datasets_dir() / CIFAR_FOLDERS[name]
        return (read_cifar(folder, name), f"Keras cache {folder}") if folder.is_dir() else None
    if name == "mnist":
        path = _keras_datasets_dir() / "mnist.npz"
        return (read_npz(path), f"Keras cache {path}") if path.is_file() else None
    folder = _keras_datasets_dir() / "fashion-mnist"
    if folder.is_dir() and any(folder.glob("train-images*")):
        return read_idx_folder(folder), f"Keras cache {folder}"
    return None


def _from_debian(name: str, _download) -> tuple[tuple, str] | None:
    if name != "fashion" or not DEBIAN_FASHION_DIR.is_dir():
        return None
    return read_idx_folder(DEBIAN_FASHION_DIR), f"Debian dataset-fashion-mnist {DEBIAN_FASHION_DIR}"


def _from_download(name: str, download: bool | None) -> tuple[tuple, str] | None:
    if download is None:
        download = os.environ.get("CNNVIZ_OFFLINE", "") not in ("1", "true", "yes")
    if not download or not network_answers(*DOWNLOAD_HOST):
        return None
    try:  # (the command line sets a socket time-out for its process; the library sets none)
        from keras import datasets

        loader = {"mnist": datasets.mnist, "fashion": datasets.fashion_mnist,
                  "cifar10": datasets.cifar10, "cifar100": datasets.cifar100}[name]
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception:  # an unreachable or broken download falls through to the next source
        return None
    return (x_train, y_train, x_test, y_test), f"Keras download (now cached in {_keras_datasets_dir()})"


def _from_embedded(name: str, _download) -> tuple[tuple, str] | None:
    if name != "mnist":
        return None
    return read_npz(EMBEDDED_SAMPLE), "embedded sample of real MNIST digits (no full MNIST found)"


def network_answers(host: str, port: int, timeout: float = 3.0) -> bool:
    """True when a TCP connection to host:port opens within `timeout` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def dataset_for(loaded, dataset: str | None = None, path: str | os.PathLike | None = None,
                resize: bool = True) -> Dataset:
    """The data for an opened model (cnnviz.model.LoadedModel): `path` or `dataset` when
    given, else what its bundle recorded (plain models: mnist), converted to its input."""
    from cnnviz import bundle

    name, _ = bundle.dataset_of(loaded.run)
    path = path or (bundle.recorded_data(loaded.run) if dataset in (None, name) else None)
    data = load_dataset(dataset or name, path, image_shape=loaded.image_shape)
    check_class_count(data, loaded.model)
    return fit_to_model(data, loaded.image_shape, resize)


def check_class_count(data: Dataset, model) -> None:
    """Refuse data with more classes than the model has outputs (one sigmoid output may
    read two classes)."""
    from cnnviz.graph import graph_of

    graph = graph_of(model)
    outputs = graph.shape(graph.output_address)[-1]
    classes = len(data.class_names)
    if classes > outputs and not (outputs == 1 and classes == 2):
        raise UsageError(f"the data has {classes} classes but the model has {outputs} outputs; "
                         f"give data with at most {outputs} classes", "data")
