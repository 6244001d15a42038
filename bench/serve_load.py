"""Load benchmark of `mlplab serve` against the smallest idiomatic FastAPI + torch app (same model, same run).

    python bench/serve_load.py [--model RUN_DIR] [--clients 8] [--seconds 10] [--rounds 1]

Each contender runs as its own server process on a free loopback port. N clients (asyncio,
one keep-alive HTTP/1.1 connection each, in this process) post real 28×28 MNIST test images as
PNG files in multipart/form-data (field `image`, the same bytes to both) as fast as the answers
come, for a bounded time after a short warm-up. Reported per contender: requests/s, p50 / p99
latency, errors (anything but 200, and connection failures). Without --model a small model is
trained first (fast-256-256, 10,000 images, 3 epochs). Not a test: pytest does not collect it.
Client and server share the machine's cores, as they would on one box; the figures are for
comparing contenders in the same run, not absolute capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import cpu_info, loadavg  # noqa: E402
from bench.data import load_raw  # noqa: E402

BOUNDARY = "mlplab-bench-boundary"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def mnist_pngs(count: int) -> list[bytes]:
    images = load_raw()["test_images"][:count]
    out = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def multipart_request(path: str, png: bytes) -> bytes:
    body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"digit.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode() + png + f"\r\n--{BOUNDARY}--\r\n".encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head + body


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
    await reader.readexactly(length)
    return status


async def client(port: int, requests: list[bytes], stop_at: float, record_from: float, latencies: list[float],
                 errors: list[str], offset: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = offset
    try:
        while (now := time.perf_counter()) < stop_at:
            start = now
            try:
                writer.write(requests[i % len(requests)])
                status = await read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError, StopIteration) as exc:
                errors.append(type(exc).__name__)
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            end = time.perf_counter()
            if start >= record_from:
                latencies.append(end - start)
                if status != 200:
                    errors.append(str(status))
            i += 1
    finally:
        writer.close()


async def load(port: int, pid: int, requests: list[bytes], clients: int, seconds: float, warmup: float) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    begin = time.perf_counter()
    record_from, stop_at = begin + warmup, begin + warmup + seconds

    async def server_cpu() -> float:
        await asyncio.sleep(max(0.0, record_from - time.perf_counter()))
        before = cpu_seconds(pid)
        await asyncio.sleep(max(0.0, stop_at - time.perf_counter()))
        return cpu_seconds(pid) - before

    *_, cpu = await asyncio.gather(*(client(port, requests, stop_at, record_from, latencies, errors, k * 7)
                                     for k in range(clients)), server_cpu())
    ms = sorted(1000 * x for x in latencies)
    return {
        "requests": len(ms),
        "requests_per_s": len(ms) / seconds,
        "p50_ms": statistics.median(ms) if ms else None,
        "p99_ms": ms[min(len(ms) - 1, int(0.99 * len(ms)))] if ms else None,
        "server_cpu_ms_per_request": 1000 * cpu / len(ms) if ms else None,
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) from /proc: robust to other load on the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_ready(port: int, path: str, process: subprocess.Popen, timeout: float = 120) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
                if response.status in (200, 405):
                    return
        except OSError as exc:
            if getattr(exc, "code", None) == 405:
                return
        time.sleep(0.1)
    raise SystemExit(f"server on port {port} not ready within {timeout:.0f} s")


def contenders(model: Path) -> dict[str, dict]:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return {
        "mlplab serve": {
            "command": lambda port: [sys.executable, "-m", "mlplab.cli.main", "serve", str(model), "--port", str(port)],
            "path": "/v1/predict", "ready": "/readyz", "env": env,
        },
        "idiomatic FastAPI + torch": {
            "command": lambda port: [sys.executable, str(REPO / "bench" / "peers" / "fastapi_peer.py"), str(model), "--port", str(port)],
            "path": "/predict", "ready": "/predict", "env": env,
        },
    }


def train_small_model(out: Path) -> Path:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    subprocess.run([sys.executable, "-m", "mlplab.cli.main", "train", "fast-256-256", "--limit", "10000",
                    "--set", "training.epochs=3", "--out", str(out), "--verbose", "0"], check=True, env=env)
    return out


def run(args: argparse.Namespace) -> dict:
    pngs = mnist_pngs(256)
    results: dict[str, list[dict]] = {}
    log_dir = Path(tempfile.mkdtemp(prefix="serve-load-"))
    for round_ in range(args.rounds):
        for name, spec in contenders(args.model).items():
            port = free_port()
            log = open(log_dir / f"{name.split()[0]}-{round_}.log", "w")
            process = subprocess.Popen(spec["command"](port), stdout=log, stderr=subprocess.STDOUT, env=spec["env"])
            try:
                wait_ready(port, spec["ready"], process)
                requests = [multipart_request(spec["path"], png) for png in pngs]
                outcome = asyncio.run(load(port, process.pid, requests, args.clients, args.seconds, args.warmup))
            finally:
                process.terminate()
                process.wait(timeout=30)
                log.close()
            outcome["round"] = round_
            results.setdefault(name, []).append(outcome)
            print(f"{name:28s} {outcome['requests_per_s']:8.1f} req/s  p50 {outcome['p50_ms']:6.2f} ms  "
                  f"p99 {outcome['p99_ms']:6.2f} ms  server CPU {outcome['server_cpu_ms_per_request']:.2f} ms/request  "
                  f"errors {outcome['errors']}", file=sys.stderr)
    return {
        "benchmark": "serve_load",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/serve_load.py", *sys.argv[1:]]),
        "cpu": cpu_info(),
        "loadavg_before": args.loadavg_before,
        "loadavg_after": loadavg(),
        "clients": args.clients, "seconds": args.seconds, "warmup_s": args.warmup, "rounds": args.rounds,
        "request": "multipart/form-data, one real 28×28 MNIST test image as PNG",
        "results": results,
    }


def table(report: dict) -> str:
    lines = ["| contender | requests/s | p50 ms | p99 ms | server CPU ms/request | errors |", "|---|---:|---:|---:|---:|---:|"]
    for name, rounds in report["results"].items():
        rps = statistics.median(r["requests_per_s"] for r in rounds)
        p50 = statistics.median(r["p50_ms"] for r in rounds)
        p99 = statistics.median(r["p99_ms"] for r in rounds)
        cpu = statistics.median(r["server_cpu_ms_per_request"] for r in rounds)
        lines.append(f"| {name} | {rps:.0f} | {p50:.1f} | {p99:.1f} | {cpu:.2f} | {sum(r['errors'] for r in rounds)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="run directory to serve (default: train a small one first)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per contender and round")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before measuring")
    parser.add_argument("--rounds", type=int, default=1, help="contenders alternate; medians over rounds")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="folder for the JSON record")
    args = parser.parse_args()
    args.loadavg_before = loadavg()
    if args.model is None:
        args.model = train_small_model(Path(tempfile.mkdtemp(prefix="serve-load-model-")) / "digits")
    report = run(args)
    print(table(report))
    print(f"\nCPU: {report['cpu'].get('model')} ({report['cpu'].get('logical_cpus')} logical CPUs); "
          f"load average before {report['loadavg_before']}, after {report['loadavg_after']}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"serve-{report['date'][:19].replace(':', '-')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"record: {path}")


if __name__ == "__main__":
    main()
