"""`runs.pack.start_pack`: several plans trained together, one run directory each (real MNIST slices)."""

from __future__ import annotations

import json

import pytest

from mlplab.config import config_from_dict
from mlplab.errors import ConfigError
from mlplab.runs import RunPlan, load_run_dataset, start_run
from mlplab.runs.pack import start_pack

LIMIT = 800


def _config(units=32, **training):
    return config_from_dict({
        "name": "small", "model": {"layers": [{"type": "dense", "units": units, "activation": "relu"}]},
        "training": {"batch_size": 64, "epochs": 2, "optimizer": {"name": "adam", "learning_rate": 0.001}, **training},
    })


@pytest.fixture(scope="module")
def dataset(data_dir):
    return load_run_dataset("mnist", data_dir=data_dir, limit=LIMIT)


def test_models_that_cannot_share_a_pack_are_started_one_after_another(dataset, tmp_path, capsys):
    plans = [RunPlan(_config(32), tmp_path / "a", limit=LIMIT), RunPlan(_config(48), tmp_path / "b", limit=LIMIT)]
    results = start_pack(plans, dataset=dataset, verbose=1)
    assert "one after another: model 2 has other layer shapes" in capsys.readouterr().out
    assert [r.ok for r in results] == [True, True]
    for plan in plans:
        info = json.loads((plan.out / "run.json").read_text())
        assert "pack" not in info and info["status"] == "finished"


def test_a_packed_run_scores_as_its_solo_run(dataset, tmp_path):
    plans = [RunPlan(_config(refit=True), tmp_path / f"seed{s}", seed=s, limit=LIMIT) for s in range(3)]
    results = start_pack(plans, dataset=dataset, verbose=0)
    solo = start_run(RunPlan(_config(refit=True), tmp_path / "solo", seed=2, limit=LIMIT), dataset=dataset, verbose=0)
    assert all(r.ok for r in results)
    assert json.loads((plans[2].out / "run.json").read_text())["pack"]["size"] == 3
    assert abs(results[2].metrics["test_accuracy"] - solo.metrics["test_accuracy"]) <= 0.001
    assert results[2].metrics["refit"]["epochs"] == solo.metrics["refit"]["epochs"]
    assert results[2].history.column("val_loss") == pytest.approx(solo.history.column("val_loss"), rel=1e-4)


def test_two_plans_into_one_folder_are_refused_before_anything_is_made(dataset, tmp_path):
    plans = [RunPlan(_config(), tmp_path / "same", seed=s, limit=LIMIT) for s in range(2)]
    with pytest.raises(ConfigError, match="share one run directory"):
        start_pack(plans, dataset=dataset)
    assert not (tmp_path / "same").exists()
