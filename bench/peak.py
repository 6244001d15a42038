"""The machine's measured matrix-multiply peak, fp32 and bf16, with torch on the pinned threads.

    python -m bench.peak [--threads 2] [--seconds 2]

Prints one JSON object. For each dtype the size of a square matmul C = A·B (n×n, 2n³ FLOPs)
grows from 256 until one product takes ≥ 0.1 s or n reaches 4096, so a dtype the CPU only
emulates (bf16 without AVX512-BF16/AMX can be hundreds of times slower) is measured at a size
that finishes; then products of that size are repeated for about --seconds (2 by default). "peak" is the best
repetition, "median" the typical one. Also the rate at the tutorial's own shapes (batch 128 ×
784 → 512, forward), which is what an MLP step can hope for.

bf16 matrix units are read from /proc/cpuinfo (avx512_bf16, amx_bf16); the measured rates say
whether torch's bf16 path is actually faster here — the benchmark never assumes it.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DEFAULT_THREADS, cpu_info, emit, loadavg  # noqa: E402


def _time_matmul(torch, a, b, out) -> float:
    start = time.perf_counter()
    torch.matmul(a, b, out=out)
    return time.perf_counter() - start


def measure(torch, dtype, seconds: float, max_n: int = 4096, min_time: float = 0.1) -> dict:
    n = 256
    while True:
        a = torch.randn(n, n).to(dtype)
        b = torch.randn(n, n).to(dtype)
        out = torch.empty(n, n, dtype=dtype)
        _time_matmul(torch, a, b, out)  # first call: allocation, kernel selection
        t = _time_matmul(torch, a, b, out)
        if t >= min_time or n >= max_n:
            break
        n *= 2
    times = [t]
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 3:
        times.append(_time_matmul(torch, a, b, out))
        if len(times) >= 200:
            break
    flops = 2.0 * n**3
    return {
        "n": n, "repetitions": len(times),
        "peak_gflops": flops / min(times) / 1e9,
        "median_gflops": flops / statistics.median(times) / 1e9,
    }


def mlp_shape(torch, dtype, seconds: float = 1.0, m: int = 128, k: int = 784, n: int = 512) -> dict:
    a = torch.randn(m, k).to(dtype)
    b = torch.randn(k, n).to(dtype)
    out = torch.empty(m, n, dtype=dtype)
    _time_matmul(torch, a, b, out)
    t1 = _time_matmul(torch, a, b, out)
    times = [t1]
    deadline = time.perf_counter() + (seconds if t1 < 0.05 else 0.0)
    while time.perf_counter() < deadline or len(times) < 3:
        times.append(_time_matmul(torch, a, b, out))
    flops = 2.0 * m * k * n
    return {"shape": f"{m}x{k} @ {k}x{n}", "peak_gflops": flops / min(times) / 1e9,
            "median_gflops": flops / statistics.median(times) / 1e9}


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    p.add_argument("--seconds", type=float, default=2.0, help="repetition time per dtype")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    cpu = cpu_info()
    start_load = loadavg()
    fp32 = measure(torch, torch.float32, args.seconds)
    bf16 = measure(torch, torch.bfloat16, args.seconds)
    shapes = {"fp32": mlp_shape(torch, torch.float32), "bf16": mlp_shape(torch, torch.bfloat16)}
    capability = None
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except Exception:  # noqa: BLE001
        pass
    speedup = bf16["peak_gflops"] / fp32["peak_gflops"]
    emit({
        "status": "ok",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "torch_cpu_capability": capability,
        "mkldnn": torch.backends.mkldnn.is_available(),
        "bf16_matrix_units": bool(cpu.get("bf16_matrix_units")),
        "fp32": fp32, "bf16": bf16, "mlp_shape": shapes,
        "bf16_over_fp32": speedup,
        "bf16_verdict": (
            f"bf16 matmul is {speedup:.1f}x fp32 here: worth using" if speedup > 1.2 else
            f"bf16 matmul is {speedup:.3g}x fp32 here (no {'AVX512-BF16/AMX' if not cpu.get('bf16_matrix_units') else 'fast bf16 path in torch'}): "
            "bf16 training would be slower, not faster"
        ),
        "cpu": cpu, "loadavg_start": start_load, "loadavg_end": loadavg(),
    })


if __name__ == "__main__":
    main()
