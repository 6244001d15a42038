"""The run directory's file names, its refusal to overwrite, run.json updates and history files."""

from __future__ import annotations

import json
import re

import pytest

from mlplab.errors import ModelFileError
from mlplab.runs import HistoryWriter, RunDir
from mlplab.training.history import History


def test_file_names_are_the_documented_ones(tmp_path):
    run = RunDir(tmp_path)
    assert [p.name for p in (run.run_json, run.config, run.history_csv, run.history_json, run.checkpoint, run.metrics)] == [
        "run.json", "config.toml", "history.csv", "history.json", "checkpoint.safetensors", "metrics.json",
    ]
    assert all(p.parent == tmp_path for p in (run.run_json, run.metrics))


def test_create_refuses_a_folder_holding_anything_unless_told(tmp_path):
    with RunDir(tmp_path / "new" / "run").create():  # parents are made; the lock is held inside
        assert (tmp_path / "new" / "run").is_dir()
    empty = tmp_path / "empty"
    empty.mkdir()
    with RunDir(empty).create():  # an empty folder is fine
        (empty / "run.json").write_text("{}")
    with pytest.raises(ModelFileError, match=rf"^{empty} already holds a run; choose another --out, continue it with "
                                             rf"`mlplab train --resume {empty}`, or replace it with --overwrite$"):
        with RunDir(empty).create():
            pass
    with RunDir(empty).create(overwrite=True):  # a run's own files are removed
        assert not (empty / "run.json").exists()
    (empty / "x").write_text("keep")
    with pytest.raises(ModelFileError, match="holds files that are not an mlplab run's \\(x\\); not overwriting it"):
        with RunDir(empty).create(overwrite=True):
            pass
    assert (empty / "x").read_text() == "keep"


def test_info_is_merged_into_run_json(tmp_path):
    run = RunDir(tmp_path)
    with pytest.raises(ModelFileError, match=rf"^{tmp_path}: not an mlplab run directory \(no run.json\)$"):
        run.read_info()
    assert run.update_info(status="running", name="a") == {"status": "running", "name": "a"}
    assert run.update_info(status="finished") == {"status": "finished", "name": "a"}
    assert run.read_info() == json.loads(run.run_json.read_text()) == {"status": "finished", "name": "a"}


class _State:
    def __init__(self, history):
        self.history = history


def test_history_writer_writes_both_files_after_each_epoch_and_at_the_end(tmp_path):
    run = RunDir(tmp_path)
    writer = HistoryWriter(run)
    history = History()
    history.append({"epoch": 1, "loss": 0.5, "accuracy": 0.8})
    writer.on_epoch_end(_State(history), history[-1])
    assert run.history_csv.read_text() == history.to_csv()
    assert json.loads(run.history_json.read_text()) == history.to_json()
    history.append({"epoch": 2, "loss": 0.25, "accuracy": 0.9})
    history.kept_epoch = 1
    writer.on_train_end(_State(history))
    assert run.history_csv.read_text().count("\n") == 3
    assert json.loads(run.history_json.read_text()) == history.to_json()


def test_overwrite_steps_over_temporary_files_a_killed_writer_left_and_nothing_else(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    (run / ".run.json.1a2b3c4d.tmp").write_text("half")  # safeio.atomic_file's name, left by a killed process
    with RunDir(run).create(overwrite=True):
        assert not (run / "run.json").exists()
    for name in (".bashrc", "notes.tmp"):  # hidden, or named .tmp, but not a temporary file of ours
        (run / "run.json").write_text("{}")
        (run / name).write_text("keep")
        with pytest.raises(ModelFileError, match=rf"holds files that are not an mlplab run's \({re.escape(name)}\); not overwriting it$"):
            with RunDir(run).create(overwrite=True):
                pass
        assert (run / name).read_text() == "keep" and (run / "run.json").exists()
        (run / name).unlink()
