"""bf16 in the hand-written step, and `--precision auto`.

On a CPU without bf16 units (the 2-core AMD EPYC this was written on) bf16 is emulated: slow but
exact to bf16's rules, so every check here runs anywhere. Speed is the benchmark's business
(bench/bf16.py), never a test's.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mlplab.config import config_from_dict, load_config
from mlplab.data.preprocess import flatten_scale
from mlplab.model import build_model
from mlplab.model.spec import ModelSpec
from mlplab.training import device, fit, standard_callbacks
from mlplab.training.callbacks import Callback
from mlplab.training.device import MatmulSpeed, PrecisionChoice, measure_matmul_speed, resolve_runtime
from mlplab.training.flat_optim import WeightCopy
from mlplab.training.gradients import AutogradGradients, ManualGradients, make_gradients
from mlplab.training.losses import make_loss
from mlplab.training.optim import flatten_parameters


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def spec(*layers, output="softmax"):
    return ModelSpec.model_validate({"layers": list(layers), "output": {"activation": output}})


SPECS = {
    "one-hidden": spec({"type": "dense", "units": 7, "activation": "relu"}),
    "dropout": spec({"type": "dense", "units": 9, "activation": "relu"}, {"type": "dropout", "rate": 0.3},
                    {"type": "dense", "units": 5, "activation": "relu"}, {"type": "dropout", "rate": 0.15}),
    "input-dropout-linear": spec({"type": "dropout", "rate": 0.2}, {"type": "dense", "units": 6},
                                 {"type": "dense", "units": 4, "activation": "relu"}, output="linear"),
    "no-hidden": spec(),
}


def step_gradients(kind, precision, model_spec, x, y):
    """(loss, correct, flat gradient) of one step: the hand-written one, or autograd (under autocast in bf16)."""
    model = build_model(model_spec, x.shape[1], 4, seed=0)
    flat = flatten_parameters(model)
    model.seed_dropout(3)
    model.train()
    if kind == "manual":
        weights = WeightCopy(flat.detach()) if precision == "bf16" else None
        step = ManualGradients(model, 32, flat.grad, weights=weights)
    else:
        step = AutogradGradients(model, make_loss("categorical_crossentropy", "softmax"), flat.grad,
                                 resolve_runtime("cpu", precision))
    loss, correct = step(x, y)
    return float(loss), int(correct), flat.grad.clone()


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("rows", [32, 13], ids=["full-batch", "last-partial-batch"])
def test_bf16_step_gradients_match_autocast_and_stay_near_fp32(name, rows):
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(rows, 11, generator=generator)
    y = torch.randint(0, 4, (rows,), generator=generator)
    loss, correct, grad = step_gradients("manual", "bf16", SPECS[name], x, y)
    loss_ac, correct_ac, grad_ac = step_gradients("autograd", "bf16", SPECS[name], x, y)
    loss_32, _, grad_32 = step_gradients("autograd", "fp32", SPECS[name], x, y)
    assert grad.dtype == torch.float32 and grad.abs().sum() > 0
    # The same bf16 operations as autocast, in the same order: equal up to the products' own
    # rounding (exactly equal on the CPU this was written on; matrix units may sum differently).
    scale = grad_ac.abs().max()
    torch.testing.assert_close(grad, grad_ac, rtol=2 ** -7, atol=float(scale) * 2 ** -8)
    assert loss == pytest.approx(loss_ac, rel=1e-3) and correct == correct_ac
    # Against fp32: within what bf16's 8-bit mantissa allows (inputs, weights and activations each
    # rounded to 2^-9), relative to the gradient's size; sums that cancel lose more, element-wise.
    error = grad - grad_32
    assert float(error.norm()) <= 0.05 * float(grad_32.norm())  # autocast itself is off by up to 3.4 % here
    assert float(error.abs().max()) <= 0.1 * float(grad_32.abs().max())
    assert loss == pytest.approx(loss_32, rel=2e-2)
    # ... and truly bf16: not fp32 by accident.
    assert not torch.equal(grad, grad_32)


def _config(epochs=3, **training):
    return config_from_dict({
        "name": "t",
        "model": {"layers": [{"type": "dense", "units": 16, "activation": "relu"}, {"type": "dropout", "rate": 0.2},
                             {"type": "dense", "units": 8, "activation": "relu"}]},
        "training": {"batch_size": 32, "epochs": epochs, "optimizer": {"name": "adam", "learning_rate": 0.01},
                     **training},
    })


class CheckCopyAndGradients(Callback):
    """After every step: the bf16 copy is the master weights cast, and the step's gradients on the
    current weights are autocast's (a stale copy computes them on the previous weights)."""

    def __init__(self, x, y):
        self.x, self.y, self.checked = x, y, 0

    def on_batch_end(self, state, batch, running):
        copy = state.weight_copy
        assert copy is not None
        assert torch.equal(copy.copy, state.parameters.detach().to(torch.bfloat16)), f"stale bf16 copy at step {state.step}"
        if batch % 4:
            return
        model = state.model
        rng = [layer.rng.bit_generator.state for layer in model.dropout_layers()]
        state.gradients(self.x, self.y)
        manual = state.parameters.grad.clone()
        for layer, saved in zip(model.dropout_layers(), rng):
            layer.rng.bit_generator.state = saved  # the same masks for autograd
        AutogradGradients(model, make_loss("categorical_crossentropy", "softmax"), state.parameters.grad,
                          state.runtime)(self.x, self.y)
        torch.testing.assert_close(manual, state.parameters.grad, rtol=2 ** -7, atol=float(manual.abs().max()) * 2 ** -8)
        self.checked += 1


@pytest.mark.parametrize("max_norm", [None, 0.5], ids=["plain", "max-norm"])
def test_the_bf16_copy_follows_every_update(blobs, max_norm):
    (x, y), val = blobs
    cfg = _config(epochs=2, max_norm=max_norm)
    model = build_model(cfg.model, 20, 3, seed=0)
    check = CheckCopyAndGradients(x[:32], y[:32])
    history = fit(model, cfg.training, (x, y), val, runtime=resolve_runtime("cpu", "bf16"), callbacks=[check])
    assert check.checked >= 4 and history[-1]["val_accuracy"] > 0.9


@pytest.mark.parametrize("ema", [None, 0.9], ids=["plain", "ema"])
def test_bf16_checkpoint_and_resume_are_bit_identical(blobs, interrupt_after, tmp_path, ema):
    """Resuming reloads the fp32 master weights; the bf16 copy must be made from them, not kept from the
    fresh model, nor from the weight average the model holds between epochs."""
    train, val = blobs
    cfg = _config(epochs=4, ema=ema)
    runtime = resolve_runtime("cpu", "bf16")
    straight = build_model(cfg.model, 20, 3)
    fit(straight, cfg.training, train, val, runtime=runtime, callbacks=standard_callbacks(cfg.training, verbose=0))
    path = tmp_path / "checkpoint.safetensors"
    first = build_model(cfg.model, 20, 3)
    history = fit(first, cfg.training, train, val, runtime=runtime,
                  callbacks=[*standard_callbacks(cfg.training, checkpoint_path=path, verbose=0), interrupt_after(2)])
    assert history.interrupted == "SIGINT"
    resumed = build_model(cfg.model, 20, 3, seed=99)  # other initial weights: the checkpoint must replace them
    history = fit(resumed, cfg.training, train, val, runtime=runtime, resume_from=path,
                  callbacks=standard_callbacks(cfg.training, checkpoint_path=path, verbose=0))
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    for key, value in straight.state_dict().items():
        assert value.dtype == torch.float32  # master weights stay fp32
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_bf16_on_real_mnist_keeps_fp32_accuracy(mnist):
    """A short real run: 4,000 training images, 3 epochs, scored on 2,000 test images.

    The gate is 0.5 points (10 of the 2,000 images): both runs see the same images in the same
    order with the same dropout masks, so what differs is bf16's rounding alone; on this slice the
    two runs' accuracies differed by 0.05, 0.15 and 0.25 points for seeds 0, 1 and 2 when this was written.
    """
    train = (flatten_scale(mnist.x_train[:4000]), mnist.y_train[:4000].astype(np.int64))
    test = (flatten_scale(mnist.x_test[:2000]), mnist.y_test[:2000].astype(np.int64))
    cfg = config_from_dict({
        "name": "t",
        "model": {"layers": [{"type": "dense", "units": 64, "activation": "relu"}, {"type": "dropout", "rate": 0.1}]},
        "training": {"batch_size": 128, "epochs": 3, "optimizer": {"name": "adam", "learning_rate": 0.002}},
    })
    accuracy = {}
    for precision in ("fp32", "bf16"):
        model = build_model(cfg.model, 784, 10, seed=0)
        history = fit(model, cfg.training, train, test, runtime=resolve_runtime("cpu", precision))
        accuracy[precision] = history[-1]["val_accuracy"]
    assert accuracy["fp32"] > 0.85 and accuracy["bf16"] > 0.85  # it learned (about 0.87 after 94 steps)
    assert abs(accuracy["bf16"] - accuracy["fp32"]) <= 0.005, accuracy


# --precision auto ---------------------------------------------------------------------------

def fake_probe(speedup, calls=None):
    def probe(dev, shape):
        if calls is not None:
            calls.append(shape)
        return MatmulSpeed(shape, 100.0, 100.0 * speedup, shape[0])
    return probe


TUTORIAL_512 = spec({"type": "dense", "units": 512, "activation": "relu"}, {"type": "dense", "units": 512, "activation": "relu"})


@pytest.mark.parametrize(("speedup", "expected"), [(3.0, "bf16"), (1.3, "bf16"), (1.1, "fp32"), (0.5, "fp32")])
def test_auto_picks_bf16_only_where_the_probe_finds_it_clearly_faster(monkeypatch, speedup, expected):
    monkeypatch.setattr(device, "cpu_has_bf16_units", lambda: True)
    calls = []
    runtime = resolve_runtime("cpu", "auto", 1, probe=fake_probe(speedup, calls))
    assert runtime.precision == "auto" and runtime.autocast().__class__.__name__ == "nullcontext"
    model = build_model(TUTORIAL_512, 784, 10)
    chosen = runtime.for_model(model, 128)
    assert chosen.precision == expected and calls == [(128, 784, 512)]  # the largest product, at the batch size
    assert chosen.for_model(model, 128) is chosen  # decided once
    runtime.for_model(model, 128)
    assert len(calls) == 1  # the same shape is not measured twice in one process
    record = chosen.record()
    assert record["precision"] == expected and record["precision_requested"] == "auto"
    probe = record["precision_choice"]["probe"]
    assert probe["fp32_gflops"] == 100.0 and probe["bf16_gflops"] == pytest.approx(100.0 * speedup)
    assert record["precision_choice"]["how"] == "probe" and record["precision_choice"]["chosen"] == expected
    assert bool(chosen.notes()) == (expected == "bf16")  # bf16 by choice is news; fp32 is not


def test_auto_does_not_probe_where_bf16_cannot_pay(monkeypatch):
    never = fake_probe(10.0, calls := [])
    monkeypatch.setattr(device, "cpu_has_bf16_units", lambda: False)
    chosen = resolve_runtime("cpu", "auto", probe=never).for_model(build_model(TUTORIAL_512, 784, 10), 128)
    assert chosen.precision == "fp32" and chosen.choice.how == "emulated"
    monkeypatch.setattr(device, "cpu_has_bf16_units", lambda: True)
    tiny = build_model(spec({"type": "dense", "units": 16, "activation": "relu"}), 64, 3)
    chosen = resolve_runtime("cpu", "auto", probe=never).for_model(tiny, 32)
    assert chosen.precision == "fp32" and chosen.choice.how == "too-small" and calls == []
    # An explicit choice is never second-guessed, and bf16 without units still warns.
    explicit = resolve_runtime("cpu", "bf16", probe=never).for_model(tiny, 32)
    assert explicit.precision == "bf16" and explicit.choice == PrecisionChoice("bf16", "bf16", "explicit", units=explicit.choice.units)
    monkeypatch.setattr(device, "cpu_has_bf16_units", lambda: False)
    assert explicit.warnings() and not chosen.warnings()


def test_the_real_probe_measures_both_precisions_and_chooses_validly(monkeypatch):
    torch.set_num_threads(1)
    speed = measure_matmul_speed(torch.device("cpu"), (128, 784, 64))
    assert speed.shape == (128, 784, 64) and speed.rows_timed in (device.SCREEN_ROWS, 128)
    assert 0 < speed.fp32_gflops < float("inf") and 0 < speed.bf16_gflops < float("inf")
    monkeypatch.setattr(device, "cpu_has_bf16_units", lambda: True)  # probe even where bf16 is emulated
    chosen = resolve_runtime("cpu", "auto", 1).for_model(build_model(spec({"type": "dense", "units": 64}), 784, 10), 128)
    assert chosen.precision in ("fp32", "bf16") and chosen.choice.how == "probe"
    assert chosen.precision == ("bf16" if chosen.choice.speed.bf16_pays else "fp32")
    assert torch.get_num_threads() == 1


def test_make_gradients_decides_an_undecided_runtime(monkeypatch):
    monkeypatch.setattr(device, "cpu_has_bf16_units", lambda: True)
    model = build_model(TUTORIAL_512, 784, 10)
    flat = flatten_parameters(model)
    runtime = resolve_runtime("cpu", "auto", probe=fake_probe(3.0))
    step = make_gradients(model, "categorical_crossentropy", make_loss("categorical_crossentropy", "softmax"),
                          flat.grad, runtime, 128, parameters=flat)
    assert isinstance(step, ManualGradients) and step.weight_copy is not None


def test_run_json_records_requested_chosen_and_the_probe(monkeypatch, mnist, tmp_path):
    from mlplab.runs import train_run

    monkeypatch.setattr(device, "cpu_has_bf16_units", lambda: True)
    config = load_config("tutorial-50-25").with_overrides({"training.epochs": 1})
    runtime = resolve_runtime("cpu", "auto", 1, probe=fake_probe(2.5))
    result = train_run(config, out=tmp_path / "run", dataset=mnist.subset(train=600, test=600), runtime=runtime,
                       verbose=0)
    assert result.ok, result.message
    recorded = json.loads((tmp_path / "run" / "run.json").read_text())["runtime"]
    assert recorded["precision"] == "bf16" and recorded["precision_requested"] == "auto"
    assert recorded["gradients"] == "hand-written"
    choice = recorded["precision_choice"]
    assert choice["how"] == "probe" and choice["chosen"] == "bf16"
    assert choice["probe"]["shape"] == [config.training.batch_size, 784, 50]
    assert choice["probe"]["bf16_speedup"] == 2.5 and choice["probe"]["min_speedup"] == device.BF16_MIN_SPEEDUP
    assert result.metrics["test_accuracy"] > 0.2  # it learned (chance is 0.1; 5 steps of RMSprop)


def _interrupted_run(config, data, runtime, interrupt_after, tmp_path):
    """The same run straight and interrupted after epoch 1: (straight result, the interrupted run's folder)."""
    from mlplab.runs import train_run

    straight = train_run(config, out=tmp_path / "straight", dataset=data, runtime=runtime, verbose=0)
    stopped = train_run(config, out=tmp_path / "run", dataset=data, runtime=runtime, verbose=0,
                        callbacks=(interrupt_after(1),))
    assert not stopped.ok
    return straight, tmp_path / "run"


def _same_model(run, straight):
    return (run / "model.safetensors").read_bytes() == (straight.run.path / "model.safetensors").read_bytes()


def test_a_resumed_auto_run_keeps_the_precision_it_started_with(monkeypatch, mnist, interrupt_after, tmp_path):
    """The probe chose bf16 when the run started; on resume a new probe would choose fp32 (on a CPU
    without bf16 units it always does), but the run must go on in bf16 and end as an uninterrupted one."""
    from mlplab.runs import resume_run

    monkeypatch.setattr(device, "cpu_has_bf16_units", lambda: True)
    config = load_config("tutorial-50-25").with_overrides({"training.epochs": 2, "training.validation_split": 0.0})
    fast_bf16 = resolve_runtime("cpu", "auto", 1, probe=fake_probe(2.5))
    data = mnist.subset(train=500, test=500)
    straight, run = _interrupted_run(config, data, fast_bf16, interrupt_after, tmp_path)
    slow_bf16 = resolve_runtime("cpu", "auto", 1, probe=fake_probe(0.5))
    resumed = resume_run(run, dataset=data, runtime=slow_bf16, verbose=0,
                         callbacks=(interrupt_after(99),))  # the callbacks it was checkpointed with
    assert resumed.ok, resumed.message
    recorded = json.loads((run / "run.json").read_text())["runtime"]
    assert recorded["precision"] == "bf16"
    assert resumed.metrics["test_loss"] == straight.metrics["test_loss"]
    assert _same_model(run, straight)


def test_evaluate_run_scores_a_bf16_run_in_bf16(data_dir, tmp_path):
    from mlplab.runs import evaluate_run, train_run

    config = load_config("tutorial-50-25").with_overrides({"training.epochs": 1})
    result = train_run(config, out=tmp_path / "run", dataset="mnist", limit=600,
                       runtime=resolve_runtime("cpu", "bf16", 1), verbose=0)
    scores = evaluate_run(tmp_path / "run")
    assert scores["test_loss"] == result.metrics["test_loss"]  # bf16 again: fp32 differs in the last digits
    assert scores["test_accuracy"] == result.metrics["test_accuracy"]


def test_a_bf16_run_resumed_without_a_runtime_goes_on_in_bf16(mnist, interrupt_after, tmp_path):
    """resume_run(path) takes the precision from run.json, not fp32 (issue 15: run.json's precision
    read under a wrong key survived, as no resume of a bf16 run left the runtime to run.json)."""
    from mlplab.runs import resume_run

    config = load_config("tutorial-50-25").with_overrides({"training.epochs": 2, "training.validation_split": 0.0})
    data = mnist.subset(train=500, test=500)
    straight, run = _interrupted_run(config, data, resolve_runtime("cpu", "bf16", 1), interrupt_after, tmp_path)
    resumed = resume_run(run, dataset=data, verbose=0, callbacks=(interrupt_after(99),))
    assert resumed.ok, resumed.message
    assert json.loads((run / "run.json").read_text())["runtime"]["precision"] == "bf16"
    assert resumed.metrics["test_loss"] == straight.metrics["test_loss"] and _same_model(run, straight)


def test_a_run_json_without_a_precision_resumes_in_fp32_even_where_auto_would_choose_bf16(
        monkeypatch, mnist, interrupt_after, tmp_path):
    """Runs from before the precision was recorded trained in fp32: an "auto" runtime given to the
    resume must not measure again and switch to bf16 halfway."""
    from mlplab.runs import resume_run

    monkeypatch.setattr(device, "cpu_has_bf16_units", lambda: True)
    config = load_config("tutorial-50-25").with_overrides({"training.epochs": 2, "training.validation_split": 0.0})
    data = mnist.subset(train=500, test=500)
    straight, run = _interrupted_run(config, data, resolve_runtime("cpu", "fp32", 1), interrupt_after, tmp_path)
    info = json.loads((run / "run.json").read_text())
    del info["runtime"]["precision"]
    (run / "run.json").write_text(json.dumps(info))
    bf16_wins = resolve_runtime("cpu", "auto", 1, probe=fake_probe(2.5))
    assert bf16_wins.for_model(build_model(config.model, 784, 10), 128).precision == "bf16"  # what a new choice gives
    resumed = resume_run(run, dataset=data, runtime=bf16_wins, verbose=0, callbacks=(interrupt_after(99),))
    assert resumed.ok, resumed.message
    assert resumed.metrics["test_loss"] == straight.metrics["test_loss"] and _same_model(run, straight)  # epoch 2 in fp32


def test_the_refit_trains_on_the_runs_runtime(monkeypatch, mnist, tmp_path):
    """The refit on all training data gets the run's runtime (its precision and threads), as the
    validation run does; without one, fit would decide again for itself."""
    import mlplab.runs.lifecycle as lifecycle
    from mlplab.runs import train_run

    runtimes, real_fit = [], lifecycle.fit

    def spy(*args, **kwargs):
        runtimes.append(kwargs.get("runtime"))
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(lifecycle, "fit", spy)
    config = load_config("tutorial-50-25").with_overrides({"training.epochs": 1, "training.refit": True})
    bf16 = resolve_runtime("cpu", "bf16", 1)
    result = train_run(config, out=tmp_path / "run", dataset=mnist.subset(train=500, test=100), runtime=bf16, verbose=0)
    assert result.ok and len(runtimes) == 2  # the validation run, then the refit
    assert all(runtime is not None and runtime.precision == "bf16" and runtime.threads.threads == 1 for runtime in runtimes)
