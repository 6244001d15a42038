"""Every training default is Keras's (or the tutorial's), so numbers from Keras tutorials carry over."""

from __future__ import annotations

import pytest
import torch

from mlplab.training.config import SGD, Adam, AdamW, EarlyStopping, RMSprop, Schedule, TrainingConfig
from mlplab.training.optim import make_optimizer


def test_optimizer_defaults_are_kerass():
    assert RMSprop().model_dump() == {
        "name": "rmsprop", "learning_rate": 1e-3, "rho": 0.9, "momentum": 0.0, "epsilon": 1e-7, "weight_decay": 0.0,
    }
    assert Adam().model_dump() == {
        "name": "adam", "learning_rate": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "weight_decay": 0.0,
    }
    # keras.optimizers.AdamW(learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-07)
    assert AdamW().model_dump() == {
        "name": "adamw", "learning_rate": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "weight_decay": 0.004,
    }
    assert SGD().model_dump() == {
        "name": "sgd", "learning_rate": 1e-2, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0,
    }


def test_adamw_default_decay_reaches_the_optimizer_and_is_decoupled():
    p = torch.nn.Parameter(torch.ones(3))
    for params in ([p], [torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))]):
        optimizer = make_optimizer(params, AdamW())
        assert optimizer.param_groups[0]["weight_decay"] == 0.004
    # one step with a zero gradient: only the decoupled decay moves the weights, by lr * wd * w
    p.grad = torch.zeros(3)
    optimizer = make_optimizer([p], AdamW())
    optimizer.step()
    torch.testing.assert_close(p.detach(), torch.full((3,), 1 - 1e-3 * 0.004))


def test_training_and_early_stopping_defaults():
    config = TrainingConfig()
    assert (config.loss, config.batch_size, config.epochs, config.shuffle, config.seed) == (
        "categorical_crossentropy", 32, 1, True, 0,
    )
    assert (config.validation_split, config.early_stopping, config.refit) == (0.1, None, False)
    assert config.optimizer == RMSprop() and config.schedule == Schedule()
    es = EarlyStopping()
    assert (es.monitor, es.mode, es.patience, es.min_delta, es.restore_best_weights) == ("val_loss", "auto", 3, 0.0, True)
    assert es.resolved_mode == "min"
    assert EarlyStopping(monitor="val_accuracy").resolved_mode == "max"
    assert EarlyStopping(monitor="accuracy").resolved_mode == "max"
    assert EarlyStopping(monitor="val_accuracy", mode="min").resolved_mode == "min"


def test_schedule_defaults():
    assert Schedule().model_dump() == {
        "name": "constant", "step_size": 10, "gamma": 0.1, "min_learning_rate": 0.0,
        "max_learning_rate": None, "warmup_fraction": 0.3, "warmup_epochs": 0.0,
    }


def test_a_monitor_that_needs_validation_data_refuses_a_zero_split():
    with pytest.raises(ValueError, match="early_stopping.monitor = 'val_loss' needs validation data, but validation_split = 0"):
        TrainingConfig(early_stopping=EarlyStopping(), validation_split=0)
    TrainingConfig(early_stopping=EarlyStopping(monitor="loss"), validation_split=0)
