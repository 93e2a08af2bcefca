"""A request body → the image pixels it carries, or a one-line reason it is refused.

Accepted by POST /api/predict and /api/explain:
- an image file (PNG, JPEG, GIF, BMP, TIFF; any Content-Type but JSON): converted to the
  model's input exactly as an image file given to explain or activations is converted;
- JSON {"pixels": [[…]]}: raw pixels 0–255 in the model's input shape (H×W or H×W×C),
  optionally {"target": CLASS} for /api/explain;
- JSON {"drawing": [[…]]}: a drawing, white ink on black, 0–255, gray, any size up to
  1024 a side (the page sends its canvas at 4× the model's side): for a digit model
  prepared as MNIST's digits were (cnnviz.digits), else resized; no ink is refused;
- JSON {"index": N, "split": "test"}: a dataset image.
Bodies over MAX_BODY bytes and images over MAX_DECODED_PIXELS pixels are refused before
they are decoded; at most DECODING images are decoded at once.
"""

from __future__ import annotations

import io
import json
import threading
from dataclasses import dataclass

import numpy as np

from cnnviz.archive import json_depth
from cnnviz.images import MAX_DECODED_PIXELS, decode_image
from cnnviz.errors import CnnvizError, UsageError

MAX_BODY = 10 * 2**20  # 10 MB
DECODING = threading.BoundedSemaphore(2)  # images decoded at once: memory stays bounded
MAX_JSON_DEPTH = 8  # {"pixels": [[[...]]]} is four deep


class BadRequest(Exception):
    """A request the server answers with 400 and this one-line message."""


@dataclass(frozen=True)
class Parsed:
    pixels: np.ndarray
    target: int | None = None
    note: str | None = None
    request: dict | None = None  # the JSON object, for routes that read more of it


def parse_body(body: bytes, content_type: str, live) -> Parsed:
    """The pixels (in the model's input shape, 0–255) a request body carries."""
    if not body:
        raise BadRequest("empty body: send an image file or JSON {\"pixels\": [[...]]}")
    if content_type.split(";")[0].strip().lower() == "application/json":
        return _from_json(body, live)
    try:
        with DECODING:
            pixels, note = decode_image(io.BytesIO(body), live.shape, "upload", live.digit)
    except CnnvizError as exc:
        raise BadRequest(str(exc)) from None
    return Parsed(np.asarray(pixels, np.float32), None, note)


def _from_json(body: bytes, live) -> Parsed:
    if json_depth(body) > MAX_JSON_DEPTH:
        raise BadRequest(f"JSON nested deeper than {MAX_JSON_DEPTH} levels; send "
                         "{\"pixels\": [[...]]}")
    try:
        request = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None
    if not isinstance(request, dict):
        raise BadRequest("JSON body must be an object: {\"pixels\": [[...]]} or {\"index\": N}")
    target = request.get("target")
    if target is not None and (not isinstance(target, int) or isinstance(target, bool)):
        raise BadRequest(f"target must be a class index, got {target!r}")
    try:
        if "pixels" in request:
            pixels = np.asarray(request["pixels"], np.float32)
            return Parsed(live.check_pixels(pixels), target, request=request)
        if "drawing" in request:
            drawing = np.asarray(request["drawing"], np.float32)
            return Parsed(live.prepare_drawing(drawing), target)
        if "index" in request:
            index = request["index"]
            if not isinstance(index, int) or isinstance(index, bool):
                raise BadRequest(f"index must be an integer, got {index!r}")
            found = live.sample(index=index, split=str(request.get("split", "test")))
            return Parsed(np.asarray(found["pixels"]["data"], np.float32), target)
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"pixels: not a numeric array ({exc})") from None
    except UsageError as exc:
        raise BadRequest(str(exc)) from None
    raise BadRequest("JSON body needs \"pixels\" (raw 0–255 pixels), \"drawing\" (a drawing to "
                     "prepare) or \"index\" (a dataset image)")


def check_length(length: str | None) -> int:
    """The Content-Length as an int, refused when absent, malformed or over MAX_BODY."""
    try:
        size = int(length) if length is not None else -1
    except ValueError:
        raise BadRequest(f"bad Content-Length {length!r}") from None
    if size < 0:
        raise BadRequest("Content-Length required")
    if size > MAX_BODY:
        raise BadRequest(f"body of {size:,} bytes; at most {MAX_BODY:,} (10 MB)")
    return size


__all__ = ["BadRequest", "Parsed", "parse_body", "check_length", "MAX_BODY", "MAX_DECODED_PIXELS"]
