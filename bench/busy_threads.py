"""Training on a busy CPU: torch's default thread count against the one `--threads auto` chooses.

    python bench/busy_threads.py                 # 512-512 on 6,000 MNIST images, 3 epochs per case
    python bench/busy_threads.py --busy 1 --images 6000 --epochs 3 --update   # and write the tables

OpenMP's threads wait for one another at the end of every parallel region, so a thread that
shares its core with another program holds all of them up. This starts `--busy` processes that
spin on a core each (as another user's job would), then trains the same model with
(a) torch's default thread count and (b) the count `resolve_runtime(threads="auto")` chooses
after measuring the load; and the same two without the spinning processes. Seconds per epoch
are the median of the epochs after the first, scaled to 60,000 images.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO_ROOT, cpu_info, loadavg  # noqa: E402
from bench.run import background_cores, replace_block  # noqa: E402

MARK = "busy-threads"
SPIN = "while True: pass"


def epoch_seconds(config, x, y, runtime) -> list[float]:
    from mlplab.model import build_model
    from mlplab.training import fit

    model = build_model(config.model, x.shape[1], 10, seed=0)
    history = fit(model, config.training, (x, y), None, runtime=runtime)
    return [row["seconds"] for row in history.rows]


def run_case(label: str, threads, config, x, y) -> dict:
    import torch

    from mlplab.training.device import TORCH_DEFAULT_THREADS, resolve_runtime

    torch.set_num_threads(TORCH_DEFAULT_THREADS)
    runtime = resolve_runtime("cpu", "fp32", threads)
    seconds = epoch_seconds(config, x, y, runtime)
    timed = seconds[1:] or seconds
    choice = runtime.threads
    return {"case": label, "threads": torch.get_num_threads(), "how": choice.how if choice else "?",
            "busy_cores": choice.busy_cores if choice else None, "epoch_s": statistics.median(timed),
            "min_s": min(timed), "max_s": max(timed), "scale": 60_000 / len(y)}


def measure(args) -> tuple[list[dict], dict]:
    import numpy as np

    import mlplab

    (x_train, y_train), _ = mlplab.load_data("mnist")
    x = mlplab.flatten_scale(x_train[: args.images])
    y = y_train[: args.images].astype(np.int64)
    config = mlplab.load_config(args.config).with_overrides(
        {"training.epochs": args.epochs, "training.early_stopping": None, "training.validation_split": 0})
    background = background_cores(1.0)
    rows = []
    for busy in (0, args.busy):
        spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(busy)]
        try:
            time.sleep(0.5 if busy else 0)  # let them start
            for label, threads in (("torch's default", None), ("--threads auto", "auto")):
                row = run_case(label, threads, config, x, y)
                row["spinning"] = busy
                rows.append(row)
        finally:
            for proc in spinners:
                proc.kill()
                proc.wait()
    meta = {"cpu": cpu_info(), "background_cores": background, "loadavg_after": loadavg(), "config": args.config,
            "images": args.images, "epochs": args.epochs,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": "python bench/busy_threads.py " + " ".join(sys.argv[1:])}
    return rows, meta


def render(rows: list[dict], meta: dict) -> str:
    cpu = meta["cpu"]
    lines = [
        f"Busy CPU, {meta['date']}: {cpu.get('model', 'unknown CPU')}, {cpu.get('logical_cpus')} logical CPUs; "
        f"{meta['config']}, {meta['images']:,} MNIST images, {meta['epochs']} epochs per case (median of the epochs "
        f"after the first, scaled to 60,000 images). Other programs already kept {meta['background_cores']:.1f} "
        f"cores busy before the run (load average after: {meta['loadavg_after']}). "
        f"Command: `{meta['command'].strip()}`.",
        "",
        "| spinning processes | threads | chosen by | busy cores measured | s per 60,000-image epoch (min–max) |",
        "|---:|---:|---|---:|---|",
    ]
    for r in rows:
        busy = "—" if r["busy_cores"] is None else f"{r['busy_cores']:.2f}"
        lines.append(f"| {r['spinning']} | {r['threads']} | {r['case']} | {busy} | {r['epoch_s'] * r['scale']:.2f} "
                     f"({r['min_s'] * r['scale']:.2f}–{r['max_s'] * r['scale']:.2f}) |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="tutorial-512-512")
    parser.add_argument("--images", type=int, default=6000, help="training images per epoch (default 6000)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per case; the first is not timed (default 3)")
    parser.add_argument("--busy", type=int, default=1, help="spinning processes in the busy cases (default 1)")
    parser.add_argument("--update", action="store_true",
                        help="write the table into bench/README.md and docs/speed.md (between busy-threads markers)")
    args = parser.parse_args(argv)
    rows, meta = measure(args)
    markdown = render(rows, meta)
    print(markdown)
    if args.update:
        for path in (REPO_ROOT / "bench" / "README.md", REPO_ROOT / "docs" / "speed.md"):
            print(replace_block(path, MARK, markdown), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
