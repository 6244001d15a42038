"""Shared by every benchmark process: the models, thread pinning, FLOP counts, timing summaries.

Imports neither torch nor tensorflow, so that a peer process loads only its own framework.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]

NUM_FEATURES = 784
NUM_CLASSES = 10
BATCH_SIZE = 128
DEFAULT_THREADS = 2
TARGET_ACCURACY = 0.98

# The tutorial's three models, exactly as its Keras code declares them.
MODELS: dict[str, dict[str, Any]] = {
    "tutorial-50-25": {"hidden": [50, 25], "dropout": 0.0, "optimizer": "rmsprop"},
    "tutorial-512-512": {"hidden": [512, 512], "dropout": 0.2, "optimizer": "adam"},
    "tutorial-128-64": {"hidden": [128, 64], "dropout": 0.15, "optimizer": "adam"},
}
ALIASES = {
    "a": "tutorial-50-25", "50-25": "tutorial-50-25",
    "b": "tutorial-512-512", "512-512": "tutorial-512-512",
    "c": "tutorial-128-64", "128-64": "tutorial-128-64",
}


def resolve_model(name: str) -> str:
    key = ALIASES.get(name.lower(), name)
    if key not in MODELS:
        raise SystemExit(f"unknown model {name!r}; choose from {', '.join(MODELS)} (or A, B, C)")
    return key


def dense_shapes(hidden: list[int], num_features: int = NUM_FEATURES, num_classes: int = NUM_CLASSES) -> list[tuple[int, int]]:
    widths = [num_features, *hidden, num_classes]
    return list(zip(widths[:-1], widths[1:]))


def training_flops(hidden: list[int], samples: int) -> int:
    """The benchmark's FLOP convention: 6 × Σ(in×out) × samples.

    2·in·out each for forward, weight gradient and input gradient. Frameworks skip the first
    layer's input gradient (the input needs none), so the work actually done is lower; see
    `training_flops_exact` (recorded in the JSON too).
    """
    return 6 * sum(i * o for i, o in dense_shapes(hidden)) * samples


def training_flops_exact(hidden: list[int], samples: int) -> int:
    shapes = dense_shapes(hidden)
    return (6 * sum(i * o for i, o in shapes) - 2 * shapes[0][0] * shapes[0][1]) * samples


def pin_threads_env(threads: int) -> dict[str, str]:
    """Environment for a child process: every thread pool of every framework gets `threads`."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        env[var] = str(threads)
    # TensorFlow's inter-op pool runs independent ops concurrently; a Sequential MLP step is a
    # chain, and on 2 cores more pools than cores only add contention. Same count as intra-op.
    env["TF_NUM_INTEROP_THREADS"] = str(threads)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["KERAS_BACKEND"] = "tensorflow"
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def cpu_info() -> dict[str, Any]:
    info: dict[str, Any] = {"logical_cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0]}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        if line.startswith("model name") and "model" not in info:
            info["model"] = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            info["avx2"] = "avx2" in flags
            info["avx512f"] = "avx512f" in flags
            info["avx512_bf16"] = "avx512_bf16" in flags
            info["amx_bf16"] = "amx_bf16" in flags
            info["bf16_matrix_units"] = info["avx512_bf16"] or info["amx_bf16"]
            break
    return info


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(epochs: list[dict[str, Any]], warmup: int, train_samples: int, hidden: list[int]) -> dict[str, Any]:
    """Medians over the epochs after the warm-up ones; throughput and GFLOP/s from the train phase."""
    timed = epochs[warmup:]
    train_s = median([e["train_s"] for e in timed if e.get("train_s") is not None])
    epoch_s = median([e["epoch_s"] for e in timed if e.get("epoch_s") is not None])
    val_s = median([e["val_s"] for e in timed if e.get("val_s") is not None])
    out: dict[str, Any] = {
        "timed_epochs": len(timed),
        "train_s_median": train_s,
        "val_s_median": val_s,
        "epoch_s_median": epoch_s,
        "train_s_min": min((e["train_s"] for e in timed if e.get("train_s") is not None), default=None),
        "train_s_max": max((e["train_s"] for e in timed if e.get("train_s") is not None), default=None),
        "final_val_accuracy": epochs[-1].get("val_accuracy") if epochs else None,
        "flops_per_epoch": training_flops(hidden, train_samples),
        "flops_per_epoch_exact": training_flops_exact(hidden, train_samples),
    }
    basis = train_s if train_s is not None else epoch_s
    if basis:
        out["samples_per_s"] = train_samples / basis
        out["gflops"] = out["flops_per_epoch"] / basis / 1e9
        out["gflops_exact"] = out["flops_per_epoch_exact"] / basis / 1e9
        out["timing_basis"] = "train_s" if train_s is not None else "epoch_s (includes validation)"
    return out


def time_to_accuracy(epochs: list[dict[str, Any]], setup_s: float, target: float) -> dict[str, Any]:
    """Seconds until the test accuracy first reached `target`, counted from just before the model is built.

    wall_s: from before building the model (data already in memory) to the end of the evaluation
    that first shows the target: build, compile, tracing, every training pass and every
    evaluation pass up to then — what a user waits. Rows carry `elapsed_s` (measured from that
    start) where the peer can observe it; otherwise setup_s + Σ epoch_s.
    train_s: wall_s minus the evaluation passes (the cost of checking, not of learning).
    """
    wall = setup_s
    evals = 0.0
    have_val = all(e.get("val_s") is not None for e in epochs)
    for e in epochs:
        wall += e["epoch_s"]
        evals += e.get("val_s") or 0.0
        acc = e.get("val_accuracy")
        if acc is not None and acc >= target:
            wall = e.get("elapsed_s", wall)
            return {"target": target, "reached": True, "epoch": e["epoch"], "val_accuracy": acc,
                    "wall_s": wall, "train_s": wall - evals if have_val else None}
    return {"target": target, "reached": False, "epoch": None, "wall_s": None, "train_s": None,
            "epochs_run": len(epochs),
            "best_val_accuracy": max((e.get("val_accuracy") or 0.0 for e in epochs), default=None)}


def peer_arguments(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--model", required=True, help="tutorial-50-25 | tutorial-512-512 | tutorial-128-64 (or A, B, C)")
    p.add_argument("--epochs", type=int, default=5, help="timed epochs after the warm-up (at least)")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up epochs (tracing, allocator, caches)")
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="intra-op threads")
    p.add_argument("--target-accuracy", type=float, default=None,
                   help="keep training (up to --max-epochs) until the test accuracy reaches this, and time it")
    p.add_argument("--max-epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    return p


def emit(result: dict[str, Any]) -> None:
    """The one JSON object on stdout (last line), which bench/run.py parses."""
    sys.stdout.write(json.dumps(result, default=_jsonable) + "\n")
    sys.stdout.flush()


def _jsonable(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


class Clock:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def since(self) -> float:
        return time.perf_counter() - self.t0
