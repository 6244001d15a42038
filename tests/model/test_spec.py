"""Config validation: precise messages, unknown keys refused, overrides typed and validated."""

from __future__ import annotations

import pytest

from mlplab.config import ExperimentConfig, config_from_dict, load_config, parse_assignments, shipped_configs
from mlplab.errors import ConfigError
from mlplab.model.spec import Dense, Dropout, ModelSpec

BASE = {
    "name": "m",
    "model": {"layers": [{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dropout", "rate": 0.2}]},
}


def with_change(path: list, value) -> dict:
    import copy

    raw = copy.deepcopy(BASE)
    node = raw
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(key, str) else node[key]
    node[path[-1]] = value
    return raw


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["model", "layers", 1, "rate"], 1.5, "model.layers[1].rate must be in [0, 1), got 1.5"),
        (["model", "layers", 0, "units"], 0, "model.layers[0].units must be a positive integer, got 0"),
        (["model", "layers", 0, "unit"], 3, "model.layers[0].unit is not a known key"),
        (["model", "layers", 0, "activation"], "rleu", "model.layers[0].activation must be one of"),
        (["model", "layers", 0, "type"], "conv", "model.layers[0] type must be one of 'dense', 'dropout', 'batch_norm', got 'conv'"),
        (["training", "batch_size"], 0, "training.batch_size must be a positive integer, got 0"),
        (["training", "optimizer"], {"name": "adam", "beta_1": 1.0}, "training.optimizer.beta_1 must be in [0, 1), got 1.0"),
        (["training", "optimizer"], {"name": "adagrad"}, "training.optimizer name must be one of"),
        (["training", "early_stopping"], {"patience": -1}, "training.early_stopping.patience must be a finite number >= 0, got -1"),
        (["training", "epocs"], 3, "training.epocs is not a known key"),
        (["colour"], "red", "colour is not a known key"),
    ],
)
def test_invalid_configs_name_the_key_and_value(path, value, message):
    with pytest.raises(ConfigError) as info:
        config_from_dict(with_change(path, value))
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_dense_requires_units():
    with pytest.raises(ConfigError, match=r"model.layers\[0\].units is required"):
        config_from_dict({"model": {"layers": [{"type": "dense"}]}})


def test_early_stopping_on_validation_needs_a_split():
    with pytest.raises(ConfigError, match="needs validation data"):
        config_from_dict(with_change(["training"], {"validation_split": 0.0, "early_stopping": {"monitor": "val_loss"}}))


def test_overrides_are_typed_and_validated():
    cfg = config_from_dict(BASE)
    changed = cfg.with_overrides(["training.epochs=3", "model.layers[0].units=16", "training.optimizer.name=adam"])
    assert changed.training.epochs == 3
    assert changed.model.layers[0].units == 16
    assert changed.training.optimizer.name == "adam"
    assert changed.training.optimizer.beta_1 == 0.9  # Keras default filled in
    with pytest.raises(ConfigError, match=r"model.layers\[1\].rate must be in \[0, 1\), got 2.0"):
        cfg.with_overrides(["model.layers[1].rate=2.0"])
    with pytest.raises(ConfigError, match="no such key"):
        cfg.with_overrides(["model.layers[5].rate=0.1"])
    with pytest.raises(ConfigError, match="key=value"):
        parse_assignments(["training.epochs"])


def test_override_can_remove_an_optional_section():
    cfg = load_config("tutorial-512-512").with_overrides({"training.early_stopping": "none"})
    assert cfg.training.early_stopping is None


def test_python_objects_round_trip_through_toml(tmp_path):
    cfg = ExperimentConfig(name="py", model=ModelSpec(layers=[Dense(units=4, activation="tanh"), Dropout(rate=0.1)]))
    path = tmp_path / "c.toml"
    path.write_text(cfg.to_toml())
    assert load_config(path) == cfg


def test_unknown_config_name_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match="tutorial-50-25"):
        load_config("no-such-config")


def test_invalid_toml_is_a_config_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("name = [unclosed")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_shipped_tutorial_configs_have_the_tutorials_settings():
    assert {"tutorial-50-25", "tutorial-512-512", "tutorial-128-64"} <= set(shipped_configs())
    small = load_config("tutorial-50-25")
    assert small.model.dense_units == [50, 25]
    assert (small.training.optimizer.name, small.training.epochs, small.training.batch_size) == ("rmsprop", 5, 128)
    assert small.training.early_stopping is None
    wide = load_config("tutorial-512-512")
    assert wide.model.dense_units == [512, 512]
    assert [layer.rate for layer in wide.model.layers if isinstance(layer, Dropout)] == [0.2, 0.2]
    assert (wide.training.optimizer.name, wide.training.epochs, wide.training.early_stopping.patience) == ("adam", 200, 3)
    medium = load_config("tutorial-128-64")
    assert medium.model.dense_units == [128, 64]
    assert [layer.rate for layer in medium.model.layers if isinstance(layer, Dropout)] == [0.15, 0.15]
    assert medium.training.early_stopping is not None


def test_keras_optimizer_defaults():
    from mlplab.training.config import SGD, Adam, RMSprop

    assert (RMSprop().learning_rate, RMSprop().rho, RMSprop().epsilon) == (1e-3, 0.9, 1e-7)
    assert (Adam().learning_rate, Adam().beta_1, Adam().beta_2, Adam().epsilon) == (1e-3, 0.9, 0.999, 1e-7)
    assert SGD().learning_rate == 1e-2
    with pytest.raises(ValueError, match="nesterov"):
        SGD(nesterov=True)


def test_every_shipped_config_loads_and_round_trips(tmp_path):
    for name, path in shipped_configs().items():
        cfg = load_config(path)
        assert cfg.name == name
        copy = tmp_path / f"{name}.toml"
        copy.write_text(cfg.to_toml())
        assert load_config(copy) == cfg


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["training", "epochs"], True, "training.epochs must be an integer, got True"),
        (["training", "batch_size"], "128", "training.batch_size must be an integer, got '128'"),
        (["training", "batch_size"], 128.0, "training.batch_size must be an integer, got 128.0"),
        (["training", "seed"], 1.5, "training.seed must be an integer, got 1.5"),
        (["training", "shuffle"], 1, "training.shuffle must be true or false, got 1"),
        (["training", "validation_split"], "0.1", "training.validation_split must be a number, got '0.1'"),
        (["training", "optimizer"], {"name": "adam", "learning_rate": "0.01"},
         "training.optimizer.learning_rate must be a number, got '0.01'"),
        (["training", "optimizer"], {"name": "sgd", "nesterov": "yes", "momentum": 0.9},
         "training.optimizer.nesterov must be true or false, got 'yes'"),
        (["training", "early_stopping"], {"patience": 2.0}, "training.early_stopping.patience must be an integer, got 2.0"),
        (["training", "schedule"], {"name": "step", "step_size": True}, "training.schedule.step_size must be an integer, got True"),
    ],
)
def test_training_types_are_strict(path, value, message):
    with pytest.raises(ConfigError) as info:
        config_from_dict(with_change(path, value))
    assert message in str(info.value)


def test_an_integer_is_still_a_number():
    cfg = config_from_dict(with_change(["training", "optimizer"], {"name": "sgd", "learning_rate": 1}))
    assert cfg.training.optimizer.learning_rate == 1.0
