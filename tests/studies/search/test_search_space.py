"""Search spaces: loading, load-time errors that name the key, conditional keys, trial configs."""

from __future__ import annotations

import pytest

optuna = pytest.importorskip("optuna", reason="the [search] extra (optuna) is not installed")

from mlplab.errors import ConfigError  # noqa: E402
from mlplab.studies.search.objectives import parse_objectives  # noqa: E402
from mlplab.studies.search.space import load_space, shipped_spaces, space_from_dict  # noqa: E402

BASE = {"base": "tutorial-128-64"}


def test_tutorial_space_ships_and_matches_the_issue():
    assert "tutorial-space" in shipped_spaces()
    space = load_space("tutorial-space")
    assert (space.layer_count.low, space.layer_count.high) == (1, 3)
    assert (space.units.low, space.units.high, space.units.log) == (16, 1024, True)
    keys = {r.key: r for r in space.params}
    assert set(keys["training.optimizer.name"].choices) == {"adam", "rmsprop"}
    assert keys["training.batch_size"].choices == (64, 128, 256, 512)
    assert space.base.training.refit is False  # trials are validation runs; the front is refit at the end


def test_the_space_is_not_listed_as_a_config():
    from mlplab.config import shipped_configs

    assert "tutorial-space" not in shipped_configs()


def _sample_many(space, n=30):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    out = []
    for _ in range(n):
        trial = study.ask()
        chosen = space.sample(trial)
        out.append((trial, chosen, space.config_for(chosen, name="t")))
        study.tell(trial, 0.0)
    return out


def test_layer_k_units_are_searched_only_with_at_least_k_layers():
    space = load_space("tutorial-space")
    counts = set()
    for trial, chosen, config in _sample_many(space):
        count = chosen["layers.count"]
        counts.add(count)
        assert {k for k in trial.params if k.endswith(".units")} == {f"layers.{k}.units" for k in range(1, count + 1)}
        assert config.model.dense_units == [chosen[f"layers.{k}.units"] for k in range(1, count + 1)]
        assert all(16 <= u <= 1024 for u in config.model.dense_units)
        assert config.training.optimizer.name == chosen["training.optimizer.name"]
        assert config.training.optimizer.learning_rate == chosen["training.optimizer.learning_rate"]
    assert counts == {1, 2, 3}


def test_when_makes_a_key_conditional_on_another_choice():
    space = space_from_dict({**BASE, "params": {
        "training.optimizer.name": {"choices": ["adam", "sgd"]},
        "training.optimizer.momentum": {"low": 0.0, "high": 0.9, "when": {"training.optimizer.name": "sgd"}},
    }})
    for trial, chosen, config in _sample_many(space):
        assert ("training.optimizer.momentum" in trial.params) == (chosen["training.optimizer.name"] == "sgd")
        if config.training.optimizer.name == "sgd":
            assert config.training.optimizer.momentum == chosen["training.optimizer.momentum"]


@pytest.mark.parametrize("raw, message", [
    ({**BASE, "sampler": "tpe"}, "sampler is not a known key"),
    ({"layers": {}}, "base is required"),
    ({**BASE, "params": {"training.learning_rate": {"low": 1e-4, "high": 1e-2}}}, "'training.learning_rate'"),
    ({**BASE, "params": {"training.optimizer.learning_rate": {"low": 1e-2, "high": 1e-4}}}, "low 0.01 is above high 0.0001"),
    ({**BASE, "params": {"training.optimizer.learning_rate": {"low": 0.0, "high": 1e-2, "log": True}}}, "log range needs low > 0"),
    ({**BASE, "params": {"training.batch_size": {"low": 0, "high": 64}}}, "'training.batch_size' = 0 is refused"),
    ({**BASE, "params": {"training.batch_size": {"choices": []}}}, "choices must be a non-empty list"),
    ({**BASE, "params": {"training.batch_size": {"low": 1, "high": 9, "typo": 1}}}, "typo is not a known key"),
    ({**BASE, "layers": {"count": {"low": 0, "high": 2}, "units": {"low": 8, "high": 9}}}, "layers.count must be at least 1"),
    ({**BASE, "layers": {"count": {"low": 1, "high": 2}, "units": {"low": 8, "high": 9}, "dropout": {"low": 0.0, "high": 1.5}}}, "layers.dropout must be in [0, 1)"),
    ({**BASE, "layers": {"count": {"low": 1, "high": 2}}}, "layers.units is required"),
    ({**BASE, "fixed": {"training.epoch": 3}}, "fixed"),
    ({**BASE, "params": {"training.optimizer.momentum": {"low": 0.0, "high": 0.9, "when": {"training.optimizer.name": "sgd"}}}},
     "not searched before it"),
])
def test_bad_spaces_fail_at_load_time_naming_the_key(raw, message):
    with pytest.raises(ConfigError) as err:
        space_from_dict(raw, source="space.toml")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_objectives_parse_and_refuse_unknown_costs():
    assert parse_objectives(None) == ("train_flops",)
    assert parse_objectives("params, seconds") == ("params", "seconds")
    with pytest.raises(ConfigError, match="unknown cost 'flops'"):
        parse_objectives("flops")


@pytest.mark.parametrize("command", ["search", "search-report"])
def test_search_help_states_every_default(capsys, monkeypatch, command):
    from mlplab.cli.main import main

    monkeypatch.setenv("COLUMNS", "300")
    assert main([command, "--help"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines()
            if line.lstrip("│ *").startswith("--") and "--help" not in line]
    assert rows
    for row in rows:
        assert "[default: " in row or "[required]" in row, row
