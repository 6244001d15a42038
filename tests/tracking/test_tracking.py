"""Tracking: what TensorBoard and MLflow hold after real (tiny) runs equals the run's history.csv.

Read back through each tool's own reader: tensorboard's EventAccumulator, MLflow's MlflowClient
on the SQLite store. Runs: the first 1000 MNIST images, 2-3 epochs.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
import signal
import sys

import numpy as np
import pytest

from mlplab.cli.main import main
from mlplab.errors import ConfigError
from mlplab.tracking import LogTarget, Tracking, parse_log_to, parse_log_to_all

pytest.importorskip("mlflow", reason="the track extra (mlflow) is not installed")
pytest.importorskip("tensorboard", reason="the track extra (tensorboard) is not installed")

from mlflow.tracking import MlflowClient  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

TRAIN = ["train", "tutorial-50-25", "--limit", "1000", "--verbose", "0"]
COLUMNS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")


def cli(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def history(run_dir):
    with open(run_dir / "history.csv", newline="") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def tensorboard_scalars(log_dir):
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events, {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def mlflow_run(run_dir):
    info = json.loads((run_dir / "run.json").read_text())["tracking"]["mlflow"]
    client = MlflowClient(tracking_uri=info["uri"])
    return client, client.get_run(info["run_id"])


def check_tensorboard_equals_history(log_dir, rows):
    _, scalars = tensorboard_scalars(log_dir)
    for column in COLUMNS:
        # TensorBoard keeps scalars as float32: equal to the history's value rounded to float32.
        assert scalars[column] == [(int(r["epoch"]), float(np.float32(r[column]))) for r in rows], column


def check_mlflow_equals_history(client, run, rows):
    for column in COLUMNS:
        logged = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, column))
        assert logged == [(int(r["epoch"]), r[column]) for r in rows], column


# --- specs and the extra --------------------------------------------------------------------------


def test_specs_parse_with_defaults_and_locations(tmp_path):
    assert parse_log_to("tensorboard") == LogTarget("tensorboard")
    assert parse_log_to("tensorboard:runs/tb") == LogTarget("tensorboard", "runs/tb")
    assert parse_log_to("mlflow") == LogTarget("mlflow")
    assert parse_log_to("mlflow:http://127.0.0.1:5000") == LogTarget("mlflow", "http://127.0.0.1:5000")
    assert parse_log_to("mlflow:sqlite:///x/m.db") == LogTarget("mlflow", "sqlite:///x/m.db")
    assert parse_log_to(f"mlflow:{tmp_path}/m.db") == LogTarget("mlflow", f"sqlite:///{tmp_path}/m.db")


@pytest.mark.parametrize(("specs", "named"), [
    (["wandb"], "'wandb'"),
    (["tensorbord:tb"], "'tensorbord:tb'"),
    (["mlflow:"], "'mlflow:'"),
    (["mlflow:some/folder"], "'mlflow:some/folder'"),
    (["tensorboard", "tensorboard:tb"], "'tensorboard:tb'"),
])
def test_bad_specs_are_errors_that_name_the_value(specs, named):
    with pytest.raises(ConfigError, match=named.replace("/", ".")):
        parse_log_to_all(specs)


def test_bad_spec_on_the_command_line_is_one_line_and_creates_nothing(tmp_path, capsys):
    code, _, err = cli([*TRAIN, "--out", tmp_path / "r", "--log-to", "tensorbored"], capsys)
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "'tensorbored'" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(("spec", "module"), [("mlflow", "mlflow"), ("tensorboard:tb", "torch.utils.tensorboard")])
def test_a_missing_extra_is_one_line_naming_mlplab_track(spec, module, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # what Python does for a package that is not installed
    with pytest.raises(ConfigError, match=r"mlplab\[track\]"):
        Tracking.from_specs([spec])
    code, _, err = cli([*TRAIN, "--out", tmp_path / "r", "--log-to", spec], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "pip install 'mlplab[track]'" in err and spec.split(":")[0] in err
    assert not (tmp_path / "r").exists()


def test_importing_the_cli_and_tracking_loads_neither_tool():
    code = ("import sys, mlplab.cli.main, mlplab.tracking; "
            "print([m for m in sys.modules if m.split('.')[0] in ('mlflow', 'tensorboard')])")
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- real runs, read back ---------------------------------------------------------------------------


def test_train_logs_history_config_test_metrics_and_files(tmp_path, capsys, data_dir):
    run_dir = tmp_path / "r"
    code, out, err = cli([*TRAIN, "--set", "training.epochs=2", "--out", run_dir,
                          "--log-to", "tensorboard", "--log-to", "mlflow"], capsys)
    assert code == 0, err
    assert "INFO" not in err  # MLflow's table-creation chatter is kept quiet
    rows = history(run_dir)
    assert [r["epoch"] for r in rows] == [1, 2]
    metrics = json.loads((run_dir / "metrics.json").read_text())

    events, _ = tensorboard_scalars(run_dir / "tensorboard")
    check_tensorboard_equals_history(run_dir / "tensorboard", rows)
    assert [e.value for e in events.Scalars("test_accuracy")] == [pytest.approx(metrics["test_accuracy"], rel=1e-6)]
    config_text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "units = 50" in config_text and "learning_rate = 0.001" in config_text

    assert (run_dir / "mlflow.db").is_file()
    client, run = mlflow_run(run_dir)
    check_mlflow_equals_history(client, run, rows)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test_accuracy"] == metrics["test_accuracy"]
    assert run.data.metrics["test_loss"] == metrics["test_loss"]
    params = run.data.params
    assert params["training.optimizer.learning_rate"] == "0.001" and params["model.layers.0.units"] == "50"
    assert params["training.epochs"] == "2" and params["dataset"] == "mnist"
    tags = run.data.tags
    assert tags["mlplab.dataset"] == "mnist" and tags["mlplab.seed"] == "0" and tags["mlplab.version"]
    assert tags["mlplab.limit"] == "1000"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"model.safetensors", "model.json", "config.toml", "history.csv"}
    local = client.download_artifacts(run.info.run_id, "model.safetensors", str(tmp_path))
    assert open(local, "rb").read() == (run_dir / "model.safetensors").read_bytes()
    assert not (tmp_path / "mlruns").exists() and not os.path.exists("mlruns")  # artifacts beside the store


@pytest.mark.parametrize("unlogged", [False, True], ids=["logged", "killed-before-logging"])
def test_a_resumed_run_goes_on_logging_each_epoch_once_in_the_same_mlflow_run(unlogged, tmp_path, capsys, monkeypatch,
                                                                             data_dir):
    from mlplab.tracking.session import _TrackingCallback

    run_dir, tb = tmp_path / "r", tmp_path / "tb"
    uri = f"sqlite:///{tmp_path / 'store' / 'm.db'}"
    (tmp_path / "store").mkdir()
    with monkeypatch.context() as patch:  # a real Ctrl-C just after epoch 2 was saved (and logged, or not)
        original = _TrackingCallback.on_epoch_end

        def hook(self, state, row):
            if not (unlogged and row["epoch"] == 2):
                original(self, state, row)
            if row["epoch"] == 2:
                os.kill(os.getpid(), signal.SIGINT)

        patch.setattr(_TrackingCallback, "on_epoch_end", hook)
        code, _, err = cli([*TRAIN, "--set", "training.epochs=3", "--out", run_dir,
                            "--log-to", f"tensorboard:{tb}", "--log-to", f"mlflow:{uri}"], capsys)
    assert code == 130, err
    client, run = mlflow_run(run_dir)
    assert run.info.status == "KILLED"
    first_id = run.info.run_id

    code, _, err = cli(["train", "--resume", run_dir, "--verbose", "0"], capsys)  # no --log-to: as recorded
    assert code == 0, err
    rows = history(run_dir)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    client, run = mlflow_run(run_dir)
    assert run.info.run_id == first_id and run.info.status == "FINISHED"
    check_mlflow_equals_history(client, run, rows)  # each epoch once
    assert len(client.search_runs([run.info.experiment_id])) == 1
    assert len(list((tb / "r").glob("events.out.tfevents.*"))) == 2  # one file per process
    check_tensorboard_equals_history(tb / "r", rows)


def test_reproduce_is_a_parent_run_with_each_run_nested_and_continues_without_duplicates(tmp_path, data_dir):
    from mlplab.studies import reproduce

    out = tmp_path / "study"
    common = dict(models=("tutorial-50-25",), limit=1000, max_epochs=2, verbose=0, print_fn=lambda *a: None,
                  data_dir=data_dir)
    reproduce(out, seeds=1, **common)  # seed 0 trained before tracking was asked for
    tracking = Tracking.from_specs(["tensorboard", "mlflow"])
    for _ in range(2):  # seed 0 logged from its files, seed 1 trained; then again: nothing new
        artefacts = reproduce(out, seeds=2, tracking=tracking, **common)

    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("mlplab")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(r.info.run_name for r in children) == ["tutorial-50-25-seed0", "tutorial-50-25-seed1"]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert "report.html" in {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert artefacts["report_html"].is_file()
    for child in children:
        run_dir = out / "runs" / child.info.run_name
        rows = history(run_dir)
        check_mlflow_equals_history(client, child, rows)
        assert child.data.metrics["test_accuracy"] == json.loads((run_dir / "metrics.json").read_text())["test_accuracy"]
        assert child.data.tags["mlplab.seed"] == child.info.run_name[-1]
        check_tensorboard_equals_history(out / "tensorboard" / child.info.run_name, rows)


def test_an_unusable_tracking_store_is_one_line_before_training(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    uri = f"sqlite:///{blocker}/m.db"  # a database below a file cannot be created
    code, _, err = cli([*TRAIN, "--out", tmp_path / "r", "--log-to", f"mlflow:{uri}"], capsys)
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert uri in err
    assert not (tmp_path / "r" / "run.json").exists()


SEARCH_SPACE = """
name = "tiny-space"
base = "tutorial-50-25"
fixed = { "training.epochs" = 2, "training.early_stopping" = "none" }
[layers]
count = { low = 1, high = 2 }
units = { low = 8, high = 32, log = true }
"""


def test_a_search_makes_the_mlflow_store_before_its_second_worker_starts(tmp_path, data_dir, monkeypatch):
    # Two workers creating a fresh sqlite store at the same moment can read each other's half-made
    # schema (seen once in CI: "out-of-date database schema"), so the command makes the store and
    # its experiment before it spawns a worker. The spawned worker is a fake that looks at the store.
    import sqlite3

    pytest.importorskip("optuna", reason="the [search] extra (optuna) is not installed")
    from mlplab.studies.search import study as search_study
    from mlplab.studies.search.study import SearchPlan, run_search

    space, out = tmp_path / "space.toml", tmp_path / "search"
    space.write_text(SEARCH_SPACE)
    seen: list[list[str]] = []

    class NoWorker:  # stands in for the spawned process; worker 0 (this process) runs every trial
        exitcode = 0

        def __init__(self, **_kwargs) -> None:
            pass

        def start(self) -> None:
            db = out / "mlflow.db"
            seen.append([row[0] for row in sqlite3.connect(db).execute("SELECT name FROM experiments")]
                        if db.is_file() else [])

        def is_alive(self) -> bool:
            return False

    class Context:
        Process = NoWorker

    monkeypatch.setattr(search_study.multiprocessing, "get_context", lambda _method: Context)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    plan = SearchPlan(str(space), out, trials=2, workers=2, threads=1, limit=300, refit_top=0, reference=False,
                      data_dir=data_dir, tracking=Tracking.from_specs(["mlflow"]))
    run_search(plan, print_fn=lambda _line: None)
    assert len(seen) == 1 and "mlplab" in seen[0], seen


def test_search_logs_each_trial_nested_under_the_study(tmp_path, data_dir):
    # Two workers (the second a spawned process: the tracking targets must reach it) and four trials:
    # one parent run for the study, one nested run per trial holding that trial's history.
    import subprocess
    import sys

    pytest.importorskip("optuna", reason="the [search] extra (optuna) is not installed")
    space, out = tmp_path / "space.toml", tmp_path / "search"
    space.write_text(SEARCH_SPACE)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root / "src"), "MLPLAB_DATA_DIR": str(data_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "mlplab.cli.main", "search", str(space), "--trials", "4", "--workers", "2",
         "--threads", "1", "--limit", "800", "--refit-top", "0", "--no-reference", "--out", str(out),
         "--log-to", "mlflow", "--log-to", "tensorboard"],
        env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("mlplab").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].data.tags["mlplab.study"].startswith("search ")
    trials = sorted(p.name for p in (out / "trials").iterdir() if (p / "metrics.json").is_file())
    assert len(trials) == 4 and sorted(r.info.run_name for r in children) == trials
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    for child in children:
        run_dir = out / "trials" / child.info.run_name
        check_mlflow_equals_history(client, child, history(run_dir))
        check_tensorboard_equals_history(out / "tensorboard" / child.info.run_name, history(run_dir))
