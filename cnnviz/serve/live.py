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

from cnnviz.model import digit_input
from cnnviz.digits import prepare_digit
from cnnviz.errors import CnnvizError, UsageError
from cnnviz.explain_methods import METHODS
from cnnviz.images import convert
from cnnviz.names import slug
from cnnviz.serve.batching import Batcher

ARRAY_FORMATS = ("base64", "list")
EXPLAIN_METHODS = tuple(m.name for m in METHODS if m.live)  # cheap enough for every drawing
MAX_DRAWING = 1024  # a drawing's largest side
PREPARED = "cropped to the ink, scaled into a 20×20 box and centred by mass, as MNIST's digits were"
RESIZED = "resized to the model's input"


class Live:
    """An opened model (cnnviz.Inspected) answering the live page; safe to share between
    the server's threads."""

    def __init__(self, inspected, atlas: Path | None = None):
        self.inspected = inspected
        self.atlas = Path(atlas) if atlas is not None else None
        self.layers = inspected.layers
        self.shape = tuple(inspected.loaded.image_shape)
        self.digit = digit_input(inspected.loaded)  # drawings prepared as MNIST's digits
        self._lock = threading.Lock()  # the dataset is read once, by one thread
        self.softmax = self._softmax()
        self._forward = Batcher(self._forward_batch)  # concurrent requests share a pass

    def warm_up(self) -> None:
        """Trace the compiled functions once, before the first visitor waits for them."""
        blank = np.zeros(self.shape, np.float32)
        self.predict(blank)
        self.explain(blank)

    # ---- what the page asks ------------------------------------------------------------

    def describe(self) -> dict:
        """The model: name, input shape, classes, layers with their output shapes, whether
        the output is probabilities, and where its atlas and map cards are (if built)."""
        from cnnviz.graph import graph_of

        graph = graph_of(self.inspected.model)
        cards = self.cards()
        return {
            "name": self.inspected.name,
            "input": {"shape": list(self.shape), "convention": self.inspected.input},
            "classes": list(self.inspected.classes),
            "probabilities": self.softmax,
            "layers": [{"name": n, "shape": list(graph.shape(n)[1:]), "card": cards.get(n)}
                       for n in self.layers],
            "atlas": "/atlas/index.html" if self.has_atlas() else None,
            "samples": self._sample_count(),
            "explain": list(EXPLAIN_METHODS),
            "drawing": PREPARED if self.digit else RESIZED,
        }

    def predict(self, pixels: np.ndarray, arrays: str = "base64") -> dict:
        """The prediction and every layer's output for one image of pixels 0–255."""
        layers, scores = self._forward(pixels)
        return {
            "input": encode(pixels, arrays),
            "prediction": self._prediction(scores, self.softmax),
            "layers": [{"name": n, **encode(layers[n], arrays)} for n in self.layers],
        }

    def _forward_batch(self, pixels: np.ndarray) -> list:
        found = self.inspected.activations(pixels, layers="all")
        return [({n: found[n][i] for n in self.layers}, found.outputs[i])
                for i in range(len(pixels))]

    def explain(self, pixels: np.ndarray, target: int | None = None,
                arrays: str = "base64") -> dict:
        """Saliency and Grad-CAM of the target's logit (default: the predicted class)."""
        chosen = "predicted" if target is None else int(target)
        found = self.inspected.explain(pixels[np.newaxis], methods=EXPLAIN_METHODS,
                                       target=chosen, progress=False)
        return {"target": int(found.targets[0]),
                "maps": [{"method": m, "note": found.notes.get(m, ""),
                          **encode(found.maps[m][0], arrays)} for m in EXPLAIN_METHODS]}

    def sample(self, index: int | None = None, label: int | None = None,
               split: str = "test") -> dict:
        """A dataset image by index, or the first of a class: its pixels, index and label."""
        x, y = self._data_split(split)
        if label is not None:
            if not 0 <= label < len(self.inspected.classes):
                raise UsageError(f"class {label} out of range; valid: 0–"
                                 f"{len(self.inspected.classes) - 1}", "class")
            found = np.flatnonzero(np.asarray(y) == label)
            if len(found) == 0:
                raise UsageError(f"the {split} split has no image of class {label}", "class")
            index = int(found[0] if index is None else found[index % len(found)])
        if index is None or not 0 <= index < len(x):
            raise UsageError(f"index {index} out of range; the {split} split has images "
                             f"0–{len(x) - 1}", "index")
        pixels = np.asarray(x[index:index + 1])[0].astype(np.float32)
        return {"index": index, "label": int(y[index]), "split": split,
                "class": self.inspected.classes[int(y[index])] if int(y[index]) < len(
                    self.inspected.classes) else str(int(y[index])),
                "pixels": encode(pixels, "list")}

    # ---- the atlas ---------------------------------------------------------------------

    def has_atlas(self) -> bool:
        return self.atlas is not None and (self.atlas / "index.html").is_file()

    def cards(self) -> dict[str, str]:
        """Per layer with map cards in the atlas: the URL of map 0's card (the page swaps
        the number)."""
        from cnnviz.render.site import CARDS_DIR, card_file

        if not self.has_atlas():
            return {}
        found = {}
        for name in self.layers:
            first = self.atlas / CARDS_DIR / slug(name) / card_file(0)
            if first.is_file():
                found[name] = f"/atlas/{CARDS_DIR}/{slug(name)}/{card_file(0)}"
        return found

    # ---- helpers -----------------------------------------------------------------------

    def prepare_drawing(self, drawing: np.ndarray) -> np.ndarray:
        """A drawing (white ink on black, 0–255, any size up to MAX_DRAWING a side, gray)
        → the model's input pixels: for a digit model prepared as MNIST's digits were
        (cnnviz.digits), else resized."""
        array = np.asarray(drawing, np.float32)
        if array.ndim != 2 or not 2 <= min(array.shape) <= max(array.shape) <= MAX_DRAWING:
            raise UsageError(f"drawing: give rows of gray levels, 2–{MAX_DRAWING} a side; got "
                             f"shape {'×'.join(map(str, array.shape)) or 'scalar'}", "drawing")
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 255:
            raise UsageError("drawing: values must be finite and within 0–255", "drawing")
        if self.digit:
            prepared = prepare_digit(array)
            if prepared is None:
                raise UsageError("drawing: no ink; draw something", "drawing")
            return prepared.astype(np.float32)
        gray = np.rint(array).astype(np.uint8)[np.newaxis]  # convert makes RGB of it if need be
        return convert(gray, self.shape)[0].astype(np.float32)

    def check_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Raw pixels as the model's input shape (a trailing 1 channel may be left out)."""
        array = np.asarray(pixels, np.float32)
        if array.ndim == len(self.shape) + 1 and array.shape[-1] == 1:
            array = array[..., 0]
        if array.shape != self.shape:
            want = "×".join(map(str, self.shape))
            raise UsageError(f"pixels: shape {'×'.join(map(str, array.shape)) or 'scalar'}; this "
                             f"model takes {want}", "pixels")
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 255:
            raise UsageError("pixels: values must be finite and within 0–255", "pixels")
        return array

    def _prediction(self, scores: np.ndarray, softmax: bool) -> dict:
        order = np.argsort(-np.nan_to_num(scores, nan=-np.inf))
        answer = {"kind": "probabilities" if softmax else "scores",
                  "scores": [float(s) for s in scores], "predicted": int(order[0]),
                  "top": [int(k) for k in order[:3]]}
        if not np.isfinite(scores).all():
            answer["note"] = "the model produces NaN or infinite scores (shown as null)"
        return answer

    def _softmax(self) -> bool:
        from cnnviz.probes.responses import ends_in_softmax
        from cnnviz.graph import graph_of

        graph = graph_of(self.inspected.model)
        return ends_in_softmax(graph.layer(graph.output_address))

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
