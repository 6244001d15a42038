"""Early stopping, the NaN guard and the running metrics, held to their exact rules.

The validation values early stopping sees are scripted (a callback placed before it rewrites
the row), so each rule is checked on a known sequence while the weights really train: ties,
min_delta, both modes, non-finite values, and which epoch's weights the model ends with.
"""

from __future__ import annotations

import math

import pytest
import torch

from mlplab.config import config_from_dict
from mlplab.errors import ConfigError
from mlplab.model import build_model
from mlplab.training import Callback, EarlyStopping, NanGuard, fit
from mlplab.training.callbacks import RunningMetrics
from mlplab.training.config import EarlyStopping as EarlyStoppingConfig


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Script(Callback):
    """Replaces the monitored value of epoch i with values[i - 1], before early stopping reads it."""

    def __init__(self, monitor, values):
        self.monitor, self.values = monitor, values

    def on_epoch_end(self, state, row):
        row[self.monitor] = self.values[row["epoch"] - 1]


class Snapshots(Callback):
    """The model's weights at the end of every epoch (taken after early stopping has seen the row)."""

    def __init__(self):
        self.by_epoch = {}

    def on_epoch_end(self, state, row):
        self.by_epoch[row["epoch"]] = weights(state.model)


def scripted_fit(blobs, make_config, values, monitor="val_loss", **early):
    """Train the small blob model for len(values) epochs at most, early stopping on scripted values."""
    train, val = blobs
    cfg = make_config(epochs=len(values))
    model = build_model(cfg.model, 20, 3)
    stopper = EarlyStopping(EarlyStoppingConfig(monitor=monitor, **early))
    snaps = Snapshots()
    history = fit(model, cfg.training, train, val, callbacks=[Script(monitor, values), stopper, snaps])
    return model, history, stopper, snaps


def test_a_tie_with_the_best_value_is_not_an_improvement(blobs, make_config):
    _, history, stopper, _ = scripted_fit(blobs, make_config, [1.0, 0.9, 0.9, 0.9, 0.8, 0.7], patience=2)
    assert len(history) == 4 and stopper.stopped_epoch == 4
    assert stopper.best_epoch == 2 and history.restored and history.kept_epoch == 2
    assert history.stop_reason == "early stopping: val_loss did not improve for 2 epochs (best 0.9000 at epoch 2)"
    assert history.stopped_by == "early_stopping"  # what runs/ reads to say why a run ended


def test_a_tie_in_accuracy_is_not_an_improvement_either(blobs, make_config):
    _, history, stopper, _ = scripted_fit(
        blobs, make_config, [0.5, 0.6, 0.6, 0.6, 0.7], monitor="val_accuracy", patience=2
    )
    assert len(history) == 4 and stopper.best_epoch == 2 and stopper.best == 0.6


def test_min_delta_is_a_strict_margin_in_both_modes(blobs, make_config):
    # 1.0 → 0.75 improves by exactly min_delta: not enough (Keras: improvement must exceed min_delta)
    _, history, stopper, _ = scripted_fit(blobs, make_config, [1.0, 0.75, 0.76, 0.4, 0.3], patience=2, min_delta=0.25)
    assert len(history) == 3 and stopper.best_epoch == 1
    _, history, stopper, _ = scripted_fit(blobs, make_config, [1.0, 0.74, 0.7, 0.6], patience=1, min_delta=0.25)
    assert len(history) == 3 and stopper.best_epoch == 2
    _, history, stopper, _ = scripted_fit(
        blobs, make_config, [0.5, 0.75, 0.8, 0.9], monitor="val_accuracy", patience=1, min_delta=0.25
    )
    assert len(history) == 2 and stopper.best_epoch == 1
    _, history, stopper, _ = scripted_fit(
        blobs, make_config, [0.5, 0.76, 0.8, 0.9], monitor="val_accuracy", patience=1, min_delta=0.25
    )
    assert len(history) == 3 and stopper.best_epoch == 2


def test_explicit_mode_overrides_the_guess_from_the_name(blobs, make_config):
    # "loss" would be minimised; mode = "max" says higher is better
    _, history, stopper, _ = scripted_fit(blobs, make_config, [1.0, 2.0, 1.5, 1.8], monitor="loss", mode="max", patience=2)
    assert len(history) == 4 and stopper.best_epoch == 2 and stopper.best == 2.0


def test_non_finite_values_never_count_as_improvements(blobs, make_config):
    _, history, stopper, _ = scripted_fit(blobs, make_config, [math.nan, 1.0, math.inf, -math.inf, 0.5], patience=3)
    assert len(history) == 5 and stopper.best_epoch == 5 and stopper.best == 0.5
    _, history, stopper, _ = scripted_fit(blobs, make_config, [math.nan, math.nan, 1.0], patience=2)
    assert len(history) == 2 and stopper.best is None and stopper.best_weights is None
    assert history.stop_reason == "early stopping: val_loss did not improve for 2 epochs (no finite value)"


def test_the_model_ends_with_the_best_epochs_weights_not_the_last(blobs, make_config):
    model, history, stopper, snaps = scripted_fit(blobs, make_config, [1.0, 0.5, 0.7, 0.8, 0.1], patience=2)
    assert len(history) == 4 and history.restored and history.kept_epoch == 2
    assert not same_weights(snaps.by_epoch[2], snaps.by_epoch[4])  # so the check below can fail
    assert same_weights(weights(model), snaps.by_epoch[2])


def test_without_restore_the_model_keeps_the_last_epochs_weights(blobs, make_config):
    model, history, stopper, snaps = scripted_fit(
        blobs, make_config, [1.0, 0.5, 0.7, 0.8], patience=2, restore_best_weights=False
    )
    assert len(history) == 4 and stopper.best_epoch == 2 and stopper.best_weights is None
    assert not history.restored and history.kept_epoch == 4
    assert same_weights(weights(model), snaps.by_epoch[4])


def test_an_interrupted_run_keeps_its_current_weights_for_the_checkpoint(blobs, make_config):
    class InterruptIn3(Callback):
        def on_batch_end(self, state, batch, running):
            if state.epoch == 2 and batch == 3:
                state.interrupted = "SIGINT"

    train, val = blobs
    cfg = make_config(epochs=6)
    model = build_model(cfg.model, 20, 3)
    stopper = EarlyStopping(EarlyStoppingConfig(patience=5))
    snaps = Snapshots()
    history = fit(model, cfg.training, train, val, callbacks=[Script("val_loss", [1.0, 2.0, 3.0]), stopper, snaps, InterruptIn3()])
    assert history.interrupted == "SIGINT" and stopper.best_epoch == 1 and not history.restored
    assert not same_weights(weights(model), snaps.by_epoch[1])


def test_state_round_trips_and_restored_state_decides_the_same(blobs, make_config):
    _, _, stopper, _ = scripted_fit(blobs, make_config, [1.0, 0.5, 0.7], patience=3)
    values, tensors = stopper.state_dict()
    assert values == {"best": 0.5, "best_epoch": 2, "wait": 1, "stopped_epoch": None}
    assert tensors.keys() == stopper.best_weights.keys() and len(tensors) > 0
    copy = EarlyStopping(EarlyStoppingConfig(patience=3))
    copy.load_state_dict(values, tensors)
    assert (copy.best, copy.best_epoch, copy.wait, copy.stopped_epoch) == (0.5, 2, 1, None)
    assert same_weights(copy.best_weights, stopper.best_weights)
    empty = EarlyStopping(EarlyStoppingConfig())
    empty.load_state_dict({"best": None, "best_epoch": None, "wait": 0, "stopped_epoch": None}, {})
    assert empty.best_weights is None
    assert EarlyStopping(EarlyStoppingConfig()).state_dict() == ({"best": None, "best_epoch": None, "wait": 0, "stopped_epoch": None}, {})


def test_unknown_or_missing_monitor_is_a_config_error(blobs, make_config):
    train, val = blobs
    cfg = make_config(epochs=1)
    with pytest.raises(ConfigError, match=r"^config: training.early_stopping.monitor must be one of 'loss', 'accuracy', 'val_loss' or 'val_accuracy', got 'val_acc'$"):
        config_from_dict({"model": {"layers": []}, "training": {"early_stopping": {"monitor": "val_acc"}}})
    with pytest.raises(ConfigError, match=r"^early_stopping.monitor 'val_loss' is not computed \(no validation data\?\)$"):
        fit(build_model(cfg.model, 20, 3), cfg.training, train, None, callbacks=[EarlyStopping(EarlyStoppingConfig())])
    for monitor in ("loss", "accuracy", "val_loss", "val_accuracy"):  # every known name is accepted
        fit(build_model(cfg.model, 20, 3), cfg.training, train, val, callbacks=[EarlyStopping(EarlyStoppingConfig(monitor=monitor))])


def test_nan_guard_in_the_first_epoch_keeps_the_initial_weights(blobs, make_config):
    train, val = blobs
    cfg = make_config(epochs=3)
    model = build_model(cfg.model, 20, 3)
    initial = weights(model)
    history = fit(model, cfg.training, train, val, callbacks=[Script("loss", [math.nan, 1.0, 1.0]), NanGuard()])
    assert len(history) == 1
    assert history.stop_reason == (
        "non-finite loss (nan) in epoch 1; kept the weights from initialisation (try a lower learning rate)"
    )
    assert same_weights(weights(model), initial)


def test_nan_guard_later_keeps_the_last_good_epoch_and_flags_it(blobs, make_config):
    train, val = blobs
    cfg = make_config(epochs=5)
    model = build_model(cfg.model, 20, 3)
    snaps = Snapshots()

    class Flags(Callback):
        def on_epoch_end(self, state, row):
            self.stopped_by = state.stopped_by

    flags = Flags()
    history = fit(model, cfg.training, train, val, callbacks=[Script("loss", [1.0, 0.9, math.inf, 1.0, 1.0]), snaps, NanGuard(), flags])
    assert len(history) == 3 and flags.stopped_by == "non_finite"
    assert history.stop_reason == (
        "non-finite loss (inf) in epoch 3; kept the weights from the end of epoch 2 (try a lower learning rate)"
    )
    assert same_weights(weights(model), snaps.by_epoch[2])
    assert not same_weights(snaps.by_epoch[2], snaps.by_epoch[3])


def test_nan_guard_stops_on_a_non_finite_validation_loss_alone(blobs, make_config):
    train, val = blobs
    cfg = make_config(epochs=4)
    model = build_model(cfg.model, 20, 3)
    snaps = Snapshots()
    history = fit(model, cfg.training, train, val, callbacks=[Script("val_loss", [1.0, math.nan, 1.0, 1.0]), snaps, NanGuard()])
    assert len(history) == 2 and history.stopped_by == "non_finite" and math.isfinite(history.rows[-1]["loss"])
    assert history.stop_reason == (
        "non-finite validation loss (nan) in epoch 2; kept the weights from the end of epoch 1 (try a lower learning rate)"
    )
    assert same_weights(weights(model), snaps.by_epoch[1])


def test_nan_guard_catches_weights_that_give_nan_while_the_losses_were_finite(blobs, make_config):
    # The epoch's losses were computed before the weights went bad: only the probe of training
    # rows (state.extras["probe"], set by fit) can tell.
    class Poison(Callback):
        def on_epoch_end(self, state, row):
            if row["epoch"] == 2:
                with torch.no_grad():
                    next(state.model.parameters()).view(-1)[0] = math.nan

    train, val = blobs
    cfg = make_config(epochs=4)
    model = build_model(cfg.model, 20, 3)
    snaps = Snapshots()
    history = fit(model, cfg.training, train, val, callbacks=[snaps, Poison(), NanGuard()])
    assert len(history) == 2 and history.stopped_by == "non_finite"
    assert all(math.isfinite(row[key]) for row in history.rows for key in ("loss", "val_loss"))
    assert history.stop_reason == (
        "non-finite outputs (the weights at the end of the epoch give NaN or infinity) in epoch 2; "
        "kept the weights from the end of epoch 1 (try a lower learning rate)"
    )
    assert same_weights(weights(model), snaps.by_epoch[1])


def test_running_metrics_are_sample_weighted_means():
    running = RunningMetrics(torch.device("cpu"))
    values = running.values()
    assert math.isnan(values["loss"]) and math.isnan(values["accuracy"])
    running.update(torch.tensor(2.0), torch.tensor(3), 4)
    running.update(torch.tensor(0.5), torch.tensor(1), 2)
    assert running.seen == 6
    assert running.values() == {"loss": (2.0 * 4 + 0.5 * 2) / 6, "accuracy": 4 / 6}
    assert running.loss_sum.dtype == torch.float64 and running.correct.dtype == torch.int64


def test_running_metrics_keep_their_sums_on_the_training_device():
    # on a GPU the sums must stay there (one .item() per epoch, not a copy per batch); torch's
    # meta device stands in for one on a CPU-only machine
    running = RunningMetrics(torch.device("meta"))
    assert running.loss_sum.device.type == "meta" and running.correct.device.type == "meta"


def test_base_callback_hooks_do_nothing(blobs, make_config):
    train, val = blobs
    cfg = make_config(epochs=1)
    model = build_model(cfg.model, 20, 3)
    plain = Callback()
    history = fit(model, cfg.training, train, val, callbacks=[plain])
    assert len(history) == 1 and history.stop_reason is None
    assert plain.state_dict() == ({}, {})
    assert plain.load_state_dict({"x": 1}, {}) is None
