"""What augmentation costs per epoch: the 512-512 model with and without `training.augment`.

    python bench/augment_cost.py                       # 10,000 MNIST images, 3 epochs per case, 3 rounds
    python bench/augment_cost.py --images 10000 --epochs 3 --rounds 3 --threads 2

Trains the tutorial's 512-512 model (Adam, batch 128, the hand-written step) on the first
`--images` MNIST training images, with augmentation off, affine only (shift 2 px, rotate 10°,
scale 0.1, shear 5°), elastic only (α 34, σ 4) and both. The cases are interleaved round by
round; each case's figure is the median over rounds of its epochs after the first (warm-up),
and the ratio is against augmentation off. Two figures per case: wall-clock seconds per epoch,
and the process's CPU seconds per epoch (all its threads), which other programs on a busy machine
disturb far less. Prints the CPU and the load average with the figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import cpu_info, loadavg  # noqa: E402

AFFINE = {"shift": 2.0, "rotate": 10.0, "scale": 0.1, "shear": 5.0}
ELASTIC = {"elastic_alpha": 34.0, "elastic_sigma": 4.0}
CASES = {"off": None, "affine": AFFINE, "elastic": ELASTIC, "affine + elastic": {**AFFINE, **ELASTIC}}


def epoch_seconds(x, y, augment, epochs: int, runtime) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds of each epoch after the first."""
    import time

    from mlplab.config import load_config
    from mlplab.model import build_model
    from mlplab.training import fit
    from mlplab.training.callbacks import Callback

    class CpuTime(Callback):
        def __init__(self):
            self.seconds: list[float] = []

        def on_epoch_begin(self, state):
            self.start = time.process_time()

        def on_epoch_end(self, state, row):
            self.seconds.append(time.process_time() - self.start)

    config = load_config("tutorial-512-512")
    update = {"epochs": epochs, "early_stopping": None, "validation_split": 0.0}
    training = config.training.model_copy(update=update)
    if augment is not None:
        training = type(training).model_validate({**training.model_dump(), "augment": augment})
    model = build_model(config.model, x.shape[1], 10, seed=0)
    cpu = CpuTime()
    history = fit(model, training, (x, y), None, runtime=runtime, image_shape=(28, 28), callbacks=[cpu])
    return [row["seconds"] for row in history][1:], cpu.seconds[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=3, help="per case and round; the first is a warm-up")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from mlplab.data import load_dataset
    from mlplab.data.preprocess import flatten_scale
    from mlplab.training.device import resolve_runtime

    runtime = resolve_runtime("cpu", "fp32", threads=args.threads)
    dataset = load_dataset("mnist", download=False)
    x = torch.from_numpy(flatten_scale(dataset.x_train[:args.images]))
    y = torch.from_numpy(dataset.y_train[:args.images])
    load_before = loadavg()
    seconds: dict[str, list[float]] = {name: [] for name in CASES}
    cpu_seconds: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.rounds):
        for name, augment in CASES.items():
            wall, cpu_time = epoch_seconds(x, y, augment, args.epochs, runtime)
            seconds[name].append(statistics.median(wall))
            cpu_seconds[name].append(statistics.median(cpu_time))
    cpu = cpu_info()
    print(f"CPU: {cpu.get('model', '?')}, {args.threads} threads; load average {load_before} before, "
          f"{loadavg()} after")
    print(f"512-512 (Adam, batch 128), {args.images} images, median of {args.rounds} rounds")
    base, cpu_base = statistics.median(seconds["off"]), statistics.median(cpu_seconds["off"])
    print("| augmentation | s / epoch | ratio | CPU s / epoch | ratio |\n|---|---|---|---|---|")
    for name in CASES:
        s, c = statistics.median(seconds[name]), statistics.median(cpu_seconds[name])
        print(f"| {name} | {s:.3f} | {s / base:.2f}× | {c:.3f} | {c / cpu_base:.2f}× |")


if __name__ == "__main__":
    main()
