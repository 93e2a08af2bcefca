"""The live server against hostile clients (issue 26, items 1–5), on the real server over
loopback: image bombs, 64 clients at once, idle connections, foreign hosts and origins, and
malformed requests — each a one-line 4xx, no traceback, no path disclosed."""

from __future__ import annotations

import io
import json
import socket
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

from test_serve import call, png_bytes, predict


def raw(url: str, request: bytes, timeout: float = 30) -> bytes:
    """Send raw bytes to the server, return everything it answers until it closes."""
    host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
    with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as conn:
        conn.sendall(request)
        conn.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status_and_body(answer: bytes) -> tuple[int, dict | None]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if body else None


def host_of(url: str) -> str:
    return url.split("//")[1].rstrip("/")


@pytest.fixture(scope="module")
def quick_server(live_server):
    """A second server of the same model whose connections time out after 1 s, with room for
    8 connections at once."""
    from cnnviz.serve.live import Live
    from cnnviz.serve.running import Running
    from cnnviz.serve.server import LiveServer

    server = LiveServer(("127.0.0.1", 0), Live(live_server.inspected), None, timeout=1.0,
                        max_threads=8)
    running = Running(server)
    yield running
    running.stop()


@pytest.mark.parametrize("kind", ["PNG", "GIF", "TIFF", "WEBP", "JPEG"])
def test_an_image_bomb_is_refused_from_its_header(live_server, kind):
    from PIL import Image

    buffer = io.BytesIO()
    options = {"compression": "tiff_deflate"} if kind == "TIFF" else {}
    bomb = Image.new("L", (4096, 4096))
    bomb.paste(255, (1800, 800, 2300, 3300))  # a "1": ink, so a decoded one is a digit
    bomb.save(buffer, format=kind, **options)
    assert len(buffer.getvalue()) < 2**20  # a small file that decodes to 16.7 million pixels
    status, answer = call(f"{live_server.url}api/predict", buffer.getvalue(), "image/png")
    if kind == "JPEG":  # decoded at 1/8 scale (512 × 512): the cost is small, so it is served
        assert status == 200, answer
    else:
        assert status == 400, answer
        assert "4096×4096 pixels; at most 4,194,304 pixels" in answer["error"]


def test_a_large_jpeg_photo_is_decoded_reduced_and_costs_little_memory(tmp_path):
    import resource

    from PIL import Image

    from cnnviz.images import decode_image

    path = tmp_path / "photo.jpg"
    canvas = np.full((6000, 4000), 255, np.uint8)
    canvas[1000:5000, 1800:2200] = 0  # a dark "1" on white
    Image.fromarray(canvas).save(path, quality=90)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    pixels, _ = decode_image(path)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert pixels.shape == (28, 28) and pixels[14, 14] > 200 and pixels[14, 2] < 30
    assert grown_mb < 60  # a full decode of 24 million pixels as RGBA alone is 96 MB


def test_a_bomb_in_an_image_folder_is_one_line(run_cli, trained, tmp_path):
    from PIL import Image

    from conftest import assert_one_line_error

    for label in ("a", "b"):
        (tmp_path / "data" / label).mkdir(parents=True)
        Image.new("L", (28, 28)).save(tmp_path / "data" / label / "ok.png")
    Image.new("L", (10000, 10000)).save(tmp_path / "data" / "b" / "zbomb.png")
    result = run_cli("stats", "a2", "--data", tmp_path / "data", "--layer", "conv1", "--top", "2",
                     "--trained-dir", trained, "--outputs-dir", tmp_path / "out")
    assert_one_line_error(result, 1, "zbomb.png: more than [0-9,]+ pixels; at most 4,194,304")
    assert "DecompressionBomb" not in result.output


def test_sixty_four_clients_at_once_are_all_answered(live_server, sample):
    pixels = sample["x_test"][3].astype(np.float32)
    body = json.dumps({"pixels": pixels.tolist()}).encode()
    results: list = []
    gate = threading.Barrier(64)

    def client() -> None:
        gate.wait(timeout=60)
        try:
            results.append(call(f"{live_server.url}api/predict", body, timeout=120)[0])
        except Exception as exc:  # noqa: BLE001 (counted below)
            results.append(repr(exc))

    threads = [threading.Thread(target=client) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert results.count(200) == 64, [r for r in results if r != 200][:3]


def test_idle_connections_are_closed_and_threads_stay_bounded(quick_server):
    before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", quick_server.server.server_address[1]))
            for _ in range(40)]
    try:
        threads_at_peak = threading.active_count()
        assert threads_at_peak - before <= 8 + 1
        for conn in idle[:8]:  # the first 8 were served, and closed after 1 s of silence
            conn.settimeout(30)
            assert conn.recv(100) == b""
        for conn in idle[8:]:  # the rest had a slot in turn, or a 503
            conn.settimeout(60)
            answer = conn.recv(4096)
            assert answer == b"" or answer.startswith(b"HTTP/1.1 503"), answer[:60]
    finally:
        for conn in idle:
            conn.close()
    status, _ = call(f"{quick_server.url}api/model")
    assert status == 200


def test_a_body_shorter_than_its_length_is_refused(quick_server):
    host = host_of(quick_server.url)
    answer = raw(quick_server.url, (f"POST /api/predict HTTP/1.1\r\nHost: {host}\r\n"
                                    "Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n"
                                    '{"index": 1}').encode())
    status, body = status_and_body(answer)
    assert status == 400 and "ended after 12 of its 5,000 bytes" in body["error"]


def test_foreign_hosts_and_cross_origin_writes_are_refused(live_server, sample):
    host = host_of(live_server.url)
    for foreign in ("evil.example", "evil.example:80", f"attacker.test:{host.split(':')[1]}"):
        answer = raw(live_server.url, f"GET /api/model HTTP/1.1\r\nHost: {foreign}\r\n"
                                      "Connection: close\r\n\r\n".encode())
        status, body = status_and_body(answer)
        assert status == 403 and "is not this server's" in body["error"], foreign
    port = host.split(":")[1]
    for name in (host, f"localhost:{port}", "127.0.0.1"):
        answer = raw(live_server.url, f"GET /api/model HTTP/1.1\r\nHost: {name}\r\n"
                                      "Connection: close\r\n\r\n".encode())
        assert status_and_body(answer)[0] == 200, name
    pixels = json.dumps({"pixels": sample["x_test"][0].tolist()})
    for headers in (f"Origin: http://evil.example\r\n", "Sec-Fetch-Site: cross-site\r\n"):
        answer = raw(live_server.url, (f"POST /api/predict HTTP/1.1\r\nHost: {host}\r\n{headers}"
                                       f"Content-Type: text/plain\r\nContent-Length: {len(pixels)}"
                                       f"\r\nConnection: close\r\n\r\n{pixels}").encode())
        status, body = status_and_body(answer)
        assert status == 403 and "another site" in body["error"], headers
    same = raw(live_server.url, (f"POST /api/predict HTTP/1.1\r\nHost: {host}\r\n"
                                 f"Origin: http://{host}\r\nContent-Type: application/json\r\n"
                                 f"Content-Length: {len(pixels)}\r\nConnection: close\r\n\r\n"
                                 f"{pixels}").encode())
    assert status_and_body(same)[0] == 200


def test_malformed_requests_are_one_line_4xx_without_a_path(live_server, capfd):
    for path in ("/atlas/%00", "/atlas/" + "a" * 5000, "/atlas/" + "b/" * 300 + "x" * 250):
        status, answer = call(f"{live_server.url}{path.lstrip('/')}")
        assert status in (400, 404), (path[:20], answer)
        assert str(live_server.atlas) not in answer["error"]
    deep = b"[" * 100_000 + b"]" * 100_000
    status, answer = call(f"{live_server.url}api/predict", deep)
    assert status == 400 and "nested deeper" in answer["error"]
    head = urllib.request.Request(f"{live_server.url}api/model", method="HEAD")
    with urllib.request.urlopen(head, timeout=30) as response:
        assert response.status == 200 and response.read() == b""
    assert "Traceback" not in capfd.readouterr().err


def test_a_client_that_resets_while_answered_leaves_no_traceback(live_server, capfd):
    for _ in range(20):
        conn = socket.create_connection(("127.0.0.1", int(host_of(live_server.url).split(":")[1])))
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.sendall(f"POST /api/predict HTTP/1.1\r\nHost: {host_of(live_server.url)}\r\n"
                     "Content-Length: 3\r\nContent-Type: application/json\r\n\r\n[1]".encode())
        conn.close()  # a reset (linger 0) while the 400 is written
    status, _ = call(f"{live_server.url}api/model")
    assert status == 200
    err = capfd.readouterr().err
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_nan_scores_are_json_null_with_a_note(live_server):
    import keras

    from cnnviz.serve.live import Live

    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(3, name="out")])
    model.get_layer("out").set_weights([np.full((784, 3), np.inf, np.float32),
                                        np.zeros(3, np.float32)])
    import cnnviz

    live = Live(cnnviz.load(model, preprocess="unit"))
    answer = live.predict(np.full((28, 28), 10, np.float32))
    from cnnviz.serve.server import _finite

    text = json.dumps(_finite(answer), allow_nan=False)  # valid JSON: no bare NaN token
    parsed = json.loads(text)
    assert parsed["prediction"]["note"].startswith("the model produces NaN")
    assert all(s is None for s in parsed["prediction"]["scores"])


def test_ipv6_loopback_is_served(live_server):
    from cnnviz.serve.live import Live
    from cnnviz.serve.running import Running
    from cnnviz.serve.server import make_server

    if not socket.has_ipv6:
        pytest.skip("this machine has no IPv6")
    try:
        server = make_server(Live(live_server.inspected), "::1", 0)
    except Exception as exc:  # noqa: BLE001 (a machine with IPv6 switched off)
        if "Cannot assign" in str(exc) or "not available" in str(exc):
            pytest.skip(f"::1 is not configured here: {exc}")
        raise
    running = Running(server)
    try:
        assert running.url.startswith("http://[::1]:")
        with urllib.request.urlopen(f"{running.url}api/model", timeout=30) as response:
            assert json.loads(response.read())["name"] == "a2"
    finally:
        running.stop()
