"""bf16 against fp32 on this CPU: its bf16 units, matmul rates, and the 512-512 model's epoch.

    python bench/bf16.py                       # 10,000 MNIST images (1,500 where bf16 is emulated), 3 rounds
    python bench/bf16.py --images 10000 --epochs 3 --rounds 3 --threads 2 --update   # and rewrite bench/README.md's table

Names the CPU and the bf16 units it reports (/proc/cpuinfo: avx512_bf16, amx_bf16, amx_tile;
torch's own check `torch.ops.mkldnn._is_mkldnn_bf16_supported()` and CPU capability), then:

- the fp32 and bf16 matmul rates at the 512-512 model's first-layer shape (128×784 @ 784×512)
  and for a square product, best and median of repetitions on the pinned threads;
- what `--precision auto` chooses here for the 512-512 model, with its probe's figures;
- the tutorial's 512-512 model (Adam, dropout 0.2, batch 128) trained three ways, interleaved
  round by round: fp32 (hand-written step), bf16 hand-written step (bf16 products, fp32 master
  weights), bf16 the old way (autograd under autocast, `training.gradients = "autograd"`). Each
  case's figure is the median over rounds of its epochs after the first, scaled to 60,000 images.

Where the CPU has no bf16 units, torch emulates bf16 and the model trains tens of times slower:
the slice then shrinks to 1,500 images (said in the output) so the run ends in minutes. The
issue's goal (bf16 epoch ≤ 0.6× fp32's on a CPU with AMX) can only be checked on such a CPU.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import cpu_info, loadavg  # noqa: E402

README = Path(__file__).resolve().parent / "README.md"
MARKERS = ("<!-- bf16:start -->", "<!-- bf16:end -->")
EMULATED_IMAGES = 1_500
CASES = {  # name: (precision, training.gradients)
    "fp32, hand-written step": ("fp32", "auto"),
    "bf16, hand-written step": ("bf16", "auto"),
    "bf16, autograd + autocast (before)": ("bf16", "autograd"),
}


def bf16_flags() -> list[str]:
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return []
    return [flag for flag in ("avx512_bf16", "amx_bf16", "amx_tile") if flag in flags]


def matmul_rate(torch, dtype, m: int, k: int, n: int, seconds: float = 0.5) -> dict:
    a, b = torch.rand(m, k).to(dtype), torch.rand(k, n).to(dtype)
    out = torch.empty(m, n, dtype=dtype)
    torch.mm(a, b, out=out)
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < 2 or (time.perf_counter() < deadline and len(times) < 200):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        times.append(time.perf_counter() - start)
    flops = 2.0 * m * k * n
    return {"shape": f"{m}x{k} @ {k}x{n}", "best_gflops": flops / min(times) / 1e9,
            "median_gflops": flops / statistics.median(times) / 1e9, "repetitions": len(times)}


def epoch_seconds(x, y, precision: str, gradients: str, epochs: int, threads: int) -> tuple[list[float], str]:
    from mlplab.config import load_config
    from mlplab.model import build_model
    from mlplab.training import fit
    from mlplab.training.device import resolve_runtime
    from mlplab.training.gradients import describe

    config = load_config("tutorial-512-512")
    training = config.training.model_copy(update={"epochs": epochs, "early_stopping": None, "validation_split": 0.0,
                                                   "gradients": gradients})
    model = build_model(config.model, x.shape[1], 10, seed=0)
    history = fit(model, training, (x, y), None, runtime=resolve_runtime("cpu", precision, threads))
    return [row["seconds"] for row in history][1:], describe(model, training.loss, precision, mode=gradients)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=None, help="default 10,000; 1,500 where bf16 is emulated")
    parser.add_argument("--epochs", type=int, default=3, help="per case and round; the first is a warm-up")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--update", action="store_true", help=f"rewrite the table between {MARKERS[0]} in bench/README.md")
    args = parser.parse_args()

    import torch

    from mlplab.data import load_dataset
    from mlplab.data.preprocess import flatten_scale
    from mlplab.model import build_model
    from mlplab.config import load_config
    from mlplab.training.device import cpu_has_bf16_units, resolve_runtime

    torch.set_num_threads(args.threads)
    load_before = loadavg()
    cpu = cpu_info()
    flags = bf16_flags()
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except Exception:  # noqa: BLE001
        capability = "?"
    rates = {name: {"fp32": matmul_rate(torch, torch.float32, *shape), "bf16": matmul_rate(torch, torch.bfloat16, *shape)}
             for name, shape in (("512-512 first layer", (128, 784, 512)), ("square 512", (512, 512, 512)))}
    shape_ratio = rates["512-512 first layer"]["bf16"]["best_gflops"] / rates["512-512 first layer"]["fp32"]["best_gflops"]
    emulated = shape_ratio < 0.1
    images = args.images or (EMULATED_IMAGES if emulated else 10_000)

    config = load_config("tutorial-512-512")
    auto = resolve_runtime("cpu", "auto", args.threads).for_model(build_model(config.model, 784, 10), 128)
    choice = auto.choice.to_dict() if auto.choice is not None else {}

    dataset = load_dataset("mnist", download=False)
    x = torch.from_numpy(flatten_scale(dataset.x_train[:images]))
    y = torch.from_numpy(dataset.y_train[:images].astype("int64"))
    seconds: dict[str, list[float]] = {name: [] for name in CASES}
    steps: dict[str, str] = {}
    for _ in range(args.rounds):
        for name, (precision, gradients) in CASES.items():
            per_epoch, steps[name] = epoch_seconds(x, y, precision, gradients, args.epochs, args.threads)
            seconds[name].append(statistics.median(per_epoch) * 60_000 / images)

    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"bf16, {when}: {cpu.get('model', '?')}, {cpu.get('logical_cpus')} logical CPUs, {args.threads} threads, "
        f"torch {torch.__version__} (CPU capability {capability}). bf16 flags in /proc/cpuinfo: "
        f"{', '.join(flags) if flags else 'none (no avx512_bf16, amx_bf16, amx_tile)'}; torch's check "
        f"(`mkldnn._is_mkldnn_bf16_supported`): {cpu_has_bf16_units()}. Load average before {load_before}, "
        f"after {loadavg()}. Command: `python {' '.join(['bench/bf16.py', *sys.argv[1:]])}`.",
        "",
        "| matmul | fp32 GFLOP/s best (median) | bf16 GFLOP/s best (median) | bf16 / fp32 |",
        "|---|---:|---:|---:|",
    ]
    for name, pair in rates.items():
        f32, b16 = pair["fp32"], pair["bf16"]
        lines.append(f"| {name} ({f32['shape']}) | {f32['best_gflops']:.1f} ({f32['median_gflops']:.1f}) | "
                     f"{b16['best_gflops']:.2f} ({b16['median_gflops']:.2f}) | {b16['best_gflops'] / f32['best_gflops']:.3f}× |")
    probe = choice.get("probe")
    probe_text = (f", probe at {probe['shape']}: fp32 {probe['fp32_gflops']} vs bf16 {probe['bf16_gflops']} GFLOP/s"
                  if probe else "")
    lines += [
        "",
        f"`--precision auto` chooses **{auto.precision}** for 512-512 here ({choice.get('how')}: {choice.get('why')}{probe_text}).",
        "",
        f"tutorial-512-512 (Adam, dropout 0.2, batch 128) on the first {images:,} MNIST training images"
        f"{' (a small slice: bf16 is emulated here)' if emulated else ''}, {args.epochs} epochs per case and round "
        f"(the first a warm-up), {args.rounds} interleaved rounds; seconds per epoch scaled to 60,000 images, median "
        "over rounds (min–max of the rounds).",
        "",
        "| case | step | s / 60,000-image epoch | vs fp32 |",
        "|---|---|---:|---:|",
    ]
    base = statistics.median(seconds["fp32, hand-written step"])
    for name, values in seconds.items():
        s = statistics.median(values)
        lines.append(f"| {name} | {steps[name]} | {s:.2f} ({min(values):.2f}–{max(values):.2f}) | {s / base:.2f}× |")
    goal = statistics.median(seconds["bf16, hand-written step"]) / base
    lines += ["", (f"Issue 14's goal, bf16 epoch ≤ 0.6× fp32 on a CPU with AMX: {goal:.2f}× here, "
                   + ("measured on a CPU with AMX." if "amx_bf16" in flags else
                      "**not checkable on this CPU** (no AMX: the figure says what bf16 costs here, not what it "
                      "gains where the units exist)."))]
    table = "\n".join(lines)
    print(table)
    if args.update:
        text = README.read_text()
        pattern = re.compile(re.escape(MARKERS[0]) + ".*?" + re.escape(MARKERS[1]), re.S)
        if not pattern.search(text):
            sys.exit(f"error: {README} has no {MARKERS[0]} … {MARKERS[1]} section")
        README.write_text(pattern.sub(lambda _: f"{MARKERS[0]}\n{table}\n{MARKERS[1]}", text))
        print(f"updated {README}")


if __name__ == "__main__":
    main()
