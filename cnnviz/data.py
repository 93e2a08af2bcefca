"""Datasets: where the images come from, how they are read, and how pixels become input.

Sources are tried in this order (see DESIGN.md, "Data"):
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnviz.errors import CnnvizError, UsageError

DATASETS = ("mnist", "fashion")
NORMALIZATIONS = ("standardize", "unit")
IMAGE_SIDE = 28
NUM_CLASSES = 10
EMBEDDED_SAMPLE = Path(__file__).parent / "data" / "mnist_sample.npz"
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
DOWNLOAD_HOST = ("storage.googleapis.com", 443)
# Per-pixel std floor in grey levels: border pixels that are almost always 0 in training
# would otherwise turn a single lit test pixel into a huge input value.
STD_FLOOR = 1.0

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
    """Raw images (uint8, N×28×28, 0–255) and integer labels, with their own split."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    path: str | None = None  # the explicit --data path, when one was given

    def describe(self) -> str:
        """One line: which dataset, from where, how many images."""
        return (f"{self.name} from {self.source}: {len(self.x_train):,} train / "
                f"{len(self.x_test):,} test images")

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Images and labels of the `train` or `test` split."""
        if name == "train":
            return self.x_train, self.y_train
        if name == "test":
            return self.x_test, self.y_test
        raise UsageError(f"unknown split {name!r}; valid: train, test")


def class_names(dataset: str) -> tuple[str, ...]:
    """Names of the ten classes: digits for mnist, garment names for fashion."""
    return FASHION_CLASSES if dataset == "fashion" else tuple(str(d) for d in range(NUM_CLASSES))


@dataclass(frozen=True)
class Preprocessing:
    """How raw 0–255 pixels become network input; stored in every model bundle."""

    kind: str = "unit"
    mean: np.ndarray | None = None  # 28×28 float32, for `standardize`
    std: np.ndarray | None = None

    @classmethod
    def fit(cls, kind: str, x_train: np.ndarray) -> "Preprocessing":
        """Fit the preprocessing on the training images only."""
        if kind not in NORMALIZATIONS:
            raise UsageError(f"unknown normalize {kind!r}; valid: {', '.join(NORMALIZATIONS)}")
        if kind == "unit":
            return cls("unit")
        pixels = np.asarray(x_train, dtype=np.float64)
        mean = pixels.mean(axis=0)
        std = np.maximum(pixels.std(axis=0), STD_FLOOR)
        return cls("standardize", mean.astype(np.float32), std.astype(np.float32))

    def apply(self, images: np.ndarray) -> np.ndarray:
        """Raw images (N×28×28, 0–255) → float32 network input (N×28×28×1)."""
        x = np.asarray(images, dtype=np.float32)
        if self.kind == "unit":
            x = x / np.float32(255.0)
        else:
            x = (x - self.mean) / self.std
        return x[..., np.newaxis]

    def invert(self, inputs: np.ndarray) -> np.ndarray:
        """Network input (N×28×28×1) → pixel space (N×28×28, 0–255 scale, not clipped)."""
        x = np.asarray(inputs, dtype=np.float32)[..., 0]
        if self.kind == "unit":
            return x * np.float32(255.0)
        return x * self.std + self.mean

    def to_json(self) -> dict:
        """A JSON-ready dict (float32 values survive the round trip exactly)."""
        if self.kind == "unit":
            return {"kind": "unit", "scale": 255.0}
        return {"kind": "standardize", "std_floor": STD_FLOOR,
                "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_json(cls, data: dict | None, where: str = "run.json") -> "Preprocessing":
        """Inverse of `to_json`; None means the default for plain .keras files (/255).

        A recorded preprocessing is never guessed: an unknown kind, or a mean or std that is
        not 28×28 finite numbers (std > 0), is refused naming `where` and the field."""
        if data is None:
            return cls("unit")
        if not isinstance(data, dict):
            raise CnnvizError(f"{where}: field preprocessing is {data!r}, expected an object")
        if data.get("kind") == "unit":
            return cls("unit")
        if data.get("kind") != "standardize":
            raise CnnvizError(f"{where}: unknown preprocessing.kind {data.get('kind')!r}; "
                              f"valid: {', '.join(NORMALIZATIONS)}")
        arrays = []
        for key in ("mean", "std"):
            try:
                value = np.asarray(data.get(key), np.float32)
            except (TypeError, ValueError):
                value = np.zeros(0, np.float32)
            if value.shape != (IMAGE_SIDE, IMAGE_SIDE) or not np.isfinite(value).all():
                raise CnnvizError(f"{where}: field preprocessing.{key} must be {IMAGE_SIDE}×"
                                  f"{IMAGE_SIDE} finite numbers (got shape {value.shape})")
            arrays.append(value)
        if not (arrays[1] > 0).all():
            raise CnnvizError(f"{where}: field preprocessing.std has values ≤ 0; every input "
                              "would be garbage: retrain the bundle with --force")
        return cls("standardize", *arrays)


def load_dataset(name: str = "mnist", path: str | os.PathLike | None = None,
                 download: bool | None = None) -> Dataset:
    """Load a dataset from the first source that has it (see module docstring).

    Args:
        name: `mnist` or `fashion`.
        path: an explicit .npz file or folder of IDX files; when given, nothing else is tried.
        download: allow a Keras download; default: yes unless env CNNVIZ_OFFLINE=1.
    """
    if name not in DATASETS:
        raise UsageError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    if path is not None:
        return _check(name, *_read_path(Path(path)), source=str(path),
                      path=str(Path(path).resolve()))
    for finder in (_from_keras_cache, _from_debian, _from_download, _from_embedded):
        found = finder(name, download)
        if found is not None:
            arrays, source = found
            return _check(name, *arrays, source=source)
    raise CnnvizError(
        f"no {name} data found: pass --data PATH (.npz or IDX folder), put the files in "
        f"{_keras_datasets_dir() / 'fashion-mnist'}, or install Debian's dataset-fashion-mnist")


def _read_path(path: Path) -> tuple[np.ndarray, ...]:
    if not path.exists():
        raise UsageError(f"--data {path}: no such file or folder; give a .npz with "
                         f"{', '.join(_NPZ_KEYS)} or a folder of the four IDX files")
    if path.is_dir():
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
    return Dataset(name, _images(x_train, "x_train", source),
                   _labels(y_train, x_train, "y_train", source),
                   _images(x_test, "x_test", source), _labels(y_test, x_test, "y_test", source),
                   source, path)


def _images(x: np.ndarray, key: str, source: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3 or x.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE) or len(x) == 0:
        raise CnnvizError(f"{source}: {key} has shape {x.shape}; expected (N, 28, 28) "
                          "or (N, 28, 28, 1) with N ≥ 1")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise CnnvizError(f"{source}: {key} has dtype {x.dtype}; expected uint8 pixels 0–255")
    if x.dtype != np.uint8:
        if x.min() < 0 or x.max() > 255:
            raise CnnvizError(f"{source}: {key} pixels range {x.min()}–{x.max()}; expected 0–255")
        x = np.rint(x).astype(np.uint8)
    return x


def _labels(y: np.ndarray, x: np.ndarray, key: str, source: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != len(x):
        raise CnnvizError(f"{source}: {key} has shape {y.shape}; expected ({len(x)},), "
                          "one integer label per image")
    if not np.issubdtype(y.dtype, np.integer) or len(y) and (y.min() < 0 or y.max() >= NUM_CLASSES):
        raise CnnvizError(f"{source}: {key} must hold integer labels 0–{NUM_CLASSES - 1}")
    return y.astype(np.int32)


def _keras_datasets_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"


def _from_keras_cache(name: str, _download) -> tuple[tuple, str] | None:
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
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)
    try:
        from keras.datasets import fashion_mnist, mnist

        (x_train, y_train), (x_test, y_test) = (mnist if name == "mnist" else fashion_mnist).load_data()
    except Exception:  # an unreachable or broken download falls through to the next source
        return None
    finally:
        socket.setdefaulttimeout(previous)
    return (x_train, y_train, x_test, y_test), f"Keras download (now cached in {_keras_datasets_dir()})"


def _from_embedded(name: str, _download) -> tuple[tuple, str] | None:
    if name != "mnist":
        return None
    return read_npz(EMBEDDED_SAMPLE), "embedded sample of real MNIST digits (no full MNIST found)"


def read_image_file(path: str | os.PathLike) -> np.ndarray:
    """A photo or scan of one digit → 28×28 uint8, white digit on black like MNIST."""
    return read_image(path)[0]


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, str | None]:
    """A photo, scan or drawing of one digit → (28×28 uint8 white on black, a note or None).

    Any image Pillow reads: gray, colour or palette; transparency is composited on white;
    of an animation the first frame is taken (and the note says so). Converted to gray,
    resized with anti-aliasing, and inverted when the background (the border) is light.
    """
    from PIL import Image, UnidentifiedImageError
    from skimage import transform

    path = Path(path)
    if path.is_dir():
        raise UsageError(f"--input {path} is a folder; give one image file (PNG, JPEG, ...)")
    if not path.is_file():
        raise UsageError(f"--input {path}: no such file; give a PNG or JPEG of one digit")
    try:
        with Image.open(path) as image:
            frames = getattr(image, "n_frames", 1)
            image.seek(0)
            if image.width > MAX_IMAGE_SIDE or image.height > MAX_IMAGE_SIDE:
                raise CnnvizError(f"--input {path}: {image.width}×{image.height} pixels; at most "
                                  f"{MAX_IMAGE_SIDE} a side")
            rgba = image.convert("RGBA")
    except CnnvizError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise CnnvizError(f"--input {path}: not a readable image file ({type(exc).__name__}); "
                          "give a PNG, JPEG, GIF, BMP or TIFF of one digit") from None
    if min(rgba.size) < 2:
        raise CnnvizError(f"--input {path}: {rgba.width}×{rgba.height} pixels is too small")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    gray = np.asarray(Image.alpha_composite(white, rgba).convert("L"), np.float64) / 255.0
    small = transform.resize(gray, (IMAGE_SIDE, IMAGE_SIDE), anti_aliasing=True)
    border = np.concatenate([small[0], small[-1], small[:, 0], small[:, -1]])
    if border.mean() > 0.5:
        small = 1.0 - small
    note = (f"{path.name} has {frames} frames; using the first" if frames > 1 else None)
    return np.rint(np.clip(small, 0, 1) * 255).astype(np.uint8), note


MAX_IMAGE_SIDE = 4096


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
