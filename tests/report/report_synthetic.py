"""Synthetic RunResults for the report tests: seeded, small, shaped like MNIST runs.

A module with a unique name (not conftest) so test files can import it without clashing with
other test folders' conftest modules."""

from __future__ import annotations

import numpy as np
from mlplab.report import DataFacts, RunResult

CLASSES = tuple(str(i) for i in range(10))
M = 200
MODELS = {  # name: (params, hidden units, skill)
    "tutorial-50-25": (40_785, 50, 2.9),
    "tutorial-128-64": (109_386, 128, 3.4),
    "tutorial-512-512": (669_706, 512, 4.0),
}
PUBLISHED = {"mnist": {"tutorial-50-25": 0.9655, "tutorial-512-512": 0.9805}}
PUBLISHED_SOURCE = "the Keras tutorial 'MLP Deep Learning on the MNIST Dataset'"
DATA = DataFacts(name="mnist", source="/data/mnist (verified sha256)", checksum_verified=True,
                 train_images=60_000, test_images=M, fit_images=54_000, validation_images=6_000)
ENVIRONMENT = {"python": "3.11", "versions": {"torch": "2.x", "numpy": "2.y"}, "cpu": "test cpu", "threads": 2, "device": "cpu"}


def _test_set(rng):
    y = rng.integers(0, 10, size=M).astype(np.int64)
    yy, xx = np.mgrid[:28, :28]
    images = np.empty((M, 28, 28), dtype=np.uint8)
    for i, c in enumerate(y):
        cy, cx = 8 + 12 * (c // 5) / 1.0, 4 + 5 * (c % 5)
        blob = 255 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 18.0)
        images[i] = np.clip(blob + rng.normal(0, 20, (28, 28)), 0, 255).astype(np.uint8)
    return y, images


def config_text(name: str, units: int, seed: int) -> str:
    """A config as a run saves it: every key, defaults included (the schedule's too)."""
    return (f'name = "{name}"\ndataset = "mnist"\n\n[[model.layers]]\ntype = "dense"\nunits = {units}\n\n'
            f'[training]\nepochs = 12\nbatch_size = 128\nseed = {seed}\n\n'
            '[training.schedule]\nname = "constant"\nstep_size = 10\ngamma = 0.1\n')


def make_run(name: str, seed: int, y, images, dataset: DataFacts | None = DATA) -> RunResult:
    params, units, skill = MODELS[name]
    rng = np.random.default_rng(1000 * seed + units)
    logits = rng.normal(0, 1.0, (M, 10))
    logits[np.arange(M), y] += skill + rng.normal(0, 0.15)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
    acc = float((probs.argmax(1) == y).mean())
    loss = float(-np.log(probs[np.arange(M), y]).mean())
    epochs = int(rng.integers(4, 13))
    history = []
    for e in range(1, epochs + 1):
        t = 1 - np.exp(-e / 2.5)
        history.append({
            "epoch": e, "loss": 1.2 - 0.9 * t, "accuracy": 0.6 + 0.38 * t,
            "val_loss": 1.25 - 0.8 * t + 0.01 * e + rng.normal(0, 0.01),
            "val_accuracy": 0.58 + (acc - 0.58) * t + rng.normal(0, 0.003),
            "lr": 1e-3, "seconds": 2.0, "samples_per_s": 25_000.0 + units,
        })
    best = max(1, epochs - int(rng.integers(0, 4)))
    w = rng.normal(0, 0.05, (units, 28 * 28)).astype(np.float32)
    return RunResult(
        name=name, seed=seed, history=history, params=params,
        train_flops=6 * params * 54_000 * epochs, epochs_run=epochs, best_epoch=best,
        wall_seconds=2.0 * epochs, test_loss=loss, test_accuracy=acc, y_true=y, probs=probs,
        test_images=images, class_names=CLASSES, first_layer_weights=w,
        run_dir=f"runs/{name}-s{seed}", config_text=config_text(name, units, seed), dataset=dataset,
    )


def make_results(seeds: dict[str, int], data_seed: int = 0, dataset: DataFacts | None = DATA) -> list[RunResult]:
    y, images = _test_set(np.random.default_rng(data_seed))
    return [make_run(name, s, y, images, dataset) for name, n in seeds.items() for s in range(n)]
