"""Try variations of a config on a validation split, to choose a fast recipe without the test set.

    python bench/recipe_search.py                       # fast-256-256 and its neighbours, seeds 0-2
    python bench/recipe_search.py --config fast-256-256 --try '{"training.epochs": 4}' --seeds 0
    python bench/recipe_search.py --confirm-on-test     # the same runs, scored on the test set
    python bench/recipe_search.py --config recipe-fashion --dataset fashion-mnist --seeds 0

Each run trains on 50,000 training images and is scored after every epoch on the other 10,000
(a fixed seeded split); it prints the wall-clock seconds from building the model to the end of
training (validation included) and the accuracy per epoch. The test set is read only with
`--confirm-on-test`, once a recipe has been chosen.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.data import load_mnist  # noqa: E402

# Neighbours of the shipped recipe: fewer or more epochs, larger or smaller batches.
DEFAULT_TRIES = [
    {},
    {"training.epochs": 2},
    {"training.epochs": 4},
    {"training.batch_size": 512},
    {"training.batch_size": 128, "training.epochs": 2, "training.schedule.max_learning_rate": 0.004},
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="fast-256-256", help="shipped config name or TOML path (default fast-256-256)")
    parser.add_argument("--try", dest="tries", action="append", default=None,
                        help="JSON dict of dotted-key overrides; repeat for several (default: the built-in list)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default 0 1 2)")
    parser.add_argument("--dataset", default="mnist", help="mnist (read by bench/data.py) or any dataset mlplab loads (default mnist)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--confirm-on-test", action="store_true", help="score on the test set instead (default off)")
    args = parser.parse_args()

    import torch

    from mlplab.config import load_config
    from mlplab.model import build_model
    from mlplab.training import fit

    torch.set_num_threads(args.threads)
    (x_train, y_train), (x_test, y_test) = load_mnist() if args.dataset == "mnist" else _load(args.dataset)
    if args.confirm_on_test:
        train, scored, on = (x_train, y_train), (x_test, y_test), "test"
    else:
        order = np.random.default_rng(123).permutation(len(x_train))
        fit_rows, val_rows = order[:50_000], order[50_000:]
        train, scored, on = (x_train[fit_rows], y_train[fit_rows]), (x_train[val_rows], y_train[val_rows]), "validation"
    tries = [json.loads(t) for t in args.tries] if args.tries else DEFAULT_TRIES
    for overrides in tries:
        for seed in args.seeds:
            settings = {"training.validation_split": 0, "training.early_stopping": None, "training.refit": False,
                        "training.seed": seed, **overrides}
            cfg = load_config(args.config).with_overrides(settings)
            start = time.perf_counter()
            model = build_model(cfg.model, num_features=x_train.shape[1], num_classes=10, seed=seed)
            history = fit(model, cfg.training, train, validation=scored, image_shape=(28, 28))
            seconds = time.perf_counter() - start
            accuracies = " ".join(f"{row['val_accuracy'] * 100:.2f}" for row in history)
            print(f"{json.dumps(overrides)} seed {seed}: {seconds:.2f} s, {on} accuracy per epoch {accuracies}", flush=True)


def _load(name: str):
    """Any dataset mlplab knows, flattened and scaled like bench/data.py's MNIST (28×28 images only)."""
    from mlplab.data import load_dataset
    from mlplab.data.preprocess import flatten_scale

    ds = load_dataset(name)
    return (flatten_scale(ds.x_train), ds.y_train), (flatten_scale(ds.x_test), ds.y_test)


if __name__ == "__main__":
    main()
