"""The local HTTP server of `cnnviz serve`: the live page, its JSON API and the static atlas.

The standard library's ThreadingHTTPServer (one thread per connection, HTTP/1.1 keep-alive):
no dependency to install, and for one person's browser on 127.0.0.1 plus a few scripts it
answers well within the page's budget; the computation is TensorFlow's, which releases the
GIL. Every answer is JSON or a file; every error is a status with {"error": "one line"}, and
the server goes on serving.

    GET  /                    the live page
    GET  /api                 this API in JSON
    GET  /api/model           name, input shape, classes, layers (shape, card URL), atlas URL
    GET  /api/sample?index=N|class=C[&split=test]   a dataset image's pixels and label
    POST /api/predict[?arrays=list]   body: image file | {"pixels"} | {"index"} →
                              {"input", "prediction", "layers": [{"name","shape","data"}]}
    POST /api/explain[?arrays=list]   same body (+ "target") → saliency and Grad-CAM maps
    POST /api/trace                   {"pixels", "layer", "map", "at"} → one value's arithmetic
    GET  /api/training        the bundle's run as it stands (status, epochs, history)
    GET  /api/geometry        each layer's map of the test images (PCA; points and classes)
    POST /api/geometry        same body as predict → where the image lands on each map
    GET  /atlas/…             the model's static atlas (outputs/NAME/), with a link back here
"""

from __future__ import annotations

import json
import math
import mimetypes
import re
import socket
import sys
import threading
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from cnnviz.errors import CnnvizError, UsageError
from cnnviz.serve.api import API
from cnnviz.serve.live import ARRAY_FORMATS, Live
from cnnviz.serve.requests import BadRequest, check_length, parse_body

PAGE_FILES = ("index.html", "live.js", "live.css")
BACKLOG = 128  # connections waiting to be accepted (the standard library's is 5)
MAX_THREADS = 64  # connections served at once; more wait for a free slot, then get 503
IDLE_TIMEOUT = 20.0  # seconds a connection may sit idle (or send nothing) before it is closed
MAX_PATH = 1024  # characters of a request's path
DISCARD_LIMIT = 64 * 2**20  # an oversized body up to this is read (and dropped) to answer 400
BACK_LINK = ('<p style="margin:0;padding:6px 12px;background:#eef3ff;font:14px sans-serif">'
             '<a href="/">← live page: draw a digit and watch every layer answer</a></p>')


class LiveServer(ThreadingHTTPServer):
    """A threading HTTP server holding the Live model it answers for: at most MAX_THREADS
    connections at once, each closed after `timeout` idle seconds; answers only requests
    addressed to the host names it was started for (no DNS rebinding)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = BACKLOG

    def __init__(self, address: tuple[str, int], live: Live, log=None,
                 timeout: float = IDLE_TIMEOUT, max_threads: int = MAX_THREADS):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)
        self.live = live
        self.log = log  # a callable taking one line, or None for silence
        self.idle_timeout = timeout
        self._slots = threading.BoundedSemaphore(max_threads)
        self._holding: set[int] = set()  # requests holding a slot (released exactly once)
        self._holding_lock = threading.Lock()
        self.hosts = _host_names(address[0], self.server_address[1])

    def process_request(self, request, client_address) -> None:
        """A thread per connection while a slot is free; else, after a wait, a 503."""
        if not self._slots.acquire(timeout=self.idle_timeout):
            _refuse_busy(request)
            self.shutdown_request(request)
            return
        with self._holding_lock:
            self._holding.add(id(request))
        try:
            super().process_request(request, client_address)
        except BaseException:  # e.g. Ctrl-C after the thread started: its release counts
            self._release(request)
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(request)

    def _release(self, request) -> None:
        with self._holding_lock:
            if id(request) not in self._holding:
                return
            self._holding.discard(id(request))
        self._slots.release()

    def handle_error(self, request, client_address) -> None:
        """A client that went away is no error; anything else is one line, not a traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError, socket.timeout)):
            return
        line = f"cnnviz serve: unexpected {type(error).__name__}: {error}".splitlines()[0]
        if self.log is not None:
            self.log(line)
        else:
            print(line, file=sys.stderr)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/"


def make_server(live: Live, host: str = "127.0.0.1", port: int = 8765, log=None,
                timeout: float = IDLE_TIMEOUT) -> LiveServer:
    """Bind the server (port 0: any free port); a CnnvizError naming the port when it is taken."""
    try:
        return LiveServer((host, port), live, log, timeout)
    except OSError as exc:
        if exc.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            raise CnnvizError(f"port {port} on {host} is in use; choose another port= "
                              "(0 picks a free one)") from None
        raise CnnvizError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _host_names(host: str, port: int) -> frozenset[str] | None:
    """The Host headers the server answers (with and without the port); None: any (it listens
    on every address, so it cannot know the names it is reached by)."""
    if host in ("", "0.0.0.0", "::"):
        return None
    names = {"127.0.0.1", "localhost", "[::1]", f"[{host}]" if ":" in host else host}
    return frozenset(n.lower() for name in names for n in (name, f"{name}:{port}"))


def _refuse_busy(request: socket.socket) -> None:
    body = json.dumps({"error": f"busy: {MAX_THREADS} connections are open; try again"}).encode()
    try:
        request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                        b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    except OSError:
        pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LiveServer

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout  # applied to the socket by the base's setup
        super().setup()

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError, socket.timeout):
            self.close_connection = True

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base's name)
        if self.server.log is not None:
            self.server.log(f"{self.address_string()} {format % args}")

    # ---- routes ------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._answer(self._get)

    def do_HEAD(self) -> None:  # GET's headers, no body (_send leaves it out)
        self._answer(self._get)

    def do_POST(self) -> None:
        self._answer(self._post)

    def _get(self, path: str, query: dict) -> None:
        live = self.server.live
        if path in ("/", "/index.html"):
            return self._page_file("index.html")
        if path.startswith("/static/") and path[len("/static/"):] in PAGE_FILES:
            return self._page_file(path[len("/static/"):])
        if path == "/favicon.ico":
            return self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
        if path == "/api":
            return self._json(API)
        if path == "/api/model":
            return self._json(live.describe())
        if path == "/api/sample":
            index, label = _int_param(query, "index"), _int_param(query, "class")
            if index is None and label is None:
                raise BadRequest("give ?index=N or ?class=C")
            return self._json(live.sample(index, label, query.get("split", "test")))
        if path == "/api/geometry":
            return self._json(live.maps())
        if path == "/api/training":
            return self._json({"training": live.training()})
        if path == "/atlas" or path.startswith("/atlas/"):
            return self._atlas_file(path[len("/atlas"):].lstrip("/") or "index.html")
        self._error(HTTPStatus.NOT_FOUND, f"no such page: {path} (the API is listed at /api)")

    def _post(self, path: str, query: dict) -> None:
        if path not in ("/api/predict", "/api/explain", "/api/trace", "/api/geometry"):
            self._drain()
            return self._error(HTTPStatus.NOT_FOUND, f"no such endpoint: POST {path}")
        arrays = query.get("arrays", "base64")
        body = self._body()
        if arrays not in ARRAY_FORMATS:
            raise BadRequest(f"arrays={arrays!r}: use {' or '.join(ARRAY_FORMATS)}")
        parsed = parse_body(body, self.headers.get("Content-Type", ""), self.server.live)
        if path == "/api/predict":
            answer = self.server.live.predict(parsed.pixels, arrays)
        elif path == "/api/geometry":
            answer = self.server.live.place(parsed.pixels)
        elif path == "/api/trace":
            request = parsed.request or {}
            answer = self.server.live.trace(parsed.pixels, request.get("layer"),
                                            request.get("map", 0), request.get("at"))
        else:
            answer = self.server.live.explain(parsed.pixels, parsed.target, arrays)
        if parsed.note:
            answer["note"] = parsed.note
        self._json(answer)

    # ---- plumbing ----------------------------------------------------------------------

    def _answer(self, route) -> None:
        try:
            self._refuse_foreign()
            if len(self.path) > MAX_PATH:
                raise BadRequest(f"a path of {len(self.path):,} characters; at most {MAX_PATH:,}")
            split = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(split.query).items()}
            route(unquote(split.path), query)
        except Foreign as exc:
            self._drain()
            self._error(HTTPStatus.FORBIDDEN, str(exc))
        except BadRequest as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
        except UsageError as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
        except CnnvizError as exc:
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, str(exc))
        except (ConnectionError, TimeoutError, socket.timeout):
            self.close_connection = True
        except Exception as exc:  # a bug: answered, reported, and the server goes on
            if self.server.log is not None:
                self.server.log("".join(traceback.format_exception(exc)).rstrip())
            else:
                print(f"cnnviz serve: unexpected {type(exc).__name__}: {exc}".splitlines()[0],
                      file=sys.stderr)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"unexpected {type(exc).__name__}")

    def _refuse_foreign(self) -> None:
        """Refuse a request for a host name the server was not started for (a page that
        rebinds its DNS name to 127.0.0.1), and a write from a page of another origin."""
        host = (self.headers.get("Host") or "").strip().lower()
        if self.server.hosts is not None and host not in self.server.hosts:
            raise Foreign(f"host {host[:100]!r} is not this server's; open "
                          f"{self.server.url}")
        if self.command == "POST":
            origin = self.headers.get("Origin")
            if self.headers.get("Sec-Fetch-Site", "same-origin") not in (
                    "same-origin", "none") or (origin is not None and
                                               urlsplit(origin).netloc.lower() != host):
                raise Foreign("a request from another site's page is refused; use the live "
                              "page or a script")

    def _body(self) -> bytes:
        try:
            size = check_length(self.headers.get("Content-Length"))
        except BadRequest:
            self._discard()
            raise
        body = self.rfile.read(size)
        if len(body) < size:
            self.close_connection = True
            raise BadRequest(f"the body ended after {len(body):,} of its {size:,} bytes "
                             "(Content-Length)")
        return body

    def _discard(self) -> None:
        """Read and drop an oversized body (a chunk at a time, up to DISCARD_LIMIT) so the
        client, still sending, reads the 400; past that, close the connection."""
        self.close_connection = True
        try:
            left = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return
        if left > DISCARD_LIMIT:
            return
        while left > 0:
            chunk = self.rfile.read(min(left, 2**20))
            if not chunk:
                break
            left -= len(chunk)

    def _drain(self) -> None:
        try:
            self.rfile.read(check_length(self.headers.get("Content-Length")))
        except BadRequest:
            self._discard()

    def _json(self, value, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(_finite(value), allow_nan=False).encode(),
                   "application/json")

    def _error(self, status: HTTPStatus, message: str) -> None:
        try:
            self._json({"error": message.splitlines()[0] if message else status.phrase}, status)
        except (ConnectionError, TimeoutError, socket.timeout):
            self.close_connection = True

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _page_file(self, name: str) -> None:
        body = resources.files("cnnviz.serve").joinpath("page", name).read_bytes()
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        self._send(HTTPStatus.OK, body, f"{kind}; charset=utf-8" if kind.startswith("text") or
                   kind.endswith("javascript") else kind)

    def _atlas_file(self, relative: str) -> None:
        live = self.server.live
        if not live.has_atlas():
            return self._error(HTTPStatus.NOT_FOUND, "no atlas for this model yet: run "
                               f"the atlas of {live.inspected.name} (cnnviz atlas), or give its folder (atlas=DIR)")
        root = live.atlas.resolve()
        try:
            target = (root / relative).resolve()
            found = target.is_relative_to(root) and target.is_file() and not any(
                part.startswith(".") for part in target.relative_to(root).parts)
            body = target.read_bytes() if found else None
        except (OSError, ValueError):  # a NUL byte, a name too long: no such file
            body = None
        if body is None:
            return self._error(HTTPStatus.NOT_FOUND, f"no such atlas file: {relative[:200]}")
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if kind == "text/html":
            body = re.sub(rb"(<body[^>]*>)", lambda m: m.group(1) + BACK_LINK.encode(), body, count=1)
        self._send(HTTPStatus.OK, body, kind)


def _int_param(query: dict, name: str) -> int | None:
    if name not in query:
        return None
    try:
        return int(query[name])
    except ValueError:
        raise BadRequest(f"{name}={query[name]!r}: give an integer") from None


class Foreign(Exception):
    """A request from a host name or origin the server does not answer: 403."""


def _finite(value):
    """`value` as plain JSON: NumPy scalars as numbers, NaN and ±inf as null."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def page_dir() -> Path:
    """Where the page's files are (for tests and the README)."""
    return Path(str(resources.files("cnnviz.serve").joinpath("page")))
