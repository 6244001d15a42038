"""Scaling: mlplab's epoch time as an MLP gets wider and deeper, against the FLOP-bound line.

    python -m bench.scaling [--threads 2] [--budget 2.0] [--quick] [--json-only] [--png PATH]

Two sweeps, ReLU dense layers, no dropout, Adam, batch 128, fp32:
  width: one size w for 2 hidden layers, w = 64, 128, ..., 4096 (784 → w → w → 10)
  depth: 1 … 6 hidden layers of 512 units
Each point trains on a slice of the 60,000 MNIST training images sized so that an epoch takes
about --budget seconds (never fewer than 20 batches), for two epochs without validation; the
second epoch's time, scaled to 60,000 images, is the point's "epoch s". (The biggest models
would need about a minute per full epoch here; per-batch cost is the same on a slice.)
The FLOP-bound line is the training FLOPs of a full epoch (6 × Σ in·out × 60,000, minus the
first layer's input gradient, mlplab.model.training_flops_per_sample) divided by the fp32
matmul peak measured in the same process (bench.peak): no MLP step can beat it. The gap
between the two is per-step overhead (small widths) or element-wise work and memory traffic.
Prints one JSON object (with a "markdown" table) and writes a PNG (default
bench/results/scaling.png; *.png is gitignored, so the PNG is not committed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import BATCH_SIZE, DEFAULT_THREADS, REPO_ROOT, cpu_info, emit, loadavg  # noqa: E402

TRAIN_SAMPLES = 60_000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    p.add_argument("--budget", type=float, default=2.0, help="seconds per measured epoch slice")
    p.add_argument("--quick", action="store_true", help="few points, short slices (smoke test)")
    p.add_argument("--json-only", action="store_true", help="print only the JSON object")
    p.add_argument("--png", default=str(REPO_ROOT / "bench" / "results" / "scaling.png"))
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from mlplab.config import load_config
    from mlplab.model import build_model, training_flops_per_sample
    from mlplab.training import fit, resolve_runtime

    from bench.data import load_mnist
    from bench.peak import measure

    (x_train, y_train), _ = load_mnist()
    peak = measure(torch, torch.float32, 0.5 if args.quick else 2.0)["peak_gflops"] * 1e9
    base = load_config("tutorial-512-512")
    runtime = resolve_runtime("cpu", "fp32")
    budget = 0.3 if args.quick else args.budget

    widths = [64, 512, 2048] if args.quick else [64, 128, 256, 512, 1024, 2048, 4096]
    depths = [1, 3] if args.quick else [1, 2, 3, 4, 5, 6]
    points = [("width", w, [w, w]) for w in widths] + [("depth", d, [512] * d) for d in depths]

    rows = []
    for sweep, value, hidden in points:
        layers = [{"type": "dense", "units": u, "activation": "relu"} for u in hidden]
        cfg = base.with_overrides({"model.layers": layers, "training.epochs": 2, "training.early_stopping": None,
                                   "training.validation_split": 0.0})
        flops = training_flops_per_sample(cfg.model, 784, 10)
        bound_s = flops * TRAIN_SAMPLES / peak
        # Slice sized from the FLOP bound (assume ~half the peak), whole batches, 20 batches at least.
        n = int(budget / max(bound_s * 2, 1e-9) * TRAIN_SAMPLES) // BATCH_SIZE * BATCH_SIZE
        n = min(max(n, 20 * BATCH_SIZE), TRAIN_SAMPLES)
        model = build_model(cfg.model, 784, 10, seed=0)
        history = fit(model, cfg.training, (x_train[:n], y_train[:n]), None, runtime=runtime)
        seconds = history.rows[-1]["seconds"] * TRAIN_SAMPLES / n
        rows.append({
            "sweep": sweep, "value": value, "hidden": hidden, "params": sum(p.numel() for p in model.parameters()),
            "flops_per_sample": flops, "slice_samples": n, "epoch_s": seconds, "flop_bound_s": bound_s,
            "gflops": flops * TRAIN_SAMPLES / seconds / 1e9, "fraction_of_peak": bound_s / seconds,
        })
        if not args.json_only:
            print(f"{sweep}={value}: {seconds:.3f} s/epoch (bound {bound_s:.3f} s, {100 * bound_s / seconds:.0f}% of peak)",
                  file=sys.stderr)

    png = _plot(rows, Path(args.png))
    lines = [
        "### Scaling (mlplab fp32, batch 128, Adam, no dropout; epoch time from a slice, scaled to 60,000 images)",
        "",
        f"FLOP bound = training FLOPs per epoch / measured fp32 peak ({peak / 1e9:.1f} GFLOP/s, {args.threads} threads).",
        "",
        "| sweep | hidden layers | params | epoch s | FLOP-bound s | GFLOP/s | % of peak |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['sweep']} | {'-'.join(map(str, r['hidden']))} | {r['params']:,} | {r['epoch_s']:.3f} | "
                     f"{r['flop_bound_s']:.3f} | {r['gflops']:.1f} | {100 * r['fraction_of_peak']:.0f}% |")
    if png:
        shown = Path(png).resolve()
        shown = shown.relative_to(REPO_ROOT) if shown.is_relative_to(REPO_ROOT) else shown
        lines += ["", f"![Epoch time against width and depth, with the FLOP-bound line]({shown.as_posix()})"]
    emit({"status": "ok", "kind": "scaling", "threads": args.threads, "peak_fp32_gflops": peak / 1e9,
          "rows": rows, "png": png, "cpu": cpu_info(), "loadavg_end": loadavg(), "markdown": "\n".join(lines)})


def _plot(rows: list[dict], path: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, sweep, label in ((axes[0], "width", "width of 2 hidden layers"), (axes[1], "depth", "hidden layers of 512")):
        pts = [r for r in rows if r["sweep"] == sweep]
        if not pts:
            continue
        xs = [r["value"] for r in pts]
        ax.plot(xs, [r["epoch_s"] for r in pts], "o-", label="mlplab epoch (measured)")
        ax.plot(xs, [r["flop_bound_s"] for r in pts], "--", label="FLOP bound (measured peak)")
        ax.set_xlabel(label)
        ax.set_ylabel("seconds per epoch (60,000 images)")
        ax.set_yscale("log")
        if sweep == "width":
            ax.set_xscale("log", base=2)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle("MLP training cost on MNIST, batch 128, fp32")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


if __name__ == "__main__":
    main()
