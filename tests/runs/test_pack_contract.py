"""What `start_pack` promises each run: its dataset, callbacks, output and refit, as if it ran alone.

Real MNIST slices. Most tests use the first 800 images' digits 0, 1 and 2 held in memory (a
3-class dataset that is not on disk), so a run that reloaded its data, or built a 10-class model,
would show it in its model file.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import time
from dataclasses import replace

import pytest
import torch

from mlplab.config import config_from_dict
from mlplab.errors import ConfigError, StorageError
from mlplab.runs import RunPlan, load_model, load_run_dataset, start_run
from mlplab.runs.pack import start_pack
from mlplab.training import device
from mlplab.training.callbacks import Callback
from mlplab.training.device import MatmulSpeed, resolve_runtime

LIMIT = 800
FP32 = resolve_runtime("cpu", "fp32", None)


def _config(units=16, *, epochs=2, **training):
    return config_from_dict({
        "name": "small", "model": {"layers": [{"type": "dense", "units": units, "activation": "relu"}]},
        "training": {"batch_size": 64, "epochs": epochs, "optimizer": {"name": "adam", "learning_rate": 0.001},
                     **training},
    })


class Epochs(Callback):
    """Records the epochs it is shown."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def on_epoch_end(self, state, row) -> None:
        self.seen.append(row["epoch"])


class RaiseAtStart(Callback):
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def on_train_begin(self, state) -> None:
        raise self.exc


class CtrlCAfterEpoch(Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, state, row) -> None:
        if row["epoch"] == self.epoch:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.fixture(scope="module")
def digits012(data_dir):
    """The first 800 MNIST images' 0s, 1s and 2s, in memory (named mnist: reloading would give 10 classes)."""
    mnist = load_run_dataset("mnist", data_dir=data_dir, limit=LIMIT)
    train, test = mnist.y_train < 3, mnist.y_test < 3
    return replace(mnist, x_train=mnist.x_train[train], y_train=mnist.y_train[train], x_test=mnist.x_test[test],
                   y_test=mnist.y_test[test], class_names=mnist.class_names[:3])


def _weights(run_dir) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in load_model(run_dir).model.parameters()])


LAYOUTS = {"one plan": [16], "cannot share": [16, 24], "pack": [16, 16]}


@pytest.mark.parametrize("verbose", [0, 1])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_run_gets_the_given_dataset_its_callbacks_and_the_stream(digits012, tmp_path, capsys, layout, verbose):
    """Whether the plans form a pack, are trained one after another or are a single run: each run
    trains on the dataset handed in (not one reloaded from disk), its own callbacks see each of its
    epochs, and everything printed goes to `stream`, nothing at verbose=0."""
    plans = [RunPlan(_config(units), tmp_path / f"run{i}", seed=i, limit=LIMIT)
             for i, units in enumerate(LAYOUTS[layout])]
    recorders = [Epochs() for _ in plans]
    stream = io.StringIO()
    results = start_pack(plans, dataset=digits012, verbose=verbose, stream=stream, callbacks=[(r,) for r in recorders])
    assert [r.ok for r in results] == [True] * len(plans)
    assert [r.seen for r in recorders] == [[1, 2]] * len(plans)
    for plan in plans:
        assert load_model(plan.out).class_names == ["0", "1", "2"]
    assert capsys.readouterr().out == ""
    out = stream.getvalue()
    if not verbose:
        assert out == ""
        return
    assert out.count("Epoch 2/2 - ") == len(plans)
    assert ("Training 2 runs as one pack" in out) == (layout == "pack")
    one_after_another = "Training the 2 runs one after another: model 2 has other layer shapes"
    assert (one_after_another in out) == (layout == "cannot share")


@pytest.fixture(scope="module")
def solo_refit(digits012, tmp_path_factory):
    """Seed 1 alone: early stopping keeps an earlier epoch, then a refit on all training images."""
    out = tmp_path_factory.mktemp("solo") / "seed1"
    result = start_run(RunPlan(_refit_config(), out, seed=1, limit=LIMIT, runtime=FP32), dataset=digits012, verbose=0)
    assert result.ok and result.metrics["kept_epoch"] < result.history.epochs_run  # the kept epoch is not the last
    return result


def _refit_config(refit=True):
    # a high learning rate, so that the validation loss turns up within the 8 epochs; 64 units, so
    # that "auto" precision would probe bf16 for it (see the monkeypatch below)
    return _config(64, epochs=8, refit=refit, validation_split=0.25, early_stopping={"patience": 1},
                   optimizer={"name": "adam", "learning_rate": 0.03})


@pytest.mark.parametrize("both_refit", [True, False], ids=["two-refits-quiet", "one-refit-verbose"])
def test_a_packed_refit_is_the_refit_its_solo_run_makes(digits012, solo_refit, tmp_path, monkeypatch, capsys,
                                                         both_refit):
    """The packed validation run follows the solo run, and the refit trains a fresh model on its
    training and validation rows for the epochs it kept: the model saved is the solo run's, to
    float tolerance, whether the other run of the pack refits too (a pack of refits) or not (a
    refit alone). Both train with the plans' runtime: the machine here would pick bf16 for `auto`;
    the plans say fp32, and fp32 it stays."""
    monkeypatch.setattr(device, "cpu_has_bf16_units", lambda: True)
    monkeypatch.setattr(device, "measure_matmul_speed", lambda dev, shape: MatmulSpeed(shape, 100.0, 250.0, shape[0]))
    plans = [RunPlan(_refit_config(), tmp_path / "seed1", seed=1, limit=LIMIT, runtime=FP32),
             RunPlan(_refit_config(refit=both_refit), tmp_path / "seed0", seed=0, limit=LIMIT, runtime=FP32)]
    stream = io.StringIO()
    start = time.perf_counter()
    results = start_pack(plans, dataset=digits012, verbose=0 if both_refit else 1, stream=stream)
    elapsed = time.perf_counter() - start
    assert all(r.ok for r in results)
    ours = results[0].metrics
    assert results[0].history.column("val_loss") == pytest.approx(solo_refit.history.column("val_loss"), rel=1e-4)
    assert ours["kept_epoch"] == solo_refit.metrics["kept_epoch"]
    assert ours["refit"]["epochs"] == solo_refit.metrics["refit"]["epochs"] == ours["kept_epoch"]
    assert load_model(plans[0].out).class_names == ["0", "1", "2"]
    assert torch.allclose(_weights(plans[0].out), _weights(solo_refit.run.path), atol=1e-4)
    assert (results[1].metrics["refit"] is not None) == both_refit
    # durations are measured, not made up: the refit is part of the run's training time, within the call
    assert 0 < ours["refit"]["seconds"] < ours["train_seconds"] <= elapsed
    info = json.loads((plans[0].out / "run.json").read_text())
    assert info["pack"] == {"size": 2, "runs": [str(plan.out) for plan in plans]}
    assert info["runtime"]["precision"] == "fp32"
    assert capsys.readouterr().out == ""
    out = stream.getvalue()
    if both_refit:
        assert out == ""
    else:
        kept = ours["kept_epoch"]
        assert f"Refit 1 models on all {len(digits012.y_train)} training images for the epochs each kept\n" in out
        assert out.count(f"Epoch {kept}/{kept} - ") == 1  # the refit's own progress


def test_runs_trained_one_after_another_say_why_for_the_right_model(digits012, tmp_path, monkeypatch, capsys):
    """`auto` precision picks fp32 for the small model (too small to measure) and bf16 for the
    larger one; the runs cannot share a pack, and the line gives the first reason that is true."""
    monkeypatch.setattr(device, "cpu_has_bf16_units", lambda: True)
    runtime = resolve_runtime("cpu", "auto", None, probe=lambda dev, shape: MatmulSpeed(shape, 100.0, 250.0, shape[0]))
    plans = [RunPlan(_config(units, epochs=1), tmp_path / f"run{units}", limit=LIMIT, runtime=runtime)
             for units in (16, 64)]
    assert all(r.ok for r in start_pack(plans, dataset=digits012, verbose=1))
    out = capsys.readouterr().out
    assert "Training the 2 runs one after another: model 2 has other layer shapes than model 1\n" in out


def test_ctrl_c_in_a_pack_leaves_every_run_resumable_from_its_last_epoch(digits012, tmp_path):
    plans = [RunPlan(_config(epochs=3), tmp_path / f"seed{s}", seed=s, limit=LIMIT) for s in range(2)]
    results = start_pack(plans, dataset=digits012, verbose=0, callbacks=[(CtrlCAfterEpoch(1),), ()])
    for plan, result in zip(plans, results):
        assert not result.ok and result.signal == "SIGINT" and result.history.epochs_run == 1
        checkpoint = plan.out / "checkpoint.safetensors"
        assert checkpoint.is_file()
        assert result.message == (f"interrupted by SIGINT; the state after epoch 1 is saved in {checkpoint}."
                                  f" Resume with: mlplab train --resume {plan.out}")
        info = json.loads((plan.out / "run.json").read_text())
        # the time trained so far, which the resumed run adds to its own (each run waited for the whole pack)
        assert info["status"] == "interrupted" and info["train_seconds"] > 0
    assert len({json.loads((plan.out / "run.json").read_text())["train_seconds"] for plan in plans}) == 1


@pytest.mark.parametrize(("exc", "status", "message"), [
    (KeyboardInterrupt(), "interrupted", "interrupted; resume with: mlplab train --resume {out}"),
    (StorageError("disk full"), "failed", "disk full; once that is fixed, resume with: mlplab train --resume {out}"),
], ids=["ctrl-c", "storage"])
def test_a_pack_stopped_before_its_first_epoch_marks_every_run(digits012, tmp_path, exc, status, message):
    """Ctrl-C outside the training loop, or a file that cannot be written: every run says so in its
    run.json and result, with the command that resumes it."""
    plans = [RunPlan(_config(), tmp_path / f"seed{s}", seed=s, limit=LIMIT) for s in range(2)]
    results = start_pack(plans, dataset=digits012, verbose=0, callbacks=[(RaiseAtStart(exc),), ()])
    for plan, result in zip(plans, results):
        assert not result.ok and result.message == message.format(out=plan.out)
        assert json.loads((plan.out / "run.json").read_text())["status"] == status


def test_a_pack_that_meets_a_bug_marks_every_run_failed_and_raises_it(digits012, tmp_path):
    """An unexpected exception is not turned into a result (it is a bug to see), but no run.json is
    left saying "running" for ever."""
    plans = [RunPlan(_config(), tmp_path / f"seed{s}", seed=s, limit=LIMIT) for s in range(2)]
    with pytest.raises(RuntimeError, match="^a bug$"):
        start_pack(plans, dataset=digits012, verbose=0, callbacks=[(), (RaiseAtStart(RuntimeError("a bug")),)])
    for plan in plans:
        info = json.loads((plan.out / "run.json").read_text())
        assert info["status"] == "failed" and info["error"] == "RuntimeError: a bug" and info["failed"]


def test_plans_that_cannot_form_a_pack_are_refused_by_name(digits012, tmp_path):
    a, b = RunPlan(_config(), tmp_path / "a", limit=LIMIT), RunPlan(_config(), tmp_path / "b", limit=LIMIT // 2)
    with pytest.raises(ConfigError, match=f"^{re.escape(str(b.out))}: a pack's runs must share dataset, --limit and "
                                          f"data folder$"):
        start_pack([a, b], dataset=digits012)
    with pytest.raises(ValueError, match=r"^2 plans but 1 tuples of callbacks$"):
        start_pack([a, a], dataset=digits012, callbacks=[()])
    with pytest.raises(ConfigError, match=r"^two runs of the pack would share one run directory$"):
        start_pack([a, RunPlan(_config(), tmp_path / "a", seed=1, limit=LIMIT)], dataset=digits012)
    assert list(tmp_path.iterdir()) == []


def test_a_pack_validating_on_the_test_set_trains_on_every_training_image(digits012, tmp_path):
    plans = [RunPlan(_config(epochs=1), tmp_path / f"seed{s}", seed=s, validate_on="test", limit=LIMIT)
             for s in range(2)]
    for result in start_pack(plans, dataset=digits012, verbose=0):
        assert result.ok and result.metrics["validate_on"] == "test"
        assert result.metrics["train_samples"] == len(digits012.y_train)
        assert result.metrics["validation_samples"] == len(digits012.y_test)


def test_a_pack_replaces_its_finished_runs_when_told_to(digits012, tmp_path):
    plans = [RunPlan(_config(epochs=1), tmp_path / f"seed{s}", seed=s, limit=LIMIT) for s in range(2)]
    assert all(r.ok for r in start_pack(plans, dataset=digits012, verbose=0))
    again = [replace(plan, overwrite=True) for plan in plans]
    assert all(r.ok for r in start_pack(again, dataset=digits012, verbose=0))


def test_a_pack_loads_its_dataset_from_the_plans_folder_with_its_limit(data_dir, tmp_path):
    """Without a dataset handed in, the first plan's data folder and limit are read (the model file
    records where the data came from; MLPLAB_DATA_DIR points elsewhere)."""
    folder = tmp_path / "data"
    shutil.copytree(data_dir / "mnist", folder / "mnist")
    plans = [RunPlan(_config(epochs=1), tmp_path / f"seed{s}", seed=s, limit=LIMIT, data_dir=folder) for s in range(2)]
    for plan, result in zip(plans, start_pack(plans, verbose=0)):
        assert result.ok
        assert result.metrics["train_samples"] + result.metrics["validation_samples"] == LIMIT
        assert result.metrics["test_samples"] == LIMIT
        assert load_model(plan.out).description["dataset"]["source"].startswith(f"{folder / 'mnist'} ")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_a_pack_shows_the_live_bar_by_default(digits012, tmp_path):
    """start_pack's default verbosity is start_run's: on a terminal each epoch redraws a live bar."""
    plans = [RunPlan(_config(epochs=1), tmp_path / f"seed{s}", seed=s, limit=LIMIT) for s in range(2)]
    stream = Terminal()
    assert all(r.ok for r in start_pack(plans, dataset=digits012, stream=stream))
    assert "\r" in stream.getvalue()
