"""The live server under load: latency of a full answer with 8 concurrent clients.

    python benchmarks/bench_serve.py [--clients 8] [--requests 100] [--model NAME --trained-dir DIR]

Starts the real `cnnviz serve` (its own process, port 0), then every client POSTs a
different test digit as JSON pixels to /api/predict on its own keep-alive connection and
reads the full answer (the prediction and every layer's output). Reported: p50, p95 and
p99 latency and requests per second, for 1 client and for --clients at once, and as the
baseline of the same run the library call alone (`m.activations` of one image, in this
process, no HTTP): the server's overhead is the ratio. Without --model, article2 is
trained for 3 epochs first (not timed).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=100, help="per client")
    parser.add_argument("--model")
    parser.add_argument("--trained-dir", default="trained")
    args = parser.parse_args()
    env = dict(os.environ, CNNVIZ_OFFLINE="1", PYTHONUNBUFFERED="1")
    with tempfile.TemporaryDirectory() as tmp:
        trained, name = Path(args.trained_dir), args.model
        if name is None:
            trained, name = Path(tmp), "bench"
            subprocess.run([sys.executable, "-m", "cnnviz", "train", "--epochs", "3", "--quiet",
                            "--name", name, "--trained-dir", str(trained)], check=True, env=env,
                           stdout=subprocess.DEVNULL)
        server = subprocess.Popen([sys.executable, "-m", "cnnviz", "serve", name, "--port", "0",
                                   "--trained-dir", str(trained), "--outputs-dir", tmp],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                  env=env)
        try:
            port = next(int(line.split(" at ")[1].split()[0].rstrip("/").rsplit(":", 1)[1])
                        for line in server.stdout if line.startswith("serving "))
            bodies = test_digits(name, trained, max(args.clients, 8))
            library = library_latency(name, trained, bodies)
            one = load(port, bodies, 1, args.requests)
            many = load(port, bodies, args.clients, args.requests)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"POST /api/predict, article2, full answer ({many['bytes'] / 1e3:.0f} kB: prediction "
          f"and every layer's output); {os.cpu_count()} CPUs")
    print("| variant | p50 ms | p95 ms | p99 ms | requests/s | p50 × library call |")
    print("|---|---|---|---|---|---|")
    for label, r in (("library call alone (no HTTP)", library), ("1 client", one),
                     (f"{args.clients} clients at once", many)):
        print(f"| {label} | {r['p50']:.1f} | {r['p95']:.1f} | {r['p99']:.1f} | {r['rps']:.0f} | "
              f"×{r['p50'] / library['p50']:.1f} |")
    print(f"goal: p95 ≤ 100 ms with {args.clients} clients: "
          f"{'met' if many['p95'] <= 100 else 'NOT met'} ({many['p95']:.1f} ms)")


def test_digits(name: str, trained: Path, count: int) -> list[bytes]:
    import cnnviz

    x = cnnviz.load(name, trained_dir=trained).data().split("test")[0]
    return [json.dumps({"pixels": np.asarray(x[i]).tolist()}).encode() for i in range(count)]


def library_latency(name: str, trained: Path, bodies: list[bytes]) -> dict:
    import cnnviz

    m = cnnviz.load(name, trained_dir=trained)
    images = [np.asarray(json.loads(b)["pixels"], np.float32)[np.newaxis] for b in bodies]
    m.activations(images[0])
    times = []
    for i in range(200):
        start = time.perf_counter()
        m.activations(images[i % len(images)])
        times.append(time.perf_counter() - start)
    return summary(times, sum(times))


def load(port: int, bodies: list[bytes], clients: int, requests: int) -> dict:
    """`clients` threads, each `requests` POSTs on its own connection (after one warm-up)."""
    times: list[float] = []
    sizes: list[int] = []
    errors: list[str] = []
    barrier = threading.Barrier(clients + 1)

    def client(k: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        post(connection, bodies[k])
        barrier.wait()
        for i in range(requests):
            start = time.perf_counter()
            status, size = post(connection, bodies[(k + i) % len(bodies)])
            times.append(time.perf_counter() - start)
            sizes.append(size)
            if status != 200:
                errors.append(str(status))
        connection.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise SystemExit(f"{len(errors)} requests failed: {errors[:5]}")
    return {**summary(times, wall), "bytes": float(np.mean(sizes))}


def post(connection: http.client.HTTPConnection, body: bytes) -> tuple[int, int]:
    connection.request("POST", "/api/predict", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, len(response.read())


def summary(times: list[float], wall: float) -> dict:
    ms = np.asarray(times) * 1e3
    return {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
            "p99": float(np.percentile(ms, 99)), "rps": len(times) / wall}


if __name__ == "__main__":
    main()
