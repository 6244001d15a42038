"""The training loop: it learns, it is reproducible, it resumes exactly, it survives NaNs."""

from __future__ import annotations

import io
import math

import pytest
import torch

from mlplab.errors import ConfigError
from mlplab.model import build_model
from mlplab.training import Callback, EarlyStopping, ProgressPrinter, evaluate, fit, standard_callbacks



def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_fit_learns_and_records_a_row_per_epoch(blobs, make_config):
    train, val = blobs
    cfg = make_config()
    model = build_model(cfg.model, 20, 3)
    before = evaluate(model, val)["accuracy"]
    history = fit(model, cfg.training, train, val)
    assert len(history) == 4 and [r["epoch"] for r in history] == [1, 2, 3, 4]
    assert set(history.columns) >= {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds", "samples_per_s"}
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert history[-1]["val_accuracy"] > 0.9 > before
    assert evaluate(model, val)["accuracy"] == history[-1]["val_accuracy"]


@pytest.mark.parametrize("activation", ["tanh", "relu"], ids=["autograd", "hand-written"])
def test_same_seed_gives_bit_identical_weights(blobs, make_config, activation):
    train, val = blobs
    cfg = make_config(activation)
    runs = []
    for _ in range(2):
        model = build_model(cfg.model, 20, 3, seed=cfg.training.seed)
        fit(model, cfg.training, train, val)
        runs.append(weights(model))
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    other = build_model(cfg.model, 20, 3, seed=1)
    fit(other, cfg.with_overrides({"training.seed": 1}).training, train, val)
    assert not torch.equal(runs[0]["layers.0.weight"], other.state_dict()["layers.0.weight"])


def test_fit_leaves_the_callers_random_state_alone(blobs, make_config):
    train, val = blobs
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    cfg = make_config(epochs=1)
    fit(build_model(cfg.model, 20, 3), cfg.training, train, val)
    assert torch.equal(torch.rand(3), expected)


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_train_begin(self, state):
        self.events.append("train_begin")

    def on_epoch_begin(self, state):
        self.events.append(f"epoch_begin {state.epoch + 1}")

    def on_batch_end(self, state, batch, running):
        if batch == state.steps_per_epoch:
            self.events.append(f"last_batch {batch}")

    def on_epoch_end(self, state, row):
        self.events.append(f"epoch_end {row['epoch']}")

    def on_train_end(self, state):
        self.events.append("train_end")


class StopAfter(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, state, row):
        if row["epoch"] == self.epoch:
            state.stop_training = True


def test_callback_hooks_run_in_order_and_stop_by_flag(blobs, make_config):
    train, val = blobs
    cfg = make_config(epochs=5)
    recorder = Recorder()
    history = fit(build_model(cfg.model, 20, 3), cfg.training, train, val, callbacks=[StopAfter(2), recorder])
    assert len(history) == 2
    assert recorder.events == [
        "train_begin", "epoch_begin 1", "last_batch 15", "epoch_end 1",
        "epoch_begin 2", "last_batch 15", "epoch_end 2", "train_end",
    ]


class InterruptAt(Callback):
    """Plays the part of Ctrl-C: sets the flag the signal handler sets, in the middle of an epoch."""

    def __init__(self, epoch, batch):
        self.epoch, self.batch = epoch, batch

    def on_batch_end(self, state, batch, running):
        if state.epoch + 1 == self.epoch and batch == self.batch:
            state.interrupted = "SIGINT"


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", "sgd"])
@pytest.mark.parametrize("activation", ["tanh", "relu"], ids=["autograd", "hand-written"])
def test_interrupted_then_resumed_equals_uninterrupted(blobs, tmp_path, optimizer, activation, make_config):
    train, val = blobs
    cfg = make_config(activation, epochs=6,
                      optimizer={"name": optimizer, "momentum": 0.9} if optimizer == "sgd" else {"name": optimizer},
                      early_stopping={"patience": 10})
    straight = build_model(cfg.model, 20, 3)
    fit(straight, cfg.training, train, val, callbacks=standard_callbacks(cfg.training, verbose=0))

    path = tmp_path / "checkpoint.safetensors"
    first = build_model(cfg.model, 20, 3)
    cbs = standard_callbacks(cfg.training, checkpoint_path=path, verbose=0)
    history = fit(first, cfg.training, train, val, callbacks=[*cbs, InterruptAt(epoch=4, batch=5)])
    assert history.interrupted == "SIGINT" and len(history) == 3

    resumed = build_model(cfg.model, 20, 3, seed=99)  # its own init is overwritten by the checkpoint
    history = fit(resumed, cfg.training, train, val, callbacks=standard_callbacks(cfg.training, checkpoint_path=path, verbose=0), resume_from=path)
    assert len(history) == 6 and [r["epoch"] for r in history] == list(range(1, 7))
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_non_finite_loss_stops_and_keeps_the_last_good_weights(blobs, tmp_path, make_config):
    train, val = blobs
    x, y = train
    poisoned = x.clone()
    cfg = make_config(epochs=5, optimizer={"name": "sgd", "learning_rate": 0.01})

    class PoisonEpoch(Callback):
        """From epoch 3 on, the data hold an infinity (as a corrupt input would)."""

        def on_epoch_begin(self, state):
            if state.epoch == 2:
                poisoned[0, 0] = math.inf

    model = build_model(cfg.model, 20, 3)
    snapshots = []

    class Snapshot(Callback):
        def on_epoch_end(self, state, row):
            snapshots.append(weights(state.model))

    path = tmp_path / "ck.safetensors"
    cbs = standard_callbacks(cfg.training, checkpoint_path=path, verbose=0)
    history = fit(model, cfg.training, (poisoned, y), val, callbacks=[PoisonEpoch(), *cbs, Snapshot()])
    assert len(history) == 3 and not math.isfinite(history[-1]["loss"])
    assert "non-finite loss" in history.stop_reason and "end of epoch 2" in history.stop_reason
    for key, value in model.state_dict().items():
        assert torch.equal(value, snapshots[1][key])
        assert torch.isfinite(value).all()
    # the checkpoint on disk is still the one written after epoch 2
    from mlplab.safeio import load_tensors

    tensors, _ = load_tensors(path)
    assert torch.equal(tensors["model.layers.0.weight"], snapshots[1]["layers.0.weight"])


def test_early_stopping_restores_the_best_epoch(blobs, make_config):
    train, val = blobs
    cfg = make_config(epochs=30, early_stopping={"monitor": "val_loss", "patience": 2, "min_delta": 0.0})
    model = build_model(cfg.model, 20, 3)
    history = fit(model, cfg.training, train, val, callbacks=standard_callbacks(cfg.training, verbose=0))
    best = history.kept_epoch
    assert best == min(history.rows, key=lambda r: r["val_loss"])["epoch"]
    if len(history) < 30:
        assert len(history) == best + 2 and "early stopping" in history.stop_reason
    assert math.isclose(evaluate(model, val)["loss"], history[best - 1]["val_loss"], rel_tol=1e-6)


def test_early_stopping_rules_on_a_scripted_history(make_config):
    from mlplab.training.config import EarlyStopping as Config
    from mlplab.training.state import TrainingState
    from mlplab.training.history import History

    model = build_model(make_config().model, 20, 3)

    def run(values, **kw):
        cb = EarlyStopping(Config(**kw))
        state = TrainingState(model, None, None, None, None, None, History(), None, 1)
        for epoch, value in enumerate(values, 1):
            cb.on_epoch_end(state, {"epoch": epoch, kw.get("monitor", "val_loss"): value})
            if state.stop_training:
                return epoch, cb.best_epoch
        return None, cb.best_epoch

    assert run([1.0, 0.9, 0.95, 0.91], patience=2) == (4, 2)
    assert run([1.0, 0.9, 0.95, 0.91], patience=3) == (None, 2)
    assert run([1.0, 0.99, 0.98, 0.97], patience=2, min_delta=0.05) == (3, 1)
    assert run([0.5, 0.7, 0.6, 0.65], monitor="val_accuracy", patience=2) == (4, 2)
    assert run([1.0, 0.9], patience=0) == (None, 2)


def test_monitoring_validation_without_validation_data_is_an_error(blobs, make_config):
    train, _ = blobs
    cfg = make_config(early_stopping={"monitor": "val_loss"})
    with pytest.raises(ConfigError, match="needs validation data"):
        fit(build_model(cfg.model, 20, 3), cfg.training, train, None)


def test_progress_printer_line_mode_and_bar_mode(blobs, make_config):
    train, val = blobs
    cfg = make_config(epochs=2)
    lines = io.StringIO()
    fit(build_model(cfg.model, 20, 3), cfg.training, train, val, callbacks=[ProgressPrinter(1, lines)])
    out = lines.getvalue().splitlines()
    assert len(out) == 2  # not a terminal: one line per epoch
    assert out[0].startswith("Epoch 1/2 - ") and "ms/step - loss: " in out[0] and "val_accuracy: " in out[0]

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    fit(build_model(cfg.model, 20, 3), cfg.training, train, val, callbacks=[ProgressPrinter(1, term)])
    text = term.getvalue()
    assert text.startswith("Epoch 1/2\n") and "\r15/15 ━━━━━━━━━━━━━━━━━━━━" in text and "val_loss: " in text

    silent = io.StringIO()
    fit(build_model(cfg.model, 20, 3), cfg.training, train, val, callbacks=[ProgressPrinter(0, silent)])
    assert silent.getvalue() == ""
    with pytest.raises(ValueError, match="verbose must be 0, 1 or 2, got 5"):
        ProgressPrinter(5)


def test_bad_inputs_are_value_errors(blobs, make_config):
    (x, y), val = blobs
    cfg = make_config()
    model = build_model(cfg.model, 20, 3)
    with pytest.raises(ValueError, match="expects 20 features"):
        fit(model, cfg.training, (x[:, :5], y), None)
    with pytest.raises(ValueError, match="labels must be in"):
        fit(model, cfg.training, (x, y + 5), None)
    with pytest.raises(ValueError, match="differ in length"):
        fit(model, cfg.training, (x, y[:10]), None)


def test_bf16_autocast_trains_to_the_same_accuracy(blobs, make_config):
    """bf16 matrix products (emulated where the CPU lacks bf16 units) keep accuracy."""
    from mlplab.training import resolve_runtime

    train, val = blobs
    cfg = make_config(epochs=3)
    scores = {}
    for precision in ("fp32", "bf16"):
        model = build_model(cfg.model, 20, 3)
        history = fit(model, cfg.training, train, val, runtime=resolve_runtime("cpu", precision))
        scores[precision] = history[-1]["val_accuracy"]
    assert scores["bf16"] > 0.9 and abs(scores["bf16"] - scores["fp32"]) <= 0.02
    runtime = resolve_runtime("cpu", "bf16")
    from mlplab.training.device import cpu_has_bf16_units

    assert bool(runtime.warnings()) == (not cpu_has_bf16_units())


def test_non_finite_features_are_refused_up_front(blobs, make_config):
    (x, y), (xv, yv) = blobs
    cfg = make_config()
    bad = x.clone()
    bad[3, 4] = float("nan")
    with pytest.raises(ValueError, match="training features hold NaN"):
        fit(build_model(cfg.model, 20, 3), cfg.training, (bad, y), (xv, yv))
    bad_val = xv.clone()
    bad_val[0, 0] = float("inf")
    with pytest.raises(ValueError, match="validation features hold NaN"):
        fit(build_model(cfg.model, 20, 3), cfg.training, (x, y), (bad_val, yv))


def test_all_finite_is_exact_when_the_sum_overflows():
    from mlplab.training.loop import all_finite

    big = torch.full((4, 3), 3e38)  # finite values whose sum overflows to inf
    assert all_finite(big)
    big[2, 1] = float("-inf")
    assert not all_finite(big)
    assert not all_finite(torch.tensor([1.0, float("nan")]))
    assert all_finite(torch.zeros(0))


@pytest.mark.parametrize("schedule", [{"name": "step"}, {"name": "cosine"}, {"name": "one_cycle"},
                                      {"name": "constant", "warmup_epochs": 1.5},
                                      {"name": "cosine", "warmup_epochs": 1.0}])
def test_fit_follows_a_learning_rate_schedule(blobs, make_config, schedule):
    # A schedule is applied in the loop every step: the recorded rate must move as the schedule says.
    train, val = blobs
    cfg = make_config(schedule={"step_size": 1, "gamma": 0.5, **schedule})
    from mlplab.training.optim import learning_rate_at

    history = fit(build_model(cfg.model, 20, 3), cfg.training, train, val)
    steps = math.ceil(len(train[1]) / cfg.training.batch_size)
    expected = [learning_rate_at(cfg.training.schedule, 0.01, epoch * steps - 1, steps, steps * cfg.training.epochs)
                for epoch in range(1, cfg.training.epochs + 1)]
    assert history.history["lr"] == pytest.approx(expected)
    assert len(set(history.history["lr"])) > 1
