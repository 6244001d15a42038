"""A RunPlan is checked in full, and its config made the whole truth, before anything is on disk."""

from __future__ import annotations

import os
import re

import pytest

from mlplab.config import config_from_dict
from mlplab.errors import ConfigError
from mlplab.runs import RunPlan
from mlplab.runs.plan import check_out_path

SMALL = {"name": "small", "model": {"layers": [{"type": "dense", "units": 8}]}, "training": {"seed": 0}}


def refused(message: str) -> str:
    return "^" + re.escape(f"{message}; choose a folder for the run (--out)") + "$"


def test_out_may_be_a_folder_or_a_place_where_one_can_be_made(tmp_path):
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    for out in (tmp_path, tmp_path / "new", tmp_path / "new" / "deeper", tmp_path / "link", tmp_path / "link" / "run"):
        check_out_path(out)
        assert not (tmp_path / "new").exists()  # checking makes nothing


def test_out_that_is_or_lies_below_something_else_is_refused_naming_it(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("keep")
    dangling = tmp_path / "dangling"
    os.symlink(tmp_path / "nowhere", dangling)  # exists as a name, but is neither a file nor a folder
    cases = {
        afile: f"{afile} is a file",
        afile / "run" / "deeper": f"{afile / 'run' / 'deeper'}: {afile} is a file",
        dangling: f"{dangling} exists and is not a folder",
        dangling / "run": f"{dangling / 'run'}: {dangling} exists and is not a folder",
    }
    for out, message in cases.items():
        with pytest.raises(ConfigError, match=refused(message)):
            check_out_path(out)
    assert afile.read_text() == "keep"


def test_a_plan_refuses_an_out_below_a_file(tmp_path):
    (tmp_path / "afile").write_text("keep")
    with pytest.raises(ConfigError, match=refused(f"{tmp_path / 'afile' / 'run'}: {tmp_path / 'afile'} is a file")):
        RunPlan(config_from_dict(SMALL), tmp_path / "afile" / "run")


def test_the_plans_dataset_and_seed_override_the_configs(tmp_path):
    config = config_from_dict(SMALL)
    plan = RunPlan(config, tmp_path / "run", dataset="fashion-mnist", seed=7)
    assert (plan.dataset, plan.seed) == ("fashion-mnist", 7)
    assert (plan.config.dataset, plan.config.training.seed) == ("fashion-mnist", 7)  # what config.toml records
    assert plan.config.model == config.model and (config.dataset, config.training.seed) == ("mnist", 0)
    plain = RunPlan(config, str(tmp_path / "run"))
    assert (plain.dataset, plain.seed, plain.config) == ("mnist", 0, config)
    assert plain.out == tmp_path / "run"


def test_a_plan_takes_a_shipped_configs_name_and_plain_python_values(tmp_path):
    plan = RunPlan("tutorial-50-25", str(tmp_path / "run"), data_dir=str(tmp_path / "data"), command=["mlplab", "train"])
    assert plan.config.name == "tutorial-50-25"
    assert plan.data_dir == tmp_path / "data" and plan.out == tmp_path / "run"
    assert plan.command == ("mlplab", "train")  # a tuple: the plan is frozen and hashable
    assert RunPlan(config_from_dict(SMALL), tmp_path / "run").data_dir is None


@pytest.mark.parametrize("limit", [1, 60_000])
def test_a_limit_is_any_positive_number_of_images(tmp_path, limit):
    assert RunPlan(config_from_dict(SMALL), tmp_path / "run", limit=limit).limit == limit


@pytest.mark.parametrize("bad", [0, -5, True, 1.5, "10"])
def test_a_limit_that_is_not_a_positive_integer_is_refused_naming_it(tmp_path, bad):
    with pytest.raises(ConfigError, match=rf"^limit must be a positive number of images, got {re.escape(repr(bad))}$"):
        RunPlan(config_from_dict(SMALL), tmp_path / "run", limit=bad)


def test_validation_is_on_val_or_test_only(tmp_path):
    assert RunPlan(config_from_dict(SMALL), tmp_path / "run", validate_on="test").validate_on == "test"
    with pytest.raises(ConfigError, match=r"^validate_on must be val or test, got 'train'$"):
        RunPlan(config_from_dict(SMALL), tmp_path / "run", validate_on="train")
