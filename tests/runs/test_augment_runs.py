"""A run with augmentation, label smoothing, max-norm, input dropout, warm-up and the weight average:
resumable bit for bit, recorded, and the hand-written step runs it."""

from __future__ import annotations

import json

import torch

from mlplab.config import config_from_dict
from mlplab.runs import StopCause, resume_run, train_run
from mlplab.training.callbacks import NanGuard

LIMIT = 1000


def small(input_dropout=0.0, **training):
    return config_from_dict({
        "name": "small",
        "model": {"layers": [{"type": "dropout", "rate": input_dropout}] * (input_dropout > 0)
                  + [{"type": "dense", "units": 32, "activation": "relu"}]},
        "training": {"batch_size": 64, "epochs": 3, "optimizer": {"name": "adam"}, **training},
    })


def weights(run_dir):
    return (run_dir / "model.safetensors").read_bytes()


def regularised():
    return small(epochs=3, label_smoothing=0.1, max_norm=2.0, input_dropout=0.2, ema=0.99,
                 schedule={"name": "cosine", "warmup_epochs": 0.5},
                 augment={"shift": 2.0, "rotate": 10.0, "scale": 0.1, "elastic_alpha": 20.0, "elastic_sigma": 4.0})


def test_ctrl_c_after_epoch_1_then_resume_equals_an_uninterrupted_run(mnist, tmp_path, monkeypatch, signal_when):
    data = mnist.subset(LIMIT, LIMIT)
    straight = train_run(regularised(), out=tmp_path / "straight", dataset=data, limit=LIMIT, verbose=0)
    assert straight.cause is StopCause.COMPLETED
    with monkeypatch.context() as patch:
        signal_when(patch, NanGuard, lambda state, row: state.epoch == 1)
        result = train_run(regularised(), out=tmp_path / "r", dataset=data, limit=LIMIT, verbose=0)
    assert result.cause is StopCause.INTERRUPTED
    resumed = resume_run(tmp_path / "r", dataset=data, verbose=0)
    assert resumed.cause is StopCause.COMPLETED
    assert weights(tmp_path / "r") == weights(tmp_path / "straight")
    info = json.loads((tmp_path / "straight" / "run.json").read_text())
    assert info["runtime"]["gradients"] == "hand-written"  # all of them happen before or after the fast step
    assert info["config"]["training"]["augment"]["rotate"] == 10.0


def test_augmentation_changes_the_trained_model(mnist, tmp_path):
    data = mnist.subset(LIMIT, LIMIT)
    train_run(small(epochs=1), out=tmp_path / "plain", dataset=data, limit=LIMIT, verbose=0)
    train_run(small(epochs=1, augment={"shift": 2.0}), out=tmp_path / "aug", dataset=data, limit=LIMIT, verbose=0)
    assert weights(tmp_path / "plain") != weights(tmp_path / "aug")


def test_the_saved_model_is_the_weight_average(mnist, tmp_path):
    from mlplab.safeio import load_tensors

    data = mnist.subset(LIMIT, LIMIT)
    train_run(small(epochs=2, ema=0.99), out=tmp_path / "r", dataset=data, limit=LIMIT, verbose=0)
    saved, _ = load_tensors(tmp_path / "r" / "model.safetensors")
    checkpoint, _ = load_tensors(tmp_path / "r" / "checkpoint.safetensors")
    flat = torch.cat([saved[k].reshape(-1) for k in sorted(saved)])
    assert flat.numel() == checkpoint["ema.training"].numel()
    for key, value in saved.items():
        assert torch.equal(value, checkpoint[f"model.{key}"]), key  # the model is the average …
    average = torch.cat([checkpoint[f"model.{k}"].reshape(-1) for k in saved])
    assert not torch.equal(average, checkpoint["ema.training"])  # … not the training weights
