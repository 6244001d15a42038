"""Several `mlplab search` workers on one study, one killed with SIGKILL mid-trial: the study still
ends with exactly the requested complete trials, none run twice, the killed trial re-run, every
run directory complete and the report built. Once with the embedded journal file (2 workers on
one machine), once with a real PostgreSQL (3 workers, heartbeats)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna", reason="the [search] extra (optuna) is not installed")

pytestmark = pytest.mark.search

ROOT = Path(__file__).resolve().parents[3]
TRIALS = 6
SPACE = """
name = "tiny-space"
base = "tutorial-50-25"
fixed = { "training.epochs" = 3, "training.early_stopping" = "none" }
[layers]
count = { low = 1, high = 2 }
units = { low = 8, high = 48, log = true }
[params."training.optimizer.learning_rate"]
low = 1e-3
high = 1e-2
log = true
"""


@pytest.fixture
def started():
    """Every worker a test starts, killed at its end whatever happens."""
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _worker(space: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-m", "mlplab.cli.main", "search", str(space), "--trials", str(TRIALS), "--limit", "1500",
           "--out", str(out), "--threads", "1", "--refit-top", "2", "--no-reference", *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _victims_trial(load_study, pid: int):
    """The RUNNING trial of worker `pid` whose run is under way (run.json says running), or None."""
    from optuna.trial import TrialState

    try:
        study = load_study()
    except (KeyError, ValueError):  # not created yet
        return None
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        run_dir = t.user_attrs.get("run_dir")
        if t.user_attrs.get("worker_lock", "").endswith(f"-{pid}") and run_dir:
            run_json = Path(run_dir) / "run.json"
            if run_json.is_file() and '"status": "running"' in run_json.read_text():
                return t
    return None


def _freeze_mid_trial(victim: subprocess.Popen, load_study, timeout: float = 120) -> int:
    """SIGSTOP the victim while it trains a trial, seen from the storage and its run directory; returns
    that trial's number. The check is repeated once the victim is frozen, so the trial cannot finish
    between the check and the kill that follows, however fast trials are (the victim, frozen inside its
    run, holds no lock of the journal file)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert victim.poll() is None, victim.stdout.read()
        if _victims_trial(load_study, victim.pid) is not None:
            victim.send_signal(signal.SIGSTOP)
            trial = _victims_trial(load_study, victim.pid)
            if trial is not None:
                return trial.number
            victim.send_signal(signal.SIGCONT)  # it finished that trial meanwhile: catch the next one
        time.sleep(0.05)
    raise AssertionError(f"the victim was not seen inside a trial in {timeout} s")


def _kill_while_others_work(victim: subprocess.Popen, others: list[subprocess.Popen], load_study,
                            timeout: float = 120) -> None:
    """SIGKILL the frozen victim once another worker is inside a trial of its own (all are running)."""
    end = time.monotonic() + timeout
    while not any(_victims_trial(load_study, w.pid) or _finished_a_trial(load_study, w.pid) for w in others):
        assert time.monotonic() < end, "no other worker started a trial"
        for w in others:
            assert w.poll() is None, w.stdout.read()
        time.sleep(0.1)
    victim.send_signal(signal.SIGKILL)
    victim.wait()


def _finished_a_trial(load_study, pid: int) -> bool:
    from optuna.trial import TrialState

    study = load_study()
    return any(t.user_attrs.get("worker_lock", "").endswith(f"-{pid}")
               for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def _check_study(study, killed: int) -> None:
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert len(complete) == TRIALS
    assert len({t.number for t in complete}) == TRIALS
    run_dirs = [t.user_attrs["run_dir"] for t in complete]
    assert len(set(run_dirs)) == TRIALS, "two complete trials share a run"
    params = [tuple(sorted(t.params.items())) for t in complete]
    assert len(set(params)) == TRIALS, "a trial ran twice"
    killed_trial = study.get_trials(deepcopy=False)[killed]
    assert killed_trial.state == TrialState.FAIL
    reruns = [t for t in complete if t.system_attrs.get("failed_trial") == killed]
    assert len(reruns) == 1 and reruns[0].params == killed_trial.params
    for t in complete:
        run = Path(t.user_attrs["run_dir"])
        for name in ("run.json", "config.toml", "history.csv", "metrics.json", "model.json", "model.safetensors"):
            assert (run / name).is_file(), f"{run / name} missing"
        assert '"status": "finished"' in (run / "run.json").read_text()


def _finish(workers: list[subprocess.Popen], timeout: float = 300) -> list[str]:
    outputs = []
    for proc in workers:
        out, _ = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, out
        outputs.append(out)
    return outputs


def test_two_workers_on_the_embedded_journal_survive_a_killed_worker(tmp_path, data_dir, started):
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    out = tmp_path / "search"
    out.mkdir()
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "study.journal")))
    load = lambda: optuna.load_study(study_name="tiny-space", storage=storage)  # noqa: E731
    # The victim starts first and is frozen inside a trial, so it cannot run out of trials before the
    # kill; the two others start, and the victim is killed once one of them is inside a trial too.
    victim = _worker(space, out)
    started.append(victim)
    killed = _freeze_mid_trial(victim, load)
    workers = [_worker(space, out) for _ in range(2)]
    started.extend(workers)
    _kill_while_others_work(victim, workers, load)
    outputs = _finish(workers)
    _check_study(optuna.load_study(study_name="tiny-space", storage=storage), killed)
    assert (out / "report.html").is_file()
    assert any("refit test accuracy" in o for o in outputs)
    assert list((out / "front").glob("trial-*.toml"))


def test_three_workers_on_postgresql_survive_a_killed_worker(tmp_path, data_dir, postgres_url, started):
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    extra = ("--storage", postgres_url, "--study", "shared", "--heartbeat", "1")
    from mlplab.studies.search.storage import normalise_url

    storage = optuna.storages.RDBStorage(normalise_url(postgres_url))
    load = lambda: optuna.load_study(study_name="shared", storage=storage)  # noqa: E731
    victim = _worker(space, tmp_path / "machine0", *extra)  # frozen mid-trial, then killed (see the journal test)
    started.append(victim)
    killed = _freeze_mid_trial(victim, load)
    workers = [_worker(space, tmp_path / f"machine{i}", *extra) for i in (1, 2)]
    started.extend(workers)
    _kill_while_others_work(victim, workers, load)
    _finish(workers)
    study = optuna.load_study(study_name="shared", storage=storage)
    _check_study(study, killed)
    report_dir = tmp_path / "report"
    from mlplab.cli.main import main

    assert main(["search-report", "--storage", postgres_url, "--study", "shared", "--out", str(report_dir)]) == 0
    html = (report_dir / "report.html").read_text()
    assert "Pareto front" in html and "test accuracy (refit)" in html
    assert any(k.startswith("refit:") for k in study.user_attrs)


def test_a_front_config_trains_with_mlplab_train(tmp_path, data_dir, started):
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    out = tmp_path / "search"
    (proc,) = [_worker(space, out, "--trials", "3")]
    started.append(proc)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    toml = sorted((out / "front").glob("trial-*.toml"))[0]
    from mlplab.cli.main import main

    assert main(["train", str(toml), "--limit", "1500", "--out", str(tmp_path / "again"), "--verbose", "0"]) == 0
    number = int(toml.stem.split("-")[1])
    again = (tmp_path / "again" / "metrics.json").read_text()
    refit = (out / "refit" / f"{number:04d}" / "metrics.json").read_text()
    import json

    assert json.loads(again)["test_accuracy"] == json.loads(refit)["test_accuracy"]  # the same model, trained again


def test_ctrl_c_saves_and_the_same_command_continues_the_study(tmp_path, data_dir, started):
    from optuna.trial import TrialState

    space = tmp_path / "space.toml"
    space.write_text(SPACE.replace('"training.epochs" = 3', '"training.epochs" = 6'))
    out = tmp_path / "search"
    out.mkdir()
    first = _worker(space, out, "--trials", "3", "--refit-top", "1")
    started.append(first)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "study.journal")))
    load = lambda: optuna.load_study(study_name="tiny-space", storage=storage)  # noqa: E731
    end = time.monotonic() + 120
    interrupted = None
    while interrupted is None and time.monotonic() < end:  # Ctrl-C once a trial has saved an epoch
        try:
            running = load().get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        except KeyError:
            running = []
        for t in running:
            run_dir = t.user_attrs.get("run_dir")
            if run_dir and (Path(run_dir) / "checkpoint.safetensors").is_file():
                first.send_signal(signal.SIGINT)
                interrupted = t.number
        time.sleep(0.05)
    output, _ = first.communicate(timeout=120)
    assert interrupted is not None and first.returncode == 130, output
    assert "run the same command again" in output.lower()
    again = _worker(space, out, "--trials", "3", "--refit-top", "1")
    started.append(again)
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0, output
    study = load()
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert len(complete) == 3
    resumed = [t for t in complete if t.system_attrs.get("failed_trial") == interrupted]
    assert len(resumed) == 1 and resumed[0].user_attrs.get("resumed")  # continued from its checkpoint, not retrained
    assert len({tuple(sorted(t.params.items())) for t in complete}) == 3
