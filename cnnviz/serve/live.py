"""What the live page asks of a model, answered through the library API as JSON-ready dicts.

    live = Live(cnnviz.load("mnist-article2"), atlas=Path("outputs/mnist-article2"))
    live.predict(pixels)   # {"prediction": …, "layers": [{"name", "shape", "data"}, …], …}

Arrays travel as base64 of little-endian float32 (`"data"`) with their shape, or as nested
lists when asked (`arrays="list"`); the page decodes them into Float32Arrays and draws the
mosaics itself, so switching the colour scale costs no request.
"""

from __future__ import annotations

import base64
import threading
from pathlib import Path

import numpy as np

from cnnviz.errors import CnnvizError, UsageError
from cnnviz.explain_methods import METHODS
from cnnviz.layout import card_url
from cnnviz.serve.batching import Batcher

ARRAY_FORMATS = ("base64", "list")
EXPLAIN_METHODS = tuple(m.name for m in METHODS if m.live)  # cheap enough for every drawing
PREPARED = "cropped to the ink, scaled into a 20×20 box and centred by mass, as MNIST's digits were"
RESIZED = "resized to the model's input"
MAP_IMAGES = 1000  # test images on the page's maps of the layers (the drawn image among them)


class Live:
    """An opened model (cnnviz.Inspected) answering the live page; safe to share between
    the server's threads."""

    def __init__(self, inspected, atlas: Path | None = None):
        self.inspected = inspected
        self.atlas = Path(atlas) if atlas is not None else None
        self.layers = inspected.layers
        self.shape = tuple(inspected.loaded.image_shape)
        self.digit = inspected.digits  # drawings prepared as MNIST's digits
        self._lock = threading.Lock()  # the dataset is read once, by one thread
        self.softmax = inspected.probabilities
        self._forward = Batcher(self._forward_batch)  # concurrent requests share a pass
        self._geometry = None  # m.geometry() over MAP_IMAGES test images, made when first asked
        self._weights = threading.RLock()  # no answer mixes two epochs' weights

    def warm_up(self) -> None:
        """Trace the compiled functions once, before the first visitor waits for them."""
        blank = np.zeros(self.shape, np.float32)
        self.predict(blank)
        self.explain(blank)

    # ---- what the page asks ------------------------------------------------------------

    def describe(self) -> dict:
        """The model: name, input shape, classes, layers with their output shapes, whether
        the output is probabilities, and where its atlas and map cards are (if built)."""
        shapes = self.inspected.shapes
        cards = self.cards()
        return {
            "name": self.inspected.name,
            "input": {"shape": list(self.shape), "convention": self.inspected.input},
            "classes": list(self.inspected.classes),
            "probabilities": self.softmax,
            "layers": [{"name": n, "shape": list(shapes[n]), "card": cards.get(n)}
                       for n in self.layers],
            "atlas": "/atlas/index.html" if self.has_atlas() else None,
            "samples": self._sample_count(),
            "explain": list(EXPLAIN_METHODS),
            "drawing": PREPARED if self.digit else RESIZED,
            "training": self.training(),
        }

    def training(self) -> dict | None:
        """The bundle's run as it stands (status, epochs, history): while it trains, the page
        follows it and asks again after every epoch. None for a plain .keras file."""
        return self.inspected.loaded.training_state()

    def fresh(self) -> None:
        """The latest weights of a bundle that is training now (read when its model file
        changed); the layers' maps are made again for them."""
        with self._weights:
            if self.inspected.loaded.reload_if_changed():
                self._geometry = None

    def predict(self, pixels: np.ndarray, arrays: str = "base64") -> dict:
        """The prediction and every layer's output for one image of pixels 0–255."""
        self.fresh()
        layers, scores = self._forward(pixels)
        return {
            "input": encode(pixels, arrays),
            "prediction": self._prediction(scores, self.softmax),
            "layers": [{"name": n, **encode(layers[n], arrays)} for n in self.layers],
        }

    def _forward_batch(self, pixels: np.ndarray) -> list:
        with self._weights:
            found = self.inspected.activations(pixels, layers="all")
        return [({n: found[n][i] for n in self.layers}, found.outputs[i])
                for i in range(len(pixels))]

    def explain(self, pixels: np.ndarray, target: int | None = None,
                arrays: str = "base64") -> dict:
        """Saliency and Grad-CAM of the target's logit (default: the predicted class)."""
        chosen = "predicted" if target is None else int(target)
        self.fresh()
        with self._weights:
            found = self.inspected.explain(pixels[np.newaxis], methods=EXPLAIN_METHODS,
                                           target=chosen, progress=False)
        return {"target": int(found.targets[0]),
                "maps": [{"method": m, "note": found.notes.get(m, ""),
                          **encode(found.maps[m][0], arrays)} for m in EXPLAIN_METHODS]}

    def trace(self, pixels: np.ndarray, layer, index, at) -> dict:
        """The arithmetic of one value for this image (Inspected.trace), JSON-ready."""
        if not isinstance(layer, str) or layer not in self.layers:
            raise UsageError(f"layer {layer!r}: give one of {', '.join(self.layers)}", "layer")
        if not isinstance(index, int) or isinstance(index, bool):
            raise UsageError(f"map must be an integer, got {index!r}", "map")
        if at is not None and (not isinstance(at, list) or len(at) != 2 or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in at)):
            raise UsageError(f"at must be [row, column], got {at!r}", "at")
        self.fresh()
        with self._weights:
            result = self.inspected.trace(pixels, layer, index, None if at is None else tuple(at))
        return {**result.numbers(), "summary": result.summary}

    def maps(self) -> dict:
        """Each layer's map of the test images (their places on its first two principal axes,
        m.geometry()), made on the first request and kept: the points, their classes, the
        variance shares and what the features are."""
        self.fresh()
        with self._weights:
            g = self._layer_geometry()
        return {"split": g.split, "images": int(len(g.labels)), "labels": g.labels.tolist(),
                "classes": list(self.inspected.classes),
                "layers": [{"name": n, "features": g.features[n], "share": list(g.explained[n]),
                            **encode(g.coords[n])} for n in g.layers]}

    def place(self, pixels: np.ndarray) -> dict:
        """Where this image lands on each layer's map of `maps()`."""
        self.fresh()
        with self._weights:
            at = self._layer_geometry().place(pixels[np.newaxis])
        return {"layers": [{"name": n, "at": [float(v) for v in at[n][0]]} for n in at]}

    def _layer_geometry(self):
        with self._lock:  # made once, by one thread (it reads the dataset)
            if self._geometry is None:
                try:
                    self._geometry = self.inspected.geometry(limit=MAP_IMAGES)
                except CnnvizError as exc:
                    raise CnnvizError(f"no maps of the layers: {exc}") from None
            return self._geometry

    def sample(self, index: int | None = None, label: int | None = None,
               split: str = "test") -> dict:
        """A dataset image by index, or the first of a class: its pixels, index and label."""
        with self._lock:
            pixels, index, label = self.inspected.sample(index, label, split)
        classes = self.inspected.classes
        return {"index": index, "label": label, "split": split,
                "class": classes[label] if label < len(classes) else str(label),
                "pixels": encode(pixels, "list")}

    # ---- the atlas ---------------------------------------------------------------------

    def has_atlas(self) -> bool:
        return self.atlas is not None and (self.atlas / "index.html").is_file()

    def cards(self) -> dict[str, str]:
        """Per layer with map cards in the atlas: the URL of map 0's card (the page swaps
        the number)."""
        if not self.has_atlas():
            return {}
        found = {}
        for name in self.layers:
            first = card_url(name, 0)
            if (self.atlas / first).is_file():
                found[name] = f"/atlas/{first}"
        return found

    # ---- helpers -----------------------------------------------------------------------

    def prepare_drawing(self, drawing: np.ndarray) -> np.ndarray:
        """A drawing → the model's input pixels (Inspected.from_drawing)."""
        return self.inspected.from_drawing(drawing)

    def check_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Raw pixels as the model's input shape (Inspected.one_image)."""
        return self.inspected.one_image(pixels)

    def _prediction(self, scores: np.ndarray, softmax: bool) -> dict:
        order = np.argsort(-np.nan_to_num(scores, nan=-np.inf))
        answer = {"kind": "probabilities" if softmax else "scores",
                  "scores": [float(s) for s in scores], "predicted": int(order[0]),
                  "top": [int(k) for k in order[:3]]}
        if not np.isfinite(scores).all():
            answer["note"] = "the model produces NaN or infinite scores (shown as null)"
        return answer

    def _data_split(self, split: str):
        if split not in ("test", "train"):
            raise UsageError(f"split {split!r}: use test or train", "split")
        with self._lock:
            try:
                return self.inspected.data().split(split)
            except CnnvizError as exc:
                raise CnnvizError(f"no dataset images: {exc}") from None

    def _sample_count(self) -> int | None:
        try:
            return len(self._data_split("test")[0])
        except (CnnvizError, UsageError):
            return None


def encode(array: np.ndarray, arrays: str = "base64") -> dict:
    """{"shape", "data"}: base64 of little-endian float32, or nested lists."""
    array = np.asarray(array, np.float32)
    if arrays == "list":
        return {"shape": list(array.shape), "data": array.tolist()}
    raw = np.ascontiguousarray(array, dtype="<f4").tobytes()
    return {"shape": list(array.shape), "dtype": "float32",
            "data": base64.b64encode(raw).decode("ascii")}


def decode(payload: dict) -> np.ndarray:
    """The inverse of `encode` (tests and clients)."""
    if isinstance(payload["data"], str):
        raw = base64.b64decode(payload["data"])
        return np.frombuffer(raw, "<f4").reshape(payload["shape"]).astype(np.float32)
    return np.asarray(payload["data"], np.float32).reshape(payload["shape"])
