"""`cnnviz serve`: the JSON API against the library and a NumPy convolution, bad requests,
8 threads at once, the atlas behind it, and the command itself (Ctrl-C, a taken port)."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from cnnviz.serve.live import decode


def call(url: str, body: bytes | None = None, content_type: str = "application/json",
         timeout: float = 60) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET",
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def predict(server, pixels: np.ndarray, query: str = "") -> dict:
    status, answer = call(f"{server.url}api/predict{query}",
                          json.dumps({"pixels": np.asarray(pixels).tolist()}).encode())
    assert status == 200, answer
    return answer


def png_bytes(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def numpy_conv_relu(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """A valid 2-D convolution (h, w, c) * (kh, kw, c, k) + bias, then ReLU, in plain NumPy."""
    kh, kw = kernel.shape[:2]
    h, w = x.shape[0] - kh + 1, x.shape[1] - kw + 1
    out = np.zeros((h, w, kernel.shape[3]), np.float64)
    for di in range(kh):
        for dj in range(kw):
            out += np.tensordot(x[di:di + h, dj:dj + w], kernel[di, dj], axes=([2], [0]))
    return np.maximum(out + bias, 0)


def test_the_answer_is_what_the_network_computes(live_server, sample):
    m = live_server.inspected
    pixels = sample["x_test"][5].astype(np.float32)
    answer = predict(live_server, pixels)
    assert np.array_equal(decode(answer["input"]), pixels)
    expected = m.activations(pixels[np.newaxis])
    names = [layer["name"] for layer in answer["layers"]]
    assert names == m.layers
    for layer in answer["layers"]:
        np.testing.assert_allclose(decode(layer), expected[layer["name"]][0], rtol=1e-5, atol=1e-5)
    scores = np.asarray(answer["prediction"]["scores"])
    np.testing.assert_allclose(scores, expected.outputs[0], rtol=1e-5, atol=1e-6)
    assert answer["prediction"]["predicted"] == int(scores.argmax())
    assert answer["prediction"]["kind"] == "probabilities"
    # conv1 against a convolution written here
    kernels = m.kernels("conv1")
    x = m.loaded.preprocessing.apply(pixels[np.newaxis])[0].reshape(28, 28, 1)
    conv1 = next(decode(layer) for layer in answer["layers"] if layer["name"] == "conv1")
    np.testing.assert_allclose(conv1, numpy_conv_relu(x, kernels.weights, kernels.bias),
                               rtol=1e-4, atol=1e-4)


def test_arrays_as_lists_and_a_dataset_index(live_server, sample):
    by_list = predict(live_server, sample["x_test"][2], "?arrays=list")
    assert isinstance(by_list["layers"][0]["data"], list)
    status, by_index = call(f"{live_server.url}api/predict", json.dumps({"index": 2}).encode())
    assert status == 200
    for a, b in zip(by_list["layers"], by_index["layers"]):
        np.testing.assert_allclose(decode(a), decode(b), rtol=1e-6, atol=1e-6)


def test_a_png_upload_is_fed_as_the_cli_reads_it(live_server, sample, tmp_path):
    from cnnviz.data import read_image

    digit = sample["x_test"][7]
    big = np.kron(255 - digit, np.ones((4, 4), np.uint8))  # dark on white, 112×112: converted
    path = tmp_path / "digit.png"
    path.write_bytes(png_bytes(big))
    status, answer = call(f"{live_server.url}api/predict", path.read_bytes(), "image/png")
    assert status == 200, answer
    expected, _ = read_image(path, digit=True)  # a digit model: prepared as MNIST's digits
    assert np.array_equal(decode(answer["input"]), expected.astype(np.float32))
    library = live_server.inspected.activations(expected[np.newaxis].astype(np.float32))
    np.testing.assert_allclose(answer["prediction"]["scores"], library.outputs[0], rtol=1e-5, atol=1e-6)


def test_explain_equals_the_library(live_server, sample):
    pixels = sample["x_test"][9].astype(np.float32)
    body = json.dumps({"pixels": pixels.tolist(), "target": 3}).encode()
    status, answer = call(f"{live_server.url}api/explain", body)
    assert status == 200, answer
    assert answer["target"] == 3
    expected = live_server.inspected.explain(pixels[np.newaxis], ["saliency", "grad-cam"], target=3)
    for item in answer["maps"]:
        np.testing.assert_allclose(decode(item), expected.maps[item["method"]][0], rtol=1e-4, atol=1e-6)


def test_samples_by_index_and_by_class(live_server, small_npz):
    with np.load(small_npz) as npz:
        x, y = npz["x_test"], npz["y_test"]
    status, found = call(f"{live_server.url}api/sample?index=11")
    assert status == 200
    assert found["index"] == 11 and found["label"] == int(y[11])
    assert np.array_equal(np.asarray(found["pixels"]["data"]), x[11])
    status, first = call(f"{live_server.url}api/sample?class=4")
    assert status == 200 and first["index"] == int(np.flatnonzero(y == 4)[0])
    status, model = call(f"{live_server.url}api/model")
    assert model["input"]["shape"] == [28, 28] and len(model["classes"]) == 10
    assert model["samples"] == len(x)
    assert model["layers"][0]["card"] == "/atlas/cards/conv1/map-000.html"


BAD_REQUESTS = [
    ("api/predict", b"this is not an image", "image/png", "not a readable image"),
    ("api/predict", b"{\"pixels\": [[1, 2", "application/json", "malformed JSON"),
    ("api/predict", b"[1, 2, 3]", "application/json", "must be an object"),
    ("api/predict", json.dumps({"pixels": [[1, 2], [3, 4]]}).encode(), "application/json", "28×28"),
    ("api/predict", json.dumps({"pixels": np.full((28, 28), 300).tolist()}).encode(),
     "application/json", "0–255"),
    ("api/predict", json.dumps({"pixels": [["a"] * 28] * 28}).encode(), "application/json", "numeric"),
    ("api/predict", json.dumps({"index": 10**6}).encode(), "application/json", "out of range"),
    ("api/predict", json.dumps({"nothing": 1}).encode(), "application/json", "needs"),
    ("api/explain", json.dumps({"index": 0, "target": "seven"}).encode(), "application/json", "target"),
    ("api/predict?arrays=xml", json.dumps({"index": 0}).encode(), "application/json", "arrays"),
    ("api/predict", b"", "image/png", "empty body"),
]


@pytest.mark.parametrize("path, body, kind, fragment", BAD_REQUESTS,
                         ids=[b[3] for b in BAD_REQUESTS])
def test_bad_requests_get_400_and_the_next_good_one_is_served(live_server, sample, path, body,
                                                              kind, fragment):
    status, answer = call(f"{live_server.url}{path}", body, kind)
    assert status == 400
    assert set(answer) == {"error"} and "\n" not in answer["error"]
    assert fragment in answer["error"], answer
    assert predict(live_server, sample["x_test"][0])["prediction"]["scores"]


def test_too_big_uploads_are_refused(live_server, sample):
    wide = np.zeros((8, 600_000), np.uint8)  # 4.8 million pixels in a small file
    status, answer = call(f"{live_server.url}api/predict", png_bytes(wide), "image/png")
    assert status == 400 and "600000×8 pixels; at most 4,194,304 pixels" in answer["error"]
    huge = b"\x89PNG" + os.urandom(10 * 2**20)  # over 10 MB: refused before it is read
    status, answer = call(f"{live_server.url}api/predict", huge, "image/png")
    assert status == 400 and "at most 10,485,760" in answer["error"]
    assert predict(live_server, sample["x_test"][0])["prediction"]["scores"]


def test_unknown_paths_and_the_api_listing(live_server):
    status, answer = call(f"{live_server.url}nowhere")
    assert status == 404 and "no such page" in answer["error"]
    status, answer = call(f"{live_server.url}api")
    assert status == 200 and any(key.startswith("POST /api/predict") for key in answer)


def test_eight_threads_two_hundred_requests_predictions_and_explanations(live_server, sample):
    images = sample["x_test"][:8].astype(np.float32)
    expected = live_server.inspected.activations(images).outputs
    failures, answers = [], []

    explained = []

    def client(k: int) -> None:
        for i in range(25):
            try:
                if i % 5 == 4:  # explanations run beside the predictions
                    status, why = call(f"{live_server.url}api/explain",
                                       json.dumps({"pixels": images[k].tolist()}).encode())
                    assert status == 200, why
                    explained.append((k, why["target"]))
                    continue
                answer = predict(live_server, images[k])
                answers.append((k, np.asarray(answer["prediction"]["scores"])))
            except Exception as exc:  # noqa: BLE001 (collected, asserted below)
                failures.append(repr(exc))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert failures == []
    assert len(answers) == 160 and len(explained) == 40
    top2 = np.sort(expected, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-3  # never judge a near-tie
    assert all(target == int(expected[k].argmax()) for k, target in explained if clear[k])
    for k, scores in answers:  # every answer belongs to its own image: no cross-talk
        np.testing.assert_allclose(scores, expected[k], rtol=1e-4, atol=1e-6)


def test_the_atlas_is_served_with_a_link_back(live_server):
    with urllib.request.urlopen(f"{live_server.url}atlas/index.html", timeout=30) as response:
        page = response.read().decode()
    assert '<a href="/">' in page and "live page" in page
    assert page.replace(page[page.index("<p style"):page.index("</p>", page.index("<p style")) + 4], ""
                        ) == (live_server.atlas / "index.html").read_text()
    with urllib.request.urlopen(f"{live_server.url}atlas/cards/conv2/map-005.html", timeout=30) as r:
        assert r.status == 200
    for sneaky in ("atlas/../../../etc/passwd", "atlas/%2e%2e/%2e%2e/etc/passwd",
                   "atlas/.manifest.lock", "atlas/nothing.html"):
        status, answer = call(f"{live_server.url}{sneaky}")
        assert status == 404, sneaky


# ---- the command ----------------------------------------------------------------------------

def start_cli(trained: Path, data: Path, *options: str) -> tuple[subprocess.Popen, str]:
    """`cnnviz serve a2 --port 0 …` in its own process; returns it and the URL it printed."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "cnnviz", "serve", "a2", "--port", "0", "--trained-dir",
         str(trained), "--data", str(data), *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    for line in process.stdout:
        if line.startswith("serving "):
            return process, line.split(" at ")[1].split()[0]
        if time.monotonic() > deadline:
            break
    process.kill()
    raise AssertionError(f"no URL printed: {process.stderr.read()}")


def test_ctrl_c_stops_the_server_with_exit_0_and_frees_the_port(trained, small_npz):
    process, url = start_cli(trained, small_npz, "--host", "0.0.0.0")
    try:
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        status, model = call(f"http://127.0.0.1:{port}/api/model")
        assert status == 200 and model["name"] == "a2"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "stopped" in out
    assert "warning: listening on 0.0.0.0" in err and "Traceback" not in err
    with socket.socket() as again:  # the port is free again (no listener: a server binds it;
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no listener)
        again.bind(("0.0.0.0", port))
        again.listen()


def test_a_taken_port_is_one_line_naming_it(run_cli, trained, small_npz):
    from conftest import assert_one_line_error

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "a2", "--port", str(port), "--trained-dir", str(trained),
                         "--data", str(small_npz))
    assert_one_line_error(result, 1, f"port {port} on 127.0.0.1 is in use", "--port")


def test_requests_waiting_together_share_one_batch_and_its_errors():
    from cnnviz.serve.batching import Batcher

    sizes: list[int] = []
    started = threading.Event()

    def run(batch: np.ndarray) -> list:
        started.set()
        if not sizes:  # hold the first batch until the other seven requests wait
            deadline = time.monotonic() + 30
            while batcher._queue.qsize() < 7 and time.monotonic() < deadline:
                time.sleep(0.01)
        sizes.append(len(batch))
        return [row * 2 for row in batch]

    batcher = Batcher(run)
    results: dict[int, np.ndarray] = {}
    threads = [threading.Thread(target=lambda k=k: results.__setitem__(k, batcher(np.full(3, k))))
               for k in range(8)]
    threads[0].start()
    assert started.wait(timeout=30)  # the first request is taken alone
    for t in threads[1:]:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sizes == [1, 7]
    assert all(np.array_equal(results[k], np.full(3, 2 * k)) for k in range(8))

    def broken(batch):
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        Batcher(broken)(np.zeros(3))


def test_the_library_serves_from_a_background_thread_and_stops(live_server):
    import cnnviz

    running = cnnviz.live(live_server.inspected, port=0, atlas=live_server.atlas)
    try:
        assert "serving" in repr(running) and running.url in running._repr_html_()
        status, model = call(f"{running.url}api/model")
        assert status == 200 and model["atlas"] == "/atlas/index.html"
    finally:
        running.stop()
    assert "stopped" in repr(running)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{running.url}api/model", timeout=5)
