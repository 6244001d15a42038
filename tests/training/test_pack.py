"""Packed training: each model in a pack follows its solo trajectory (`mlplab.training.pack`).

The reference is always the same model trained alone with `fit`. Weights agree to float
tolerance (the batched products sum in another order), masks and permutations exactly (so a
pack that shared one permutation, or one dropout generator, between its models fails here).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlplab.config import config_from_dict
from mlplab.model.build import build_model
from mlplab.training import fit
from mlplab.training.callbacks import Callback, EarlyStopping
from mlplab.training.config import EarlyStopping as EarlyStoppingConfig
from mlplab.training.device import resolve_runtime
from mlplab.training.pack import PackMember, fit_pack, pack_support

RUNTIME = resolve_runtime("cpu", "fp32", None)


def _config(seed=0, *, hidden=(16, 8), dropout=0.0, optimizer=None, epochs=2, batch_size=32, **training):
    layers = []
    for units in hidden:
        layers.append({"type": "dense", "units": units, "activation": "relu"})
        if dropout:
            layers.append({"type": "dropout", "rate": dropout})
    return config_from_dict({
        "name": "packed",
        "model": {"layers": layers},
        "training": {"batch_size": batch_size, "epochs": epochs, "seed": seed,
                     "optimizer": optimizer or {"name": "adam", "learning_rate": 0.01}, **training},
    })


def _member(config, train, validation=None, callbacks=(), features=20, classes=3, **kw):
    model = build_model(config.model, features, classes, seed=config.training.seed)
    return PackMember(model, config.training, train, validation, callbacks=callbacks, **kw)


def _solo(member: PackMember, features=20, classes=3):
    """The same member trained alone: a fresh model from the same config and seed."""
    model = build_model(member.model.spec, features, classes, seed=member.config.seed)
    callbacks = [type(c)(c.config) if isinstance(c, EarlyStopping) else c for c in member.callbacks]
    train = member.train if member.train_rows is None else tuple(a[member.train_rows] for a in member.train)
    history = fit(model, member.config, train, member.validation, callbacks=callbacks, runtime=RUNTIME)
    return model, history


def _max_difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


CONFIGS = [  # per-model hyper-parameters: seeds, learning rates, betas, rho, weight decay, schedules
    dict(optimizer={"name": "rmsprop", "learning_rate": 0.003, "rho": 0.8}),
    dict(optimizer={"name": "adam", "learning_rate": 0.01, "beta_1": 0.8}),
    dict(optimizer={"name": "adamw", "learning_rate": 0.005, "weight_decay": 0.01},
         schedule={"name": "cosine"}),
    dict(optimizer={"name": "sgd", "learning_rate": 0.05, "momentum": 0.9}, schedule={"name": "step", "step_size": 1}),
]


@pytest.mark.parametrize("dropout", [0.0, 0.25], ids=["no-dropout", "dropout"])
def test_weights_after_training_agree_with_each_models_solo_run(blobs, dropout):
    train, val = blobs
    members = [_member(_config(seed, dropout=dropout, **extra), train, val) for seed, extra in enumerate(CONFIGS)]
    assert pack_support(members, RUNTIME).ok
    histories = fit_pack(members, runtime=RUNTIME)
    for member, history in zip(members, histories):
        model, solo = _solo(member)
        assert _max_difference(member.model, model) < 1e-5
        assert history.column("lr") == solo.column("lr")
        assert np.allclose(history.column("loss"), solo.column("loss"), rtol=1e-5)
        assert history.column("val_accuracy") == solo.column("val_accuracy")


def test_members_may_read_different_rows_of_shared_arrays(blobs):
    """Each seed's own validation split: rows of one array, not a copy each."""
    (x, y), val = blobs
    rows = [np.arange(0, 400), np.arange(80, 480)[::-1].copy()]
    members = [_member(_config(seed), (x, y), val, train_rows=r) for seed, r in enumerate(rows)]
    fit_pack(members, runtime=RUNTIME)
    for member in members:
        model, _ = _solo(member)
        assert _max_difference(member.model, model) < 1e-5


def test_mnist_accuracies_follow_the_solo_runs(mnist):
    """Real data, a tutorial-sized model with dropout, a few epochs: the same accuracies to ±0.1 point."""
    from mlplab.data.preprocess import flatten_scale

    x = torch.from_numpy(flatten_scale(mnist.x_train[:3000]))
    y = torch.from_numpy(mnist.y_train[:3000].astype(np.int64))
    train, val = (x[:2500], y[:2500]), (x[2500:], y[2500:])
    configs = [_config(seed, hidden=(128, 64), dropout=0.15, epochs=3, batch_size=128,
                       optimizer={"name": "adam", "learning_rate": 0.001}) for seed in range(3)]
    members = [_member(c, train, val, features=784, classes=10) for c in configs]
    histories = fit_pack(members, runtime=RUNTIME)
    for member, history in zip(members, histories):
        model, solo = _solo(member, features=784, classes=10)
        assert solo[-1]["val_accuracy"] > 0.85  # it learned: the comparison is about a real trajectory
        assert np.allclose(history.column("val_accuracy"), solo.column("val_accuracy"), atol=0.001)
        assert np.allclose(history.column("accuracy"), solo.column("accuracy"), atol=0.001)
        assert _max_difference(member.model, model) < 1e-3


def test_packed_runs_are_bit_reproducible(blobs):
    train, val = blobs

    def run():
        members = [_member(_config(seed, dropout=0.2), train, val) for seed in range(3)]
        histories = fit_pack(members, runtime=RUNTIME)
        return members, histories

    first, first_histories = run()
    second, second_histories = run()
    for a, b, ha, hb in zip(first, second, first_histories, second_histories):
        assert all(torch.equal(p, q) for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values()))
        assert ha.column("loss") == hb.column("loss") and ha.column("val_loss") == hb.column("val_loss")


class StackWatcher(Callback):
    """How many models share the stack this member's weights live in, each epoch."""

    def __init__(self) -> None:
        self.stacked: list[int] = []

    def on_epoch_begin(self, state) -> None:
        flat = state.parameters
        self.stacked.append(flat.data.untyped_storage().nbytes() // (flat.numel() * flat.element_size()))


def test_an_early_stopped_member_matches_its_solo_run_and_leaves_the_pack(blobs):
    train, val = blobs
    # min_delta so large that nothing counts as improving: stops after epoch 1 + patience.
    stopping = EarlyStoppingConfig(monitor="val_loss", patience=1, min_delta=100.0)
    stopper = _member(_config(0, epochs=5, early_stopping=stopping.model_dump()), train, val,
                      callbacks=[EarlyStopping(stopping)])
    watcher = StackWatcher()
    others = [_member(_config(seed, epochs=5), train, val, callbacks=[watcher] if seed == 1 else [])
              for seed in (1, 2)]
    histories = fit_pack([stopper, *others], runtime=RUNTIME)
    model, solo = _solo(stopper)
    assert histories[0].epochs_run == solo.epochs_run == 2
    assert histories[0].kept_epoch == solo.kept_epoch == 1
    assert histories[0].stop_reason == solo.stop_reason and histories[0].stopped_by == "early_stopping"
    assert _max_difference(stopper.model, model) < 1e-5  # the restored best weights
    assert [h.epochs_run for h in histories[1:]] == [5, 5]
    assert watcher.stacked == [3, 3, 2, 2, 2]  # dropped from the stack once it stopped
    for member in others:
        assert _max_difference(member.model, _solo(member)[0]) < 1e-5


class InterruptAt(Callback):
    def __init__(self, batch: int) -> None:
        self.batch = batch

    def on_batch_end(self, state, batch, running) -> None:
        if state.epoch == 1 and batch == self.batch:
            state.interrupted = "SIGINT"


def test_an_interruption_stops_every_member(blobs):
    train, val = blobs
    members = [_member(_config(seed, epochs=3), train, val, callbacks=[InterruptAt(2)] if seed == 0 else [])
               for seed in range(3)]
    histories = fit_pack(members, runtime=RUNTIME)
    assert [h.interrupted for h in histories] == ["SIGINT"] * 3
    assert [h.epochs_run for h in histories] == [1, 1, 1]


def test_models_that_cannot_share_a_pack_are_refused_with_the_reason(blobs):
    train, val = blobs
    base = _member(_config(0), train, val)
    cases = {
        "other layer shapes": _member(_config(1, hidden=(16, 9)), train, val),
        "another batch size": _member(_config(1, batch_size=16), train, val),
        "activation tanh": _member(config_from_dict({
            "name": "t", "model": {"layers": [{"type": "dense", "units": 16, "activation": "tanh"},
                                              {"type": "dense", "units": 8, "activation": "relu"}]},
            "training": {"batch_size": 32}}), train, val),
        "label smoothing": _member(_config(1, label_smoothing=0.1), train, val),
        "weight average": _member(_config(1, ema=0.99), train, val),
        "another number of training images": _member(_config(1), (train[0][:100], train[1][:100]), val),
        "at least two": None,
    }
    for reason, other in cases.items():
        support = pack_support([base] if other is None else [base, other], RUNTIME)
        assert not support.ok and reason in support.reason, (reason, support.reason)
    bf16 = resolve_runtime("cpu", "bf16", None)
    assert "precision bf16" in pack_support([base, _member(_config(1), train, val)], bf16).reason


def test_an_unpackable_group_is_trained_one_after_another_exactly_as_alone(blobs):
    train, val = blobs
    members = [_member(_config(0), train, val), _member(_config(1, hidden=(16, 9)), train, val)]
    histories = fit_pack(members, runtime=RUNTIME)
    for member, history in zip(members, histories):
        model, solo = _solo(member)
        assert _max_difference(member.model, model) == 0.0
        assert history.column("loss") == solo.column("loss")


def test_input_dropout_follows_the_solo_run(blobs):
    train, val = blobs
    layers = [{"type": "dropout", "rate": 0.2}, {"type": "dense", "units": 16, "activation": "relu"}]
    configs = [config_from_dict({"name": "input-dropout", "model": {"layers": layers},
                                 "training": {"batch_size": 32, "epochs": 2, "seed": seed}}) for seed in range(2)]
    members = [_member(c, train, val) for c in configs]
    assert pack_support(members, RUNTIME).ok
    fit_pack(members, runtime=RUNTIME)
    for member in members:
        assert _max_difference(member.model, _solo(member)[0]) < 1e-5


def test_shared_arrays_are_checked_once_and_bad_data_is_still_refused(blobs, monkeypatch):
    """Seeds of one study share their arrays: the pack converts and checks them once, not once a
    member; members with arrays of their own get their own check (a NaN in them is refused)."""
    import mlplab.training.pack as pack

    train, val = blobs
    calls = []
    real = pack.checked_data
    monkeypatch.setattr(pack, "checked_data", lambda *a: calls.append(a[2]) or real(*a))
    shared = [_member(_config(seed, epochs=1), train, val) for seed in range(3)]
    fit_pack(shared, runtime=RUNTIME)
    assert len(calls) == 1
    for member in shared:
        assert _max_difference(member.model, _solo(member)[0]) < 1e-5

    calls.clear()
    poisoned = (train[0].clone(), train[1])
    poisoned[0][7, 3] = float("nan")
    members = [_member(_config(0, epochs=1), train, val), _member(_config(1, epochs=1), poisoned, val)]
    with pytest.raises(ValueError, match="training features hold NaN"):
        fit_pack(members, runtime=RUNTIME)
    assert len(calls) == 2


def test_a_member_trained_alone_reads_only_its_rows_in_their_order(blobs):
    """A pack of one falls back to `fit`; it still trains on the member's `train_rows`, in their order
    (a refit is such a member: the validation run's training rows, then its validation rows)."""
    (x, y), val = blobs
    member = _member(_config(0), (x, y), val, train_rows=np.arange(80, 480)[::-1].copy())
    assert not pack_support([member], RUNTIME).ok
    fit_pack([member], runtime=RUNTIME)
    model, _ = _solo(member)
    assert _max_difference(member.model, model) == 0.0


@pytest.mark.parametrize("rows", [[], [0, -1], [0, 10**6], [[0, 1]]], ids=["empty", "negative", "past-the-end", "2-d"])
def test_train_rows_that_name_no_row_are_refused_packed_or_alone(blobs, rows):
    """The same refusal whether the members share a pack or fall back to `fit` one by one (NumPy
    would read -1 as the last row)."""
    (x, y), val = blobs
    message = f"^train_rows must be a non-empty list of row indices below {len(x)}$"
    packed = [_member(_config(seed), (x, y), val, train_rows=rows) for seed in (0, 1)]
    assert pack_support(packed, RUNTIME).ok
    alone = [_member(_config(0), (x, y), val, train_rows=rows)]
    for members in (packed, alone):
        with pytest.raises(ValueError, match=message):
            fit_pack(members, runtime=RUNTIME)
