"""Load test of ``segflow serve`` on loopback: 500 requests from 8 concurrent clients, ~10 % malformed.

The model is a packaged fold ensemble (``--model``: a model folder or ``models:/...`` URI; default:
two untrained tiny U-Nets, gray, ``dtype`` intensities, flip TTA, built in a temporary folder, so
no data, training or weights are needed). ``segflow serve`` runs it with one worker on
127.0.0.1 (torch on ``--threads`` threads there and in-process, default 1: on a small shared
machine more threads make timings erratic); 8 client threads send ``--requests`` requests, each
a batch of one uint8 image (``--size``, default 96 x 96) drawn from 16 distinct images whose
expected masks come from the same model's in-process ``predict``. Every 10th request is
malformed, cycling through: invalid JSON, no ``inputs`` key, a ragged array, a 2-channel image,
an unknown ``output`` param, values outside uint8.

Measured: per-request latency (p50/p90/p99/max, ms, perf_counter around the HTTP call) of valid
and malformed requests, throughput (requests per second over the whole run), how many valid
answers equal the in-process masks and how many malformed ones got a 4xx, and the resident memory
of the server's process tree (segflow + mlflow + uvicorn worker; MiB, psutil) before the load
(after 16 warm-up requests), during it (peak of a 0.1 s sampler) and after. ``ratio`` = served
valid throughput / in-process ``predict`` throughput of the same model on the same images, called
by as many threads at once (the price of HTTP + JSON + the scoring server); the sequential
in-process throughput and the one-client latency (the 16 warm-up requests) are reported too.

Writes ``--out`` (default ``bench/results/serve_load-<hostname>-cpu.json``). Usage::

    python bench/serve_load.py [--requests 500] [--clients 8] [--out FILE]
    python bench/serve_load.py --quick        # 100 requests, 4 clients
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import cpu_model, machine_info

SEGFLOW = Path(sys.executable).parent / "segflow"
N_IMAGES = 16


def build_model(root: Path) -> Path:
    """Two untrained tiny U-Nets packaged as one ensemble folder (what the serve test builds too)."""
    import torch

    from components.ensembling.packaging import save_ensemble_model
    from components.preprocessing.pipeline import PreprocessSpec
    from components.training.checkpoint import ModelSpec, save_checkpoint

    spec = PreprocessSpec((64, 64), "letterbox", "dtype", {}, 1)
    mspec = ModelSpec("unet", 1, 3, {"base_channels": 8, "depth": 3})
    ckpts = []
    for k in range(2):
        torch.manual_seed(k)
        ckpts.append(root / f"fold_{k}.pt")
        save_checkpoint(ckpts[-1], mspec.build().eval(), mspec, spec, {"fold": k})
    save_ensemble_model(root / "model", ckpts, True, ["background", "organ", "lesion"], 1)
    return root / "model"


def malformed_bodies(size: int) -> list[bytes]:
    """Requests the server must answer with a 4xx (and keep serving)."""

    def body(x: np.ndarray, **params: str) -> bytes:
        return json.dumps({"inputs": x.tolist(), "params": params}).encode()

    return [
        b'{"inputs": [[[[1, 2',
        json.dumps({"image": [[1.0]]}).encode(),
        json.dumps({"inputs": [[[1.0, 2.0]], [[3.0]]]}).encode(),
        body(np.zeros((1, size, size, 2)), input_dtype="uint8"),
        body(np.zeros((1, size, size, 1)), input_dtype="uint8", output="mask"),
        body(np.full((1, size, size, 1), 300.0), input_dtype="uint8"),
    ]


def post(url: str, body: bytes) -> tuple[int, bytes, float]:
    """(status, body, seconds) of one POST /invocations."""
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=300) as resp:
            status, data = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, data = exc.code, exc.read()
    return status, data, time.perf_counter() - start


def tree_rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants, MiB."""
    import psutil  # type: ignore[import-untyped]  # a dependency of dvc

    total = 0
    try:
        root = psutil.Process(pid)
        for p in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += p.memory_info().rss
    except psutil.NoSuchProcess:
        return 0.0
    return total / 2**20


class Sampler(threading.Thread):
    """Samples the server tree's RSS every 0.1 s; keeps the peak and the series."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.series = pid, 0.0, []  # type: ignore[var-annotated]
        self.stop = threading.Event()

    def run(self) -> None:
        t0 = time.monotonic()
        while not self.stop.is_set():
            rss = tree_rss_mib(self.pid)
            self.peak = max(self.peak, rss)
            self.series.append((round(time.monotonic() - t0, 2), round(rss, 1)))
            self.stop.wait(0.1)


def percentiles(seconds: list[float]) -> dict[str, float | None]:
    if not seconds:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}
    ms = np.asarray(seconds) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p90_ms": round(float(np.percentile(ms, 90)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "max_ms": round(float(ms.max()), 1),
    }


def wait_ready(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"segflow serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(base + "/ping", timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("segflow serve did not answer /ping in 300 s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(args: argparse.Namespace, model: str) -> dict[str, Any]:
    import mlflow
    import mlflow.pyfunc
    import torch

    torch.set_num_threads(args.threads)
    os.environ["SEGFLOW_THREADS"] = str(args.threads)  # what the model's load applies (threads rule)
    load_before = os.getloadavg()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (N_IMAGES, 1, args.size, args.size, 1)).astype(np.float32)
    local = mlflow.pyfunc.load_model(model)
    params = {"input_dtype": "uint8"}
    local.predict(images[0], params=params)  # warm-up
    t0 = time.perf_counter()
    expected = [np.asarray(local.predict(x, params=params)) for x in images]
    for _ in range(2):
        for x in images:
            local.predict(x, params=params)
    inproc_seq_rps = 3 * N_IMAGES / (time.perf_counter() - t0)
    t0 = time.perf_counter()  # the same model called by `clients` threads at once, as the server is
    with ThreadPoolExecutor(args.clients) as pool:
        list(pool.map(lambda k: local.predict(images[k % N_IMAGES], params=params), range(3 * N_IMAGES)))
    inproc_rps = 3 * N_IMAGES / (time.perf_counter() - t0)
    valid = [json.dumps({"inputs": x.tolist(), "params": params}).encode() for x in images]
    bad = malformed_bodies(args.size)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    t_start = time.perf_counter()
    proc = subprocess.Popen(
        [str(SEGFLOW), "serve", "--model", model, "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)},
    )
    try:
        wait_ready(base, proc)
        startup_s = time.perf_counter() - t_start
        rss_start = tree_rss_mib(proc.pid)
        single = [post(base + "/invocations", x)[2] for x in valid]  # warm-up, one client
        rss_before = tree_rss_mib(proc.pid)
        plan = [
            ("bad", i // 10 % len(bad)) if i % 10 == 9 else ("ok", i % N_IMAGES) for i in range(args.requests)
        ]

        def one(item: tuple[str, int]) -> tuple[str, int, int, bool, float]:
            kind, k = item
            status, data, secs = post(base + "/invocations", valid[k] if kind == "ok" else bad[k])
            if kind == "ok":
                right = status == 200 and np.array_equal(
                    np.asarray(json.loads(data)["predictions"]), expected[k]
                )
            else:
                right = 400 <= status < 500
            return kind, k, status, right, secs

        sampler = Sampler(proc.pid)
        sampler.start()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(one, plan))
        wall = time.perf_counter() - t0
        sampler.stop.set()
        sampler.join()
        rss_after = tree_rss_mib(proc.pid)
        still = post(base + "/invocations", valid[0])
        alive_after = still[0] == 200 and proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)

    ok = [r for r in results if r[0] == "ok"]
    ko = [r for r in results if r[0] == "bad"]
    statuses: dict[str, int] = {}
    for r in ko:
        statuses[str(r[2])] = statuses.get(str(r[2]), 0) + 1
    served_rps = len(ok) / wall  # valid answers per second (the malformed share the same wall time)
    half = len(sampler.series) // 2
    return {
        "benchmark": "serve_load: segflow serve (mlflow models serve, 1 worker) on 127.0.0.1",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": {
            **machine_info(),
            "load_average_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        },
        "device": {"type": "cpu", "name": cpu_model(), "torch_threads": torch.get_num_threads()},
        "versions": {
            "mlflow": mlflow.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": sys.version.split()[0],
        },
        "settings": {
            "model": "built: 2 x untrained U-Net (base 8, depth 3), 64x64 network, flip TTA"
            if args.model is None
            else args.model,
            "requests": args.requests,
            "clients": args.clients,
            "image": [1, args.size, args.size, 1],
            "malformed_every": 10,
            "malformed_kinds": [
                "invalid JSON",
                "no inputs key",
                "ragged array",
                "2 channels",
                "unknown output param",
                "values outside uint8",
            ],
        },
        "ratio": round(served_rps / inproc_rps, 3),
        "ratio_is": "served valid requests/s / in-process predict calls/s, both with --clients callers",
        "results": {
            "valid": len(ok),
            "valid_correct": sum(r[3] for r in ok),
            "malformed": len(ko),
            "malformed_4xx": sum(r[3] for r in ko),
            "malformed_statuses": statuses,
            "still_serving_after": alive_after,
            "latency_valid": percentiles([r[4] for r in ok]),
            "latency_malformed": percentiles([r[4] for r in ko]),
            "latency_one_client_warmup": percentiles(single),
            "wall_s": round(wall, 2),
            "throughput_rps": round(len(results) / wall, 2),
            "valid_throughput_rps": round(served_rps, 2),
            "inprocess_predict_rps": round(inproc_rps, 2),
            "inprocess_predict_rps_sequential": round(inproc_seq_rps, 2),
            "server_startup_s": round(startup_s, 1),
            "server_rss_mib": {
                "at_ready": round(rss_start, 1),
                "before_load": round(rss_before, 1),
                "peak_during": round(sampler.peak, 1),
                "after_load": round(rss_after, 1),
                "growth_during_load": round(rss_after - rss_before, 1),
                "mean_first_half": round(float(np.mean([s[1] for s in sampler.series[:half]])), 1)
                if half
                else None,
                "mean_second_half": round(float(np.mean([s[1] for s in sampler.series[half:]])), 1)
                if half
                else None,
            },
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model folder or models:/ URI (default: build a tiny ensemble)")
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--size", type=int, default=96, help="image side (pixels)")
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads, in-process and in the server (default 1)"
    )
    ap.add_argument("--quick", action="store_true", help="100 requests from 4 clients")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.quick:
        args.requests, args.clients = 100, 4
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(build_model(Path(tmp)))
        result = run(args, model)
    host = re.sub(r"[^A-Za-z0-9._-]+", "_", socket.gethostname())
    stem = f"serve_load-{'quick-' if args.quick else ''}{host}-cpu.json"
    out = args.out or Path(__file__).resolve().parent / "results" / stem
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    r = result["results"]
    print(json.dumps({k: r[k] for k in r if k != "malformed_statuses"}, indent=1))
    print(f"ratio {result['ratio']}  -> {out}")


if __name__ == "__main__":
    main()
