"""`refit = true`: after early stopping, a fresh model trains on all training images for the KEPT epochs."""

from __future__ import annotations

import pytest
import torch

# The public entry point for one run; if it moves (mlplab.runs), change this one line.
from mlplab import train_run
from mlplab.config import load_config
from mlplab.safeio import load_tensors


def _config(**overrides):
    return load_config("tutorial-50-25").with_overrides({"training.batch_size": 64, **overrides})


def test_refit_trains_for_the_kept_epoch_count_not_the_epochs_run(mnist_dir, tmp_path):
    # min_delta = 100 makes every epoch after the first a non-improvement: with patience 2 the run
    # stops after epoch 3 and keeps epoch 1, whatever the data do.
    stopped = train_run(
        _config(**{"training.epochs": 10, "training.refit": True,
                   "training.early_stopping": {"patience": 2, "min_delta": 100.0}}),
        out=tmp_path / "stopped", limit=1000, verbose=0,
    )
    assert stopped.status == "finished"
    assert (stopped.history.epochs_run, stopped.history.kept_epoch) == (3, 1)
    assert stopped.metrics["epochs_run"] == 3 and stopped.metrics["kept_epoch"] == 1
    assert stopped.metrics["refit"]["epochs"] == 1 and stopped.metrics["refit"]["train_samples"] == 1000

    # The same refit, reached without early stopping: one epoch on the same 1,000 images.
    one_epoch = train_run(
        _config(**{"training.epochs": 1, "training.refit": True}),
        out=tmp_path / "one", limit=1000, verbose=0,
    )
    assert one_epoch.metrics["refit"]["epochs"] == 1
    a, _ = load_tensors(stopped.run.path / "model.safetensors")
    b, _ = load_tensors(one_epoch.run.path / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    # and it is not the model the validation run kept (the refit saw 10 % more images)
    no_refit = train_run(
        _config(**{"training.epochs": 1, "training.refit": False}),
        out=tmp_path / "norefit", limit=1000, verbose=0,
    )
    c, _ = load_tensors(no_refit.run.path / "model.safetensors")
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert no_refit.metrics["refit"] is None
