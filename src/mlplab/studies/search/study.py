"""The search loop: workers pull trials from one Optuna study until it holds N complete trials.

Each trial is an ordinary run directory (`OUT/trials/NNNN/`) trained through the run layer on the
training data and its validation split; the study records where the run lives and its figures.
When the study is full, the Pareto front's trials are refit on all training images and scored
once on the test set (`OUT/refit/NNNN/`), and their configs written to `OUT/front/`.

Exactly N complete trials: a trial runs only when fewer than N lower-numbered trials hold a place
(complete, running, waiting, or failed with a retry due); otherwise it is told off (pruned, marked
`skipped`) before it samples anything. The order of trial numbers makes this one decision every
worker agrees on (places.py says why). A trial whose worker died (no heartbeat, or its worker's
lock released on this machine) is failed and re-queued with the same parameters; when its run
directory is on this machine the re-run resumes it from its last checkpoint. Ctrl-C does the same
for its own trial.
"""

from __future__ import annotations

import contextlib

import multiprocessing
import os
import socket
import sys
import time
import warnings
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from mlplab.config import ExperimentConfig, config_from_dict, load_config
from mlplab.errors import ConfigError, MlplabError, TrainingError
from mlplab.studies.search import objectives, places
from mlplab.studies.search.space import SearchSpace, load_space
from mlplab.studies.search.storage import describe_url, is_database, open_storage

Printer = Callable[[str], None]
SAMPLERS = ("tpe", "nsga2")
STUDY_ATTR = "mlplab"


@dataclass(frozen=True)
class SearchPlan:
    space: str  # a space file or a shipped space's name (each worker loads it)
    out: Path
    trials: int = 20
    study: str | None = None  # default: the space's name
    storage: str | None = None  # default: OUT/study.journal
    costs: tuple[str, ...] = objectives.DEFAULT_COSTS
    sampler: str = "tpe"
    seed: int = 0
    dataset: str | None = None
    data_dir: Path | None = None
    limit: int | None = None
    timeout: float | None = None
    workers: int = 1
    threads: int | None = None
    refit_top: int = 5
    reference: bool = True
    heartbeat: int = 60
    device: str = "auto"
    command: tuple[str, ...] = ()
    run_callbacks: tuple[Any, ...] = field(default=(), compare=False)  # training callbacks for every trial
    # `--log-to` targets (mlplab.tracking.Tracking: only the parsed specs, so it pickles to spawned
    # workers); every trial is then a run nested under the study's parent run.
    tracking: Any = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        for label, value, low in (("--trials", self.trials, 1), ("--workers", self.workers, 1), ("--refit-top", self.refit_top, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{label} must be a whole number >= {low}, got {value!r}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {self.threads}")
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigError(f"--timeout must be a positive number of seconds, got {self.timeout}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit must be a positive number of images, got {self.limit}")

    @property
    def threads_per_worker(self) -> int:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return self.threads or max(1, cores // self.workers)


@dataclass
class SearchOutcome:
    complete: int
    interrupted: bool
    front: list[int]  # trial numbers on the Pareto front
    report: Path | None = None
    refits: dict[int, dict[str, Any]] = field(default_factory=dict)


class TrialFailed(Exception):
    """A trial's run could not give figures (a non-finite loss, a failed write): the trial is failed."""


class SearchInterrupted(Exception):
    """Ctrl-C (or SIGTERM) during a trial: its run is saved and re-queued."""


def import_optuna():
    try:
        import optuna
    except ModuleNotFoundError:
        raise ConfigError("mlplab search needs optuna: pip install 'mlplab[search]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def study_name(plan: SearchPlan, space: SearchSpace) -> str:
    return plan.study or space.name


def open_study(plan: SearchPlan, space: SearchSpace, *, worker: int = 0):
    """Create the study, or load it and check it searches the same space for the same objectives."""
    optuna = import_optuna()
    storage = open_storage(plan.storage, plan.out, heartbeat=plan.heartbeat)
    name = study_name(plan, space)
    directions = objectives.directions(plan.costs)
    # The process that creates the study samples with --seed itself (one worker: reproducible);
    # every other worker (here or on other machines) mixes in its host and pid, or all would
    # draw the same parameters from the same empty history.
    created = False
    try:
        optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        try:
            optuna.create_study(storage=storage, study_name=name, directions=directions)
            created = True
        except optuna.exceptions.DuplicatedStudyError:
            pass
    seed = plan.seed if created and worker == 0 else (
        plan.seed + zlib.crc32(f"{socket.gethostname()}:{os.getpid()}:{worker}".encode())) % 2**31
    sampler = (optuna.samplers.TPESampler(seed=seed) if plan.sampler == "tpe"
               else optuna.samplers.NSGAIISampler(seed=seed))
    study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    if list(study.directions) != [optuna.study.StudyDirection.MAXIMIZE if d == "maximize"
                                  else optuna.study.StudyDirection.MINIMIZE for d in directions]:
        raise ConfigError(f"study {name!r} optimises {len(study.directions)} objectives, not "
                          f"val_accuracy and {', '.join(plan.costs)}; continue it with the same --objectives, or use another --study")
    wanted = {"space": space.name, "space_text": space.source_text, "costs": list(plan.costs),
              "dataset": plan.dataset or space.base.dataset, "limit": plan.limit, "seed": plan.seed}
    recorded = study.user_attrs.get(STUDY_ATTR)
    if recorded is None:
        study.set_user_attr(STUDY_ATTR, wanted)
    else:
        for key in ("space_text", "costs", "dataset", "limit", "seed"):
            if recorded.get(key) != wanted[key]:
                what = "the search space's file" if key == "space_text" else key
                raise ConfigError(
                    f"study {name!r} in {describe_url(str(plan.storage or plan.out))} was started with another {what} "
                    f"({recorded.get(key)!r} then, {wanted[key]!r} now); continue it with the same settings, or use another --study"
                )
    return study


# ---------------------------------------------------------------- one worker

def run_worker(plan: SearchPlan, *, worker: int = 0, print_fn: Printer = print, verbose: int = 0, study=None) -> bool:
    """Pull and run trials until the study holds `plan.trials` complete ones; False when interrupted."""
    optuna = import_optuna()
    from mlplab.runs import load_run_dataset
    from mlplab.training.device import resolve_runtime

    space = load_space(plan.space)
    study = study or open_study(plan, space, worker=worker)
    runtime = resolve_runtime(plan.device, "fp32", plan.threads_per_worker)
    dataset = load_run_dataset(plan.dataset or space.base.dataset, data_dir=plan.data_dir, limit=plan.limit)
    host, pid = socket.gethostname(), os.getpid()
    lock_dir = plan.out / ".workers" / f"{host}-{pid}"
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + plan.timeout if plan.timeout else None
    with contextlib.ExitStack() as stack:
        tracked_study = None
        if plan.tracking:
            # One parent run per study, found again by storage + study name from any worker or machine;
            # only the first worker of the command that created it ends it.
            where = describe_url(str(plan.storage)) if plan.storage else str((plan.out / "study.journal").resolve())
            key = f"{where}#{study.study_name}"
            tracked_study = stack.enter_context(plan.tracking.study(
                plan.out, name=f"search {study.study_name}", key=key, owner=worker == 0))
        context = _TrialContext(plan, space, dataset, runtime, host, str(lock_dir), verbose, tracked_study)
        return _pull_trials(plan, study, context, lock_dir, deadline, host, pid, print_fn)


def _pull_trials(plan: SearchPlan, study, context: "_TrialContext", lock_dir: Path, deadline: float | None,
                 host: str, pid: int, print_fn: Printer) -> bool:
    from optuna.exceptions import UpdateFinishedTrialError

    from mlplab.runs.lock import run_lock

    with run_lock(lock_dir):
        try:
            while deadline is None or time.monotonic() < deadline:
                reap_dead_trials(study, host)
                trials = study.get_trials(deepcopy=False)
                counts = _counts(study, trials)
                if counts["complete"] >= plan.trials:
                    break
                if counts["waiting"] == 0 and places.places_taken(trials) >= plan.trials:
                    # The last places are taken: wait, in case a worker dies and its trial comes back.
                    time.sleep(min(1.0, plan.heartbeat / 4))
                    continue
                context.trial_id = None
                try:
                    study.optimize(context.objective, n_trials=1, catch=(TrialFailed,),
                                   callbacks=[_Progress(plan, print_fn)], gc_after_trial=False)
                except (ValueError, UpdateFinishedTrialError):
                    if not context.lost_its_trial(study):
                        raise
                    # This worker was alive but silent past the grace period (a stalled machine): another
                    # worker failed its trial and queued the retry. Telling it now is refused; go on.
                    print_fn(f"worker {pid}: trial {context.trial_number} was failed by another worker "
                             f"(no heartbeat for {2 * plan.heartbeat} s) and queued again; continuing")
        except (SearchInterrupted, KeyboardInterrupt):
            print_fn(f"worker {pid}: interrupted; the trial's run is saved and queued again. "
                     "Run the same command again to continue the study.")
            return False
    return True


def _counts(study, trials: list | None = None) -> dict[str, int]:
    from optuna.trial import TrialState

    counts = {"complete": 0, "running": 0, "waiting": 0}
    for t in study.get_trials(deepcopy=False) if trials is None else trials:
        if t.state == TrialState.COMPLETE:
            counts["complete"] += 1
        elif t.state == TrialState.RUNNING:
            counts["running"] += 1
        elif t.state == TrialState.WAITING:
            counts["waiting"] += 1
    return counts


def reap_dead_trials(study, host: str) -> None:
    """Fail (and re-queue) running trials whose worker died: stale heartbeats in a database; on this
    machine also trials whose worker's lock was released (the journal file has no heartbeat)."""
    import optuna
    from optuna.trial import TrialState

    from mlplab.runs.lock import is_locked

    optuna.storages.fail_stale_trials(study)
    if optuna.storages._heartbeat.is_heartbeat_enabled(study._storage):
        return  # a database with heartbeats: a dead worker's trial goes stale, here or elsewhere
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        lock = t.user_attrs.get("worker_lock")
        if t.user_attrs.get("host") != host or not lock or is_locked(Path(lock)):
            continue
        try:
            if not study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker got there first
        requeue(study, study._storage.get_trial(t._trial_id))


def requeue(study, failed) -> None:
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        RetryHeartbeatStaleTrialCallback(max_retry=places.MAX_RETRY)(study, failed)


def _requeue_own(study, trial_id: int) -> None:
    """Queue this worker's interrupted trial again, unless another worker already failed and re-queued
    it (this worker looked dead to it): two retries of one trial would both run."""
    from optuna.trial import TrialState

    trial = study._storage.get_trial(trial_id)
    if trial.state == TrialState.RUNNING:
        requeue(study, trial)


class _TrialContext:
    def __init__(self, plan: SearchPlan, space: SearchSpace, dataset, runtime, host: str, lock: str, verbose: int,
                 tracked_study=None):
        self.plan, self.space, self.dataset, self.runtime = plan, space, dataset, runtime
        self.host, self.lock, self.verbose = host, lock, verbose
        self.tracked_study = tracked_study  # mlplab.tracking.StudyTracking, when the search logs
        self.trial_id: int | None = None  # the trial this worker runs or ran last
        self.trial_number: int | None = None

    def lost_its_trial(self, study) -> bool:
        """Whether another worker failed this worker's trial (its heartbeat went stale) while it ran:
        failed, with no `failure` of its own recorded."""
        from optuna.trial import TrialState

        if self.trial_id is None:
            return False
        trial = study._storage.get_trial(self.trial_id)
        return trial.state == TrialState.FAIL and "failure" not in trial.user_attrs

    def train(self, run_path: Path, train):
        """`train(callbacks)` (a start_run or resume_run call), logged as a run nested under the study."""
        if self.tracked_study is None:
            return train(self.plan.run_callbacks)
        with self.tracked_study.run(run_path) as tracked:
            result = train((*tracked.callbacks, *self.plan.run_callbacks))
            tracked.finish(result)
        return result

    def objective(self, trial) -> list[float]:
        import optuna

        study = trial.study
        self.trial_id, self.trial_number = trial._trial_id, trial.number
        if not places.takes_place(trial.number, study.get_trials(deepcopy=False), self.plan.trials):
            # Lower-numbered trials hold every place; told off before sampling, so the sampler sees nothing.
            trial.set_user_attr(places.TOLD_OFF, "the study's places were taken by lower-numbered trials")
            raise optuna.TrialPruned()
        try:
            return self._run(trial, study)
        except (SearchInterrupted, TrialFailed, optuna.TrialPruned):
            raise
        except KeyboardInterrupt:  # Ctrl-C outside the epochs (the run layer saves inside them): queue it again
            with contextlib.suppress(Exception):
                _requeue_own(study, trial._trial_id)
            raise
        except BaseException as exc:  # failed in its own worker, not a dead worker's trial: no retry is due
            with contextlib.suppress(Exception):
                trial.set_user_attr("failure", f"{type(exc).__name__}: {exc}"[:500])
            raise

    def _run(self, trial, study) -> list[float]:
        from mlplab.runs import RunDir, RunPlan, resume_run, start_run
        from mlplab.runs.lock import is_locked
        from mlplab.runs.result import StopCause

        chosen = self.space.sample(trial)
        config = self.space.config_for(chosen, name=f"{self.space.name}-trial-{trial.number:04d}")
        if self.plan.dataset:
            config = config.with_overrides({"dataset": self.plan.dataset})
        earlier = trial.user_attrs.get("run_dir")  # a re-queued trial's run, when it was interrupted here
        trial.set_user_attr("host", self.host)
        trial.set_user_attr("worker_lock", self.lock)
        trial.set_user_attr("config", config.to_dict())
        resumable = (earlier and trial.user_attrs.get("host_of_run") == self.host and RunDir(Path(earlier)).run_json.is_file()
                     and not is_locked(Path(earlier))
                     and RunDir(Path(earlier)).read_info().get("status") in ("running", "interrupted", "failed"))
        if resumable:
            trial.set_user_attr("resumed", earlier)
            run_path = Path(earlier)
            result = self.train(run_path, lambda callbacks: resume_run(
                earlier, runtime=self.runtime, dataset=self.dataset, verbose=self.verbose,
                data_dir=self.plan.data_dir, callbacks=callbacks))
        else:
            run_path = (self.plan.out / "trials" / f"{trial.number:04d}").resolve()
            trial.set_user_attr("run_dir", str(run_path))
            trial.set_user_attr("host_of_run", self.host)
            plan = RunPlan(config, run_path, limit=self.plan.limit, data_dir=self.plan.data_dir, runtime=self.runtime,
                           command=self.plan.command)
            result = self.train(run_path, lambda callbacks: start_run(
                plan, dataset=self.dataset, verbose=self.verbose, callbacks=callbacks))
        trial.set_user_attr("run_dir", str(run_path))
        if result.cause is StopCause.INTERRUPTED:  # saved: queue it again, so that the next run resumes it
            _requeue_own(study, trial._trial_id)
            raise SearchInterrupted(result.message)
        if not result.ok:
            trial.set_user_attr("failure", result.message or result.cause.value)
            raise TrialFailed(result.message or result.cause.value)
        figures = objectives.trial_figures(result.metrics, result.history.rows, result.history.kept_epoch,
                                           *_sizes(config, self.dataset))
        trial.set_user_attr("figures", figures)
        return objectives.trial_values(figures, self.plan.costs)


def _sizes(config: ExperimentConfig, dataset) -> tuple[int, int]:
    from mlplab.model.flops import forward_flops
    from mlplab.model.summary import summarize

    summary = summarize(config.model, dataset.num_features, dataset.num_classes, name=config.name)
    return summary.total_params, forward_flops(config.model, dataset.num_features, dataset.num_classes)


class _Progress:
    """One line per finished trial: its figures, the best validation accuracy so far and the front's size."""

    def __init__(self, plan: SearchPlan, print_fn: Printer) -> None:
        self.plan, self.print_fn = plan, print_fn

    def __call__(self, study, trial) -> None:
        from optuna.trial import TrialState

        if trial.state == TrialState.PRUNED:
            return
        if trial.state == TrialState.FAIL:
            reason = trial.user_attrs.get("failure", "interrupted; queued again")
            self.print_fn(f"trial {trial.number:4d} failed: {reason}")
            return
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        best = max(t.values[0] for t in complete)
        front = len(study.best_trials)
        fig = trial.user_attrs.get("figures", {})
        costs = ", ".join(f"{c} {_short(fig.get(c))}" for c in self.plan.costs)
        self.print_fn(f"trial {trial.number:4d} done: val accuracy {trial.values[0]:.4f}, {costs} | "
                      f"{len(complete)}/{self.plan.trials} complete, best val accuracy {best:.4f}, front {front}")


def _short(value: Any) -> str:
    if isinstance(value, float) and value < 1e4:
        return f"{value:.1f}"
    return f"{value:.3g}" if isinstance(value, (int, float)) else str(value)


# ---------------------------------------------------------------- the whole search

def _worker_process(plan: SearchPlan, worker: int, verbose: int) -> None:
    try:
        ok = run_worker(plan, worker=worker, print_fn=lambda line: print(line, flush=True), verbose=verbose)
    except MlplabError as exc:
        print(f"error: worker {worker}: {exc}", file=sys.stderr, flush=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(0 if ok else 130)


def run_search(plan: SearchPlan, *, print_fn: Printer = print, verbose: int = 0, finish: bool = True) -> SearchOutcome:
    """Run `plan.workers` workers on this machine (this process is one), then refit the front and report."""
    space = load_space(plan.space)  # every problem with the space, before anything starts
    study = open_study(plan, space)
    print_fn(f"Search {study.study_name!r}: {plan.trials} trials of {space.name} "
             f"(objectives: val_accuracy up, {', '.join(plan.costs)} down) in "
             f"{describe_url(str(plan.storage)) if plan.storage else plan.out / 'study.journal'}; "
             f"{plan.workers} worker(s) x {plan.threads_per_worker} thread(s)")
    plan = replace(plan, threads=plan.threads_per_worker)
    children = []
    if plan.workers > 1:
        if plan.tracking:
            plan.tracking.prepare(plan.out)  # the store made once, before the workers race to make it
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no fork of torch's threads
        for index in range(1, plan.workers):
            proc = ctx.Process(target=_worker_process, args=(replace(plan, run_callbacks=()), index, verbose), daemon=False)
            proc.start()
            children.append(proc)
    interrupted = False
    try:
        interrupted = not run_worker(plan, worker=0, print_fn=print_fn, verbose=verbose, study=study)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        for proc in children:
            while proc.is_alive():
                try:
                    proc.join()
                except KeyboardInterrupt:  # the workers got the same Ctrl-C and are saving
                    interrupted = True
            interrupted = interrupted or proc.exitcode == 130
    failed = [p.exitcode for p in children if p.exitcode not in (0, 130)]
    if failed and not interrupted:
        raise TrainingError(f"{len(failed)} worker(s) failed (exit status {failed[0]}); see their messages above")
    complete = _counts(study)["complete"]
    if interrupted or complete < plan.trials or not finish:
        if interrupted:
            print_fn("Search interrupted; run the same command again to continue it.")
        elif complete < plan.trials:
            print_fn(f"Search stopped at {complete} of {plan.trials} complete trials (--timeout); "
                     "run the same command again to continue it.")
        return SearchOutcome(complete, interrupted, [t.number for t in study.best_trials] if complete else [])
    return finish_search(plan, space, study, print_fn=print_fn, verbose=verbose)


def finish_search(plan: SearchPlan, space: SearchSpace, study, *, print_fn: Printer = print, verbose: int = 0) -> SearchOutcome:
    """Refit the front's trials on all training images, score them once on the test set, and report."""
    from mlplab.runs import load_run_dataset
    from mlplab.studies.search.report import build_search_report
    from mlplab.training.device import resolve_runtime

    runtime = resolve_runtime(plan.device, "fp32", plan.threads)
    dataset = load_run_dataset(plan.dataset or space.base.dataset, data_dir=plan.data_dir, limit=plan.limit)
    front = sorted(study.best_trials, key=lambda t: (t.values[1] if len(t.values) > 1 else 0, -t.values[0]))
    chosen = spread(front, plan.refit_top)
    print_fn(f"Pareto front: {len(front)} trial(s); refitting {len(chosen)} on all training images, "
             "each scored once on the test set")
    refits = {}
    for trial in chosen:
        refits[trial.number] = refit_trial(plan, study, trial, dataset, runtime, print_fn, verbose)
    if plan.reference:
        train_references(plan, space, study, dataset, runtime, print_fn, verbose)
    report = build_search_report(study, plan.out, print_fn=print_fn, command=" ".join(plan.command))
    return SearchOutcome(_counts(study)["complete"], False, [t.number for t in front], report, refits)


def spread(front: list, top: int) -> list:
    """At most `top` trials spread evenly along the front (both ends kept)."""
    if top <= 0 or not front:
        return []
    if len(front) <= top:
        return list(front)
    if top == 1:
        return [max(front, key=lambda t: t.values[0])]
    step = (len(front) - 1) / (top - 1)
    return [front[round(i * step)] for i in range(top)]


def refit_config(trial_config: dict[str, Any], kept_epoch: int, name: str) -> ExperimentConfig:
    """The trial's config trained on all training images for the epochs its validation run kept."""
    config = config_from_dict(trial_config, source=f"trial config of {name}")
    return config.with_overrides({"name": name, "training.epochs": kept_epoch, "training.early_stopping": None,
                                  "training.validation_split": 0.0, "training.refit": False})


def refit_trial(plan: SearchPlan, study, trial, dataset, runtime, print_fn: Printer, verbose: int) -> dict[str, Any]:
    from mlplab.safeio import atomic_write_text

    key = f"refit:{trial.number}"
    if key in study.user_attrs:
        print_fn(f"trial {trial.number}: refit already done ({study.user_attrs[key]['test_accuracy']:.4f} test accuracy)")
        return study.user_attrs[key]
    figures = trial.user_attrs["figures"]
    name = f"{study.study_name}-front-{trial.number:04d}"
    config = refit_config(trial.user_attrs["config"], figures["kept_epoch"], name)
    run_path = (plan.out / "refit" / f"{trial.number:04d}").resolve()
    metrics = _train_or_reuse(config, run_path, plan, dataset, runtime, verbose)
    toml_path = plan.out / "front" / f"trial-{trial.number:04d}.toml"
    toml_path.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# Pareto-front trial {trial.number} of study {study.study_name!r}: validation accuracy "
              f"{figures['val_accuracy']:.4f} after {figures['kept_epoch']} epoch(s) on the training split;\n"
              f"# this config trains it on all training images for those epochs (test accuracy "
              f"{metrics['test_accuracy']:.4f}{', first ' + str(plan.limit) + ' images' if plan.limit else ''}).\n"
              f"# Train it: mlplab train {toml_path.name}\n")
    atomic_write_text(toml_path, header + config.to_toml())
    record = {"test_accuracy": metrics["test_accuracy"], "test_loss": metrics["test_loss"], "run_dir": str(run_path),
              "host": socket.gethostname(), "train_flops": metrics["train_flops"], "epochs": figures["kept_epoch"],
              "config_toml": header + config.to_toml()}
    study.set_user_attr(key, record)
    print_fn(f"trial {trial.number}: val accuracy {figures['val_accuracy']:.4f} -> refit test accuracy "
             f"{metrics['test_accuracy']:.4f}; config {toml_path}")
    return record


def train_references(plan: SearchPlan, space: SearchSpace, study, dataset, runtime, print_fn: Printer, verbose: int) -> None:
    """The tutorial's three models trained as trials are (same data, split, seed, epoch cap), for the report."""
    from mlplab.studies.tutorial import TUTORIAL_MODELS

    for name in TUTORIAL_MODELS:
        key = f"reference:{name}"
        if key in study.user_attrs:
            continue
        config = load_config(name).with_overrides({
            "dataset": dataset.name, "training.refit": False, "training.seed": space.base.training.seed,
            "training.validation_split": space.base.training.validation_split,
            "training.epochs": min(load_config(name).training.epochs, space.base.training.epochs),
        })
        run_path = (plan.out / "reference" / name).resolve()
        result = _train_or_reuse(config, run_path, plan, dataset, runtime, verbose, keep_result=True)
        figures = objectives.trial_figures(result["metrics"], result["rows"], result["kept_epoch"], *_sizes(config, dataset))
        study.set_user_attr(key, {**figures, "run_dir": str(run_path)})
        print_fn(f"reference {name}: val accuracy {figures['val_accuracy']:.4f}, {_short(figures['train_flops'])} training FLOPs")


def _train_or_reuse(config: ExperimentConfig, run_path: Path, plan: SearchPlan, dataset, runtime, verbose: int,
                    keep_result: bool = False) -> dict[str, Any]:
    """Train `config` into `run_path`; reuse the run when it finished, resume it when it was interrupted."""
    from mlplab.errors import RunBusyError
    from mlplab.runs import RunDir, RunPlan, open_run, resume_run, start_run
    from mlplab.runs.lock import is_locked

    run = RunDir(run_path)
    while True:  # another worker of the same study may be refitting the same trial: wait for it, then reuse
        while is_locked(run_path):
            time.sleep(0.5)
        try:
            return _train_or_reuse_once(config, run_path, plan, dataset, runtime, verbose, keep_result)
        except RunBusyError:
            continue


def _train_or_reuse_once(config: ExperimentConfig, run_path: Path, plan: SearchPlan, dataset, runtime, verbose: int,
                         keep_result: bool) -> dict[str, Any]:
    from mlplab.runs import RunDir, RunPlan, open_run, resume_run, start_run

    run = RunDir(run_path)
    if run.run_json.is_file() and run.read_info().get("status") == "finished":
        record = open_run(run_path)
        metrics = record.metrics
        rows, kept = record.history, int(metrics["kept_epoch"])
    else:
        if run.run_json.is_file():
            result = resume_run(run_path, runtime=runtime, dataset=dataset, verbose=verbose, data_dir=plan.data_dir)
        else:
            result = start_run(RunPlan(config, run_path, limit=plan.limit, data_dir=plan.data_dir, runtime=runtime,
                                       overwrite=run.holds_anything(), command=plan.command), dataset=dataset, verbose=verbose)
        if not result.ok:
            raise TrainingError(result.message or f"{run_path}: {result.cause.value}", exit_code=result.exit_status)
        metrics, rows, kept = result.metrics, result.history.rows, result.history.kept_epoch
    return {"metrics": metrics, "rows": rows, "kept_epoch": kept} if keep_result else metrics
