"""Images read or converted a batch at a time, so memory never depends on a dataset's size.

`LazyImages` behaves like the uint8 array it stands for where cnnviz uses one: `len()`,
`.shape`, `x[i]`, `x[a:b]` (another lazy view), `x[index_array]` and `np.asarray(x[a:b])`
(which reads just those images).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path

import numpy as np

from cnnviz.errors import CnnvizError, UsageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
LUMINANCE = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601, as Pillow's "L"


class LazyImages:
    """A read-only uint8 image array whose images are produced when indexed."""

    dtype = np.dtype(np.uint8)

    def __init__(self, count: int, image_shape: tuple[int, ...]):
        self.shape = (int(count), *image_shape)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def _take(self, index: np.ndarray) -> np.ndarray:
        """Images at the 1-D `index` → (k, *image shape) uint8."""
        raise NotImplementedError

    def __getitem__(self, key):
        if isinstance(key, slice):
            return _Subset(self, range(len(self))[key])
        if np.isscalar(key):
            return self._take(np.array([int(key)]))[0]
        index = np.asarray(key, np.int64)
        index = np.where(index < 0, index + len(self), index)
        if index.size and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"image index out of range 0–{len(self) - 1}")
        return self._take(index.ravel()).reshape(*index.shape, *self.shape[1:])

    def __array__(self, dtype=None, copy=None):
        images = self._take(np.arange(len(self)))
        return images if dtype is None else images.astype(dtype)


class _Subset(LazyImages):
    def __init__(self, parent: LazyImages, indices: range):
        super().__init__(len(indices), parent.shape[1:])
        self.parent, self.indices = parent, indices

    def _take(self, index: np.ndarray) -> np.ndarray:
        return self.parent[np.asarray(self.indices)[index]]


class _Converted(LazyImages):
    def __init__(self, source, image_shape: tuple[int, ...]):
        super().__init__(len(source), image_shape)
        self.source = source

    def _take(self, index: np.ndarray) -> np.ndarray:
        return convert(np.asarray(self.source[index]), self.shape[1:])


def fit_images(images, image_shape: tuple[int, ...]) -> LazyImages:
    """`images` converted to `image_shape` ((H, W) gray or (H, W, C)) a batch at a time."""
    have = 1 if len(images.shape) == 3 else images.shape[3]
    want = 1 if len(image_shape) == 2 else image_shape[2]
    if have != want and not (have == 1 and want == 3) and not (have in (3, 4) and want in (1, 3)):
        raise UsageError(f"cannot convert images of {have} channels to {want}; give images "
                         f"with {want} channel(s)", "data")
    return _Converted(images, tuple(image_shape))


def convert(batch: np.ndarray, image_shape: tuple[int, ...]) -> np.ndarray:
    """A batch (k, h, w[, c]) uint8 → (k, *image_shape) uint8: channels first (gray ↔ RGB
    by luminance or repetition, alpha dropped), then resized with anti-aliasing."""
    from skimage.transform import resize

    x = np.asarray(batch, np.float32)
    x = x[..., np.newaxis] if x.ndim == 3 else x
    want = 1 if len(image_shape) == 2 else image_shape[2]
    if x.shape[-1] == 4:
        x = x[..., :3]
    if x.shape[-1] == 3 and want == 1:
        x = (x @ LUMINANCE)[..., np.newaxis]
    elif x.shape[-1] == 1 and want == 3:
        x = np.repeat(x, 3, axis=-1)
    if x.shape[1:3] != tuple(image_shape[:2]):
        shrinking = x.shape[1] > image_shape[0] or x.shape[2] > image_shape[1]
        x = resize(x, (len(x), *image_shape[:2], x.shape[-1]), order=1, preserve_range=True,
                   anti_aliasing=shrinking)
    x = np.rint(np.clip(x, 0, 255)).astype(np.uint8)
    return x[..., 0] if want == 1 else x


class FolderImages(LazyImages):
    """Image files read (and converted to `image_shape`) when indexed."""

    def __init__(self, paths: list[Path], image_shape: tuple[int, ...]):
        super().__init__(len(paths), tuple(image_shape))
        self.paths = paths

    def _take(self, index: np.ndarray) -> np.ndarray:
        out = np.empty((len(index), *self.shape[1:]), np.uint8)
        for i, k in enumerate(index):
            out[i] = read_file(self.paths[int(k)], self.shape[1:])
        return out


def read_file(path: Path, image_shape: tuple[int, ...]) -> np.ndarray:
    """One image file → `image_shape` uint8 (gray or RGB, transparency on white)."""
    with open_bounded(path, str(path), image_shape) as (image, _):
        rgba = image.convert("RGBA")
    return convert(np.asarray(on_white(rgba).convert("RGB"))[np.newaxis], image_shape)[0]


MAX_IMAGE_SIDE = 2048  # the side of the largest square image decoded
MAX_DECODED_PIXELS = MAX_IMAGE_SIDE ** 2  # what one image may cost to decode (16 MB as RGBA)
REDUCED_SIDE = 4  # decoded images are reduced to at most this many times the model's side


@contextlib.contextmanager
def open_bounded(source, what: str, image_shape: tuple[int, ...]):
    """(An opened Pillow image at its first frame, its number of frames), the cost of
    decoding it decided from its header.

    A JPEG is decoded reduced (`draft`) towards the model's size; then refused (a
    CnnvizError starting with `what`) before any pixel is decoded when it is no image or
    would decode to more than MAX_DECODED_PIXELS; any image is reduced
    (box filter, in Pillow) to at most REDUCED_SIDE × the model's side before conversion."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(source)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise CnnvizError(f"{what}: more than {Image.MAX_IMAGE_PIXELS:,} pixels; at most "
                          f"{MAX_DECODED_PIXELS:,} pixels; give a smaller image") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise CnnvizError(f"{what}: not a readable image file ({type(exc).__name__}); give a "
                          "PNG, JPEG, GIF, BMP, TIFF or WebP") from None
    with image:
        side = REDUCED_SIDE * max(image_shape[:2])
        if image.format == "JPEG":
            image.draft(image.mode, (side, side))  # decode at 1/2, 1/4 or 1/8 scale
        width, height = image.size
        if width * height > MAX_DECODED_PIXELS:
            raise CnnvizError(f"{what}: {width}×{height} pixels; at most {MAX_DECODED_PIXELS:,} "
                              f"pixels (e.g. {MAX_IMAGE_SIDE}×{MAX_IMAGE_SIDE}); give a smaller image")
        if min(width, height) < 2:
            raise CnnvizError(f"{what}: {width}×{height} pixels is too small")
        try:
            frames = getattr(image, "n_frames", 1)
            image.seek(0)
            factor = min(width, height) // side
            if factor > 1 and image.mode not in ("L", "LA", "RGB", "RGBA", "I", "F"):
                image = image.convert("RGBA")  # palette images cannot be reduced as they are
            yield (image.reduce(factor) if factor > 1 else image), frames
        except (OSError, ValueError, EOFError, SyntaxError, Image.DecompressionBombError) as exc:
            raise CnnvizError(f"{what}: not a readable image file ({type(exc).__name__}); give "
                              "a PNG, JPEG, GIF, BMP, TIFF or WebP") from None


def on_white(rgba):
    """A Pillow RGBA image with its transparency composited on white."""
    from PIL import Image

    return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)


def folder_classes(folder: Path) -> tuple[list[Path], np.ndarray, tuple[str, ...]] | None:
    """A folder of class subfolders of images (keras.utils.image_dataset_from_directory's
    layout) → (image paths, labels, class names in alphanumeric order); None when it is not
    one. Labels follow the sorted subfolder names; files are sorted within each."""
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (folder / name).rglob("*")
                       if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        paths += files
        labels += [label] * len(files)
    if not paths:
        return None
    return paths, np.asarray(labels, np.int32), tuple(classes)


DIGIT_SIDE = 28  # the article networks' input: a digit, white on black


def decode_image(source, image_shape: tuple[int, ...] = (DIGIT_SIDE, DIGIT_SIDE),
                 what: str = "image", digit: bool = False) -> tuple[np.ndarray, str | None]:
    """An image file's path or open binary stream → (pixels of `image_shape`, note), as
    cnnviz.data.read_image describes; a CnnvizError starting with `what` when it is no image, is
    too large to decode (open_bounded), or too small."""
    from skimage import transform

    name = getattr(source, "name", None) or what
    with open_bounded(source, what, image_shape) as (image, frames):
        rgba = image.convert("RGBA")
    note = (f"{Path(str(name)).name} has {frames} frames; using the first" if frames > 1 else None)
    if tuple(image_shape) != (DIGIT_SIDE, DIGIT_SIDE):
        rgb = np.asarray(on_white(rgba).convert("RGB"))
        return convert(rgb[np.newaxis], tuple(image_shape))[0], note
    gray = np.asarray(on_white(rgba).convert("L"), np.float64) / 255.0
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if border.mean() > 0.5:
        gray = 1.0 - gray
    if digit:
        from cnnviz.digits import prepare_digit

        prepared = prepare_digit(gray * 255.0)
        if prepared is None:
            raise CnnvizError(f"{what}: no ink found (a blank image); give a photo or drawing "
                              "of one digit")
        return prepared, note
    small = transform.resize(gray, (DIGIT_SIDE, DIGIT_SIDE), anti_aliasing=True)
    return np.rint(np.clip(small, 0, 1) * 255).astype(np.uint8), note


def read_image_file(path: str | os.PathLike) -> np.ndarray:
    """A photo or scan of one digit → 28×28 uint8, white digit on black like MNIST."""
    return read_image(path)[0]


def read_image(path: str | os.PathLike, image_shape: tuple[int, ...] = (DIGIT_SIDE, DIGIT_SIDE),
               digit: bool = False) -> tuple[np.ndarray, str | None]:
    """An image file → (pixels of `image_shape` uint8, a note or None).

    Any image Pillow reads: gray, colour or palette; transparency is composited on white;
    of an animation the first frame is taken (and the note says so). Resized with
    anti-aliasing. For a 28×28 gray input it is also inverted when the background (the
    border) is light, to be white on black like MNIST; `digit`: then prepared as MNIST
    prepared its digits (cnnviz.digits: cropped, scaled into 20×20, centred by mass).
    """
    path = check_image_file(path)
    try:
        return decode_image(path, image_shape, f"input {path}", digit)
    except UsageError:
        raise
    except CnnvizError as exc:
        raise CnnvizError(str(exc), "input") from None


def check_image_file(path: str | os.PathLike) -> Path:
    """`path` as a Path when it is an existing regular file; else a UsageError saying what
    it is (missing, a folder, a device or a pipe)."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"input {path} is a folder; give one image file (PNG, JPEG, ...)", "input")
    if not path.exists():
        raise UsageError(f"input {path}: no such file; give a PNG or JPEG image", "input")
    if not path.is_file():
        raise UsageError(f"input {path} is not a regular file (a device, a pipe or a socket); "
                         "give a PNG or JPEG image", "input")
    return path
