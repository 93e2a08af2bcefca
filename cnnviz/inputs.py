"""How raw 0–255 pixels become network input: the conventions, their detection, the valid range.

    unit        pixels / 255                          (cnnviz's default, the article networks)
    raw         pixels as they are, 0–255             (a model that starts with Rescaling or
                                                       Normalization converts them itself)
    symmetric   pixels / 127.5 − 1, in [−1, 1]        (keras.applications MobileNet, Inception…)
    caffe       RGB → BGR, minus the ImageNet mean    (keras.applications VGG, ResNet50)
    torch       pixels / 255, minus mean, / std       (keras.applications DenseNet)
    MEAN,STD    (pixels − MEAN) / STD, on the 0–255 scale
    standardize per-pixel mean and std of the training images (recorded in cnnviz bundles)

Images are (N, H, W) for one channel and (N, H, W, C) otherwise; inputs are always
(N, H, W, C) float32. Patterns stay within what real pixels give: `apply(0)` to `apply(255)`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnviz.errors import CnnvizError, UsageError

CONVENTIONS = ("unit", "raw", "symmetric", "caffe", "torch")
NORMALIZATIONS = ("standardize", "unit")  # what training's `normalize` setting fits
# Per-pixel std floor in grey levels: border pixels that are almost always 0 in training
# would otherwise turn a single lit test pixel into a huge input value.
STD_FLOOR = 1.0
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)
TORCH_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
TORCH_STD = np.array([0.229, 0.224, 0.225], np.float32)
_DESCRIBED = {"unit": "pixels / 255", "raw": "raw pixels 0–255",
              "symmetric": "pixels / 127.5 − 1", "caffe": "RGB→BGR minus the ImageNet mean",
              "torch": "pixels / 255 minus the ImageNet mean, divided by its std",
              "standardize": "(pixels − training mean) / training std, per pixel"}


@dataclass(frozen=True)
class Preprocessing:
    """How raw 0–255 pixels become network input (see the module docstring)."""

    kind: str = "unit"
    mean: np.ndarray | float | None = None  # standardize: (H, W); MEAN,STD: a number
    std: np.ndarray | float | None = None
    origin: str = "default"  # recorded, detected, given or default: how it was decided

    @classmethod
    def fit(cls, kind: str, x_train: np.ndarray) -> Preprocessing:
        """Fit the preprocessing of `cnnviz train` on the training images only."""
        if kind not in NORMALIZATIONS:
            raise UsageError(f"unknown normalize {kind!r}; valid: {', '.join(NORMALIZATIONS)}")
        if kind == "unit":
            return cls("unit", origin="recorded")
        pixels = np.asarray(x_train, dtype=np.float64)
        mean = pixels.mean(axis=0)
        std = np.maximum(pixels.std(axis=0), STD_FLOOR)
        return cls("standardize", mean.astype(np.float32), std.astype(np.float32), "recorded")

    @classmethod
    def parse(cls, text: str) -> Preprocessing:
        """`unit`, `raw`, `symmetric`, `caffe`, `torch` or `MEAN,STD` (0–255 scale)."""
        value = str(text).strip().lower()
        if value in CONVENTIONS:
            return cls(value, origin="given")
        try:
            mean, std = (float(v) for v in value.split(","))
        except ValueError:
            mean = std = None
        with np.errstate(all="ignore"):  # as float32, what the input is computed in
            small = mean is not None and not (np.isfinite(np.float32(std)) and np.float32(std) > 0
                                               and np.isfinite(np.float32(255) / np.float32(std))
                                               and np.isfinite(np.float32(mean)))
        if mean is None or small or not np.isfinite([mean, std]).all() or std <= 0:
            raise UsageError(f"preprocess {text!r}: use one of {', '.join(CONVENTIONS)} or "
                             "MEAN,STD on the 0–255 scale (STD > 0 and 255 / STD finite in float32), "
                             "e.g. 127.5,127.5",
                             "preprocess")
        return cls("meanstd", np.float32(mean), np.float32(std), "given")

    def describe(self) -> str:
        """What the network is fed, in words (for notes, the manifest and the page)."""
        if self.kind == "meanstd":
            return f"(pixels − {float(self.mean):g}) / {float(self.std):g}"
        return f"{_DESCRIBED[self.kind]} ({self.kind})"

    def check_channels(self, channels: int) -> None:
        """caffe and torch are colour conventions: refuse them for other channel counts."""
        if self.kind in ("caffe", "torch") and channels != 3:
            raise UsageError(f"preprocess {self.kind} needs RGB images (3 channels); this model "
                             f"takes {channels}", "preprocess")

    def apply(self, images: np.ndarray) -> np.ndarray:
        """Images (N, H, W) or (N, H, W, C), 0–255 → float32 network input (N, H, W, C)."""
        x = np.asarray(images, dtype=np.float32)
        if self.kind == "standardize":
            return ((x - self.mean) / self.std)[..., np.newaxis]
        if x.ndim == 3:
            x = x[..., np.newaxis]
        if self.kind == "unit":
            return x / np.float32(255.0)
        if self.kind == "raw":
            return x
        if self.kind == "symmetric":
            return x / np.float32(127.5) - np.float32(1.0)
        if self.kind == "caffe":
            return x[..., ::-1] - CAFFE_MEAN_BGR
        if self.kind == "torch":
            return (x / np.float32(255.0) - TORCH_MEAN) / TORCH_STD
        return (x - np.float32(self.mean)) / np.float32(self.std)

    def invert(self, inputs: np.ndarray) -> np.ndarray:
        """Network input (N, H, W, C) → pixel space, 0–255 scale, not clipped: (N, H, W) for
        one channel, (N, H, W, C) otherwise."""
        x = np.asarray(inputs, dtype=np.float32)
        if self.kind == "standardize":
            return x[..., 0] * self.std + self.mean
        if self.kind == "unit":
            x = x * np.float32(255.0)
        elif self.kind == "symmetric":
            x = (x + np.float32(1.0)) * np.float32(127.5)
        elif self.kind == "caffe":
            x = (x + CAFFE_MEAN_BGR)[..., ::-1]
        elif self.kind == "torch":
            x = (x * TORCH_STD + TORCH_MEAN) * np.float32(255.0)
        elif self.kind == "meanstd":
            x = x * np.float32(self.std) + np.float32(self.mean)
        return x[..., 0] if x.shape[-1] == 1 else x

    def bounds(self, image_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) input values of one image (1, H, W, C) that real 0–255 pixels give."""
        shape = image_shape if image_shape[-1] != 1 else image_shape[:-1]
        low, high = self.apply(np.zeros((1, *shape))), self.apply(np.full((1, *shape), 255.0))
        return np.minimum(low, high), np.maximum(low, high)

    def to_json(self) -> dict:
        """A JSON-ready dict (float32 values survive the round trip exactly)."""
        if self.kind == "standardize":
            return {"kind": "standardize", "std_floor": STD_FLOOR,
                    "mean": self.mean.tolist(), "std": self.std.tolist()}
        if self.kind == "meanstd":
            return {"kind": "meanstd", "mean": float(self.mean), "std": float(self.std)}
        return {"kind": self.kind, **({"scale": 255.0} if self.kind == "unit" else {})}

    @classmethod
    def from_json(cls, data: dict | None, where: str = "run.json",
                  image_shape: tuple[int, int] = (28, 28)) -> Preprocessing:
        """Inverse of `to_json`; None means the default for plain .keras files (/255).

        A recorded preprocessing is never guessed: an unknown kind, or a mean or std that is
        not H×W finite numbers (std > 0), is refused naming `where` and the field."""
        if data is None:
            return cls("unit")
        if not isinstance(data, dict):
            raise CnnvizError(f"{where}: field preprocessing is {data!r}, expected an object")
        kind = data.get("kind")
        if kind in CONVENTIONS:
            return cls(kind, origin="recorded")
        if kind not in ("standardize", "meanstd"):
            raise CnnvizError(f"{where}: unknown preprocessing.kind {kind!r}; valid: "
                              f"{', '.join(CONVENTIONS + ('standardize', 'meanstd'))}")
        shape = tuple(image_shape) if kind == "standardize" else ()
        arrays = []
        for key in ("mean", "std"):
            try:
                value = np.asarray(data.get(key), np.float32)
            except (TypeError, ValueError):
                value = np.zeros(0, np.float32)
            if value.shape != shape or not np.isfinite(value).all():
                wanted = "×".join(map(str, shape)) + " finite numbers" if shape else "a finite number"
                raise CnnvizError(f"{where}: field preprocessing.{key} must be {wanted} "
                                  f"(got shape {value.shape})")
            arrays.append(value)
        if not (arrays[1] > 0).all():
            raise CnnvizError(f"{where}: field preprocessing.std has values ≤ 0; every input "
                              "would be garbage: retrain the bundle with force=True")
        return cls(kind, *arrays, origin="recorded")


def detect(model) -> Preprocessing | None:
    """`raw` when the model converts pixels itself (its first layer, nested or not, is a
    Rescaling or Normalization layer); None when nothing tells."""
    from cnnviz.graph import INPUT_CONVERSIONS, graph_of

    steps = [s for s in graph_of(model).steps if not s.nested]
    if steps and isinstance(steps[0].layer, INPUT_CONVERSIONS):
        return Preprocessing("raw", origin=f"detected: the model starts with "
                                           f"{type(steps[0].layer).__name__} ({steps[0].address})")
    return None
