"""Inference throughput: predictions per second at batch 1 and batch 1,000, mlplab vs plain PyTorch.

    python -m bench.inference [--threads 2] [--seconds 1.0] [--quick] [--json-only]

For each tutorial model (weights as initialised: speed does not depend on their values):
  mlplab        model.predict_proba(x) of mlplab's MLP (eval mode, inference_mode, softmax),
                the call a user makes on a trained model
  plain torch   the same nn.Sequential + softmax under torch.inference_mode() in eval mode
Batch 1: one image per call, over different test images; batch 1,000: 1,000 images per call.
Each is repeated for about --seconds after 3 warm-up calls; the median call time gives
predictions/s = batch / median seconds. fp32, threads pinned like the training benchmark.
Prints one JSON object with a "markdown" table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DEFAULT_THREADS, MODELS, cpu_info, emit, loadavg  # noqa: E402

BATCHES = (1, 1000)


def _rate(fn, x, batch: int, seconds: float) -> dict:
    n = len(x)
    for i in range(3):
        fn(x[i * batch % n : i * batch % n + batch])
    times, i = [], 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 5:
        start = (i * batch) % (n - batch + 1)
        t = time.perf_counter()
        fn(x[start : start + batch])
        times.append(time.perf_counter() - t)
        i += 1
    med = statistics.median(times)
    return {"calls": len(times), "median_call_s": med, "predictions_per_s": batch / med}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json-only", action="store_true")
    args = p.parse_args()

    import torch
    from torch import nn

    torch.set_num_threads(args.threads)
    from mlplab.config import load_config
    from mlplab.model import build_model

    from bench.data import load_mnist

    _, (x_test, _) = load_mnist()
    x = torch.from_numpy(x_test)
    seconds = 0.2 if args.quick else args.seconds

    rows = []
    for name in MODELS:
        cfg = load_config(name)
        model = build_model(cfg.model, 784, 10, seed=0)
        model.eval()
        plain = nn.Sequential(*[m for m in model.layers], nn.Softmax(dim=1)).eval()  # same modules, same weights

        def plain_predict(xb, plain=plain):
            with torch.inference_mode():
                return plain(xb)

        for batch in BATCHES:
            for who, fn in (("mlplab", model.predict_proba), ("plain torch", plain_predict)):
                r = _rate(fn, x, batch, seconds)
                rows.append({"model": name, "batch": batch, "contender": who, **r})
                if not args.json_only:
                    print(f"{name} batch {batch} {who}: {r['predictions_per_s']:,.0f}/s", file=sys.stderr)

    lines = [
        "### Inference (fp32, predictions per second, median call)",
        "",
        "| model | batch | mlplab predict_proba | plain torch | mlplab / torch |",
        "|---|---|---|---|---|",
    ]
    for name in MODELS:
        for batch in BATCHES:
            got = {r["contender"]: r["predictions_per_s"] for r in rows if r["model"] == name and r["batch"] == batch}
            lines.append(f"| {name} | {batch} | {got['mlplab']:,.0f} | {got['plain torch']:,.0f} | "
                         f"{got['mlplab'] / got['plain torch']:.2f}× |")
    emit({"status": "ok", "kind": "inference", "threads": args.threads, "rows": rows, "cpu": cpu_info(),
          "loadavg_end": loadavg(), "markdown": "\n".join(lines)})


if __name__ == "__main__":
    main()
