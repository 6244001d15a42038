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


@pytest.mark.parametrize(("bf16_speedup", "packed"), [(0.5, True), (2.5, False)], ids=["auto-fp32", "auto-bf16"])
def test_auto_precision_is_decided_before_packing(dataset, tmp_path, monkeypatch, capsys, bf16_speedup, packed):
    """`--precision auto` (the default) is decided per run as start_run decides it: where it means fp32
    the runs share a pack; where the probe picks bf16 (which the packed step does not run) they are
    trained one after another in bf16, each run.json saying so."""
    from mlplab.training import device
    from mlplab.training.device import MatmulSpeed, resolve_runtime

    monkeypatch.setattr(device, "cpu_has_bf16_units", lambda: True)
    runtime = resolve_runtime("cpu", "auto", 1, probe=lambda dev, shape: MatmulSpeed(shape, 100.0, 100.0 * bf16_speedup,
                                                                                     shape[0]))
    plans = [RunPlan(_config(64, epochs=1), tmp_path / f"seed{s}", seed=s, limit=LIMIT, runtime=runtime)
             for s in range(2)]
    results = start_pack(plans, dataset=dataset, verbose=1)
    assert all(r.ok for r in results)
    out = capsys.readouterr().out
    assert ("as one pack" in out) == packed and ("one after another: model 1 is trained alone: precision bf16" in out) != packed
    for plan in plans:
        info = json.loads((plan.out / "run.json").read_text())
        assert info["runtime"]["precision"] == ("fp32" if packed else "bf16")
        assert info["runtime"]["precision_requested"] == "auto"
        assert ("pack" in info) == packed
