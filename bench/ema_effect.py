"""Does the weight average (`training.ema`) help? Validation accuracy with and without it.

    python bench/ema_effect.py                          # 256-256, 8 epochs, seeds 0 1, constant and cosine
    python bench/ema_effect.py --hidden 512 512 --epochs 8 --seeds 0 1 2 --decay 0.999

Trains an MLP (Adam 1e-3, batch 128) on MNIST's training images less a stratified 10 %
validation split, with a constant and with a cosine learning rate, each without and with the
average, and prints the validation accuracy of the last epoch and of the best one (the test set
is not read). Prints the CPU and the load average with the figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import cpu_info, loadavg  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--decay", type=float, default=0.999)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from mlplab.config import config_from_dict
    from mlplab.data import load_dataset
    from mlplab.model import build_model
    from mlplab.runs.lifecycle import prepare_data
    from mlplab.training import fit
    from mlplab.training.device import resolve_runtime

    runtime = resolve_runtime("cpu", threads=args.threads)
    data = prepare_data(load_dataset("mnist", download=False), 0.1, seed=0)
    layers = [{"type": "dense", "units": u, "activation": "relu"} for u in args.hidden]
    print(f"CPU: {cpu_info().get('model', '?')}, {args.threads} threads; load average {loadavg()}")
    print(f"{'-'.join(map(str, args.hidden))}, Adam 1e-3, batch 128, {args.epochs} epochs, "
          f"{len(data.train[1])} training / {len(data.validation[1])} validation images, seeds {args.seeds}")
    print("| schedule | ema | val acc, last epoch | val acc, best epoch |\n|---|---|---|---|")
    for schedule in ("constant", "cosine"):
        for ema in (None, args.decay):
            last, best = [], []
            for seed in args.seeds:
                config = config_from_dict({"name": "ema", "model": {"layers": layers}, "training": {
                    "batch_size": 128, "epochs": args.epochs, "seed": seed, "optimizer": {"name": "adam"},
                    "schedule": {"name": schedule}, **({"ema": ema} if ema else {})}})
                model = build_model(config.model, 784, 10, seed=seed)
                history = fit(model, config.training, data.train, data.validation, runtime=runtime)
                accuracy = history.history["val_accuracy"]
                last.append(accuracy[-1])
                best.append(max(accuracy))
            print(f"| {schedule} | {ema or 'off'} | {100 * statistics.mean(last):.2f} % "
                  f"({' '.join(f'{100 * v:.2f}' for v in last)}) | {100 * statistics.mean(best):.2f} % |")


if __name__ == "__main__":
    main()
