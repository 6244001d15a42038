"""Where a run happens: plan → start (or resume) → fit → refit → test → saved run → RunResult.

`start_run(plan)` trains into a new run directory; `resume_run(path)` continues one that was
interrupted (or failed, or whose process died) exactly as if it had never stopped. Both hold the
run directory's lock while they write, and every way the run can end is a `StopCause`.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch

from mlplab.config import ExperimentConfig, load_config
from mlplab.data import Dataset, load_dataset
from mlplab.data.preprocess import flatten_scale, train_val_split
from mlplab.errors import ConfigError, ModelFileError, StorageError
from mlplab.model.build import MLP, build_model
from mlplab.model.flops import training_flops
from mlplab.runs.model_file import save_model
from mlplab.runs.plan import RunPlan, ValidateOn
from mlplab.runs.result import RUN_STATUS, RunResult, StopCause
from mlplab.runs.run_dir import HistoryWriter, RunDir
from mlplab.safeio import atomic_write_text, read_json, write_json
from mlplab.training import History, Runtime, evaluate, fit, resolve_runtime, standard_callbacks
from mlplab.training.callbacks import Callback
from mlplab.training.augment import resolve_image_shape
from mlplab.training.checkpoint import read_checkpoint_extra
from mlplab.training.config import TrainingConfig
from mlplab.training.gradients import describe as describe_gradients


@dataclass
class PreparedData:
    """Features scaled to [0, 1], labels as integers, and which data the validation metrics use."""

    train: tuple[np.ndarray, np.ndarray]
    validation: tuple[np.ndarray, np.ndarray] | None
    test: tuple[np.ndarray, np.ndarray]
    validate_on: str  # val | test | none


def load_run_dataset(name: str, *, data_dir: str | Path | None, limit: int | None) -> Dataset:
    dataset = load_dataset(name, data_dir=data_dir)
    return dataset.subset(train=limit, test=limit) if limit else dataset


def prepare_data(dataset: Dataset, validation_split: float, seed: int, validate_on: ValidateOn = "val") -> PreparedData:
    """Flatten and scale; carve the validation split from the training data (stratified, seeded).

    Refuses, with one line, data too small for the split (an empty training, validation or test set).
    """
    y_train = dataset.y_train.astype(np.int64)
    if len(dataset.y_test) == 0:
        raise ConfigError(f"{dataset.name}: the test set is empty")
    if len(y_train) == 0:  # checked first: the split and the messages below assume training images
        raise ConfigError(f"{dataset.name}: the training set is empty")
    test = (flatten_scale(dataset.x_test), dataset.y_test.astype(np.int64))
    if validate_on == "test":
        data = PreparedData((flatten_scale(dataset.x_train), y_train), test, test, "test")
    elif validate_on != "val":
        raise ConfigError(f"validate_on must be val or test, got {validate_on!r}")
    elif validation_split == 0:
        data = PreparedData((flatten_scale(dataset.x_train), y_train), None, test, "none")
    else:
        # Split the uint8 images, then scale each part: the float32 copies (188 MB for MNIST) are
        # made once, not twice; faulting in fresh memory is most of this function's time.
        try:
            x_tr, y_tr, x_val, y_val = train_val_split(dataset.x_train, y_train, val_fraction=validation_split, seed=seed)
        except ValueError as exc:
            raise ConfigError(f"{dataset.name}: {exc}") from None
        if len(y_val) == 0:
            raise ConfigError(
                f"{dataset.name}: {len(y_train)} training images are too few for a validation split of "
                f"{validation_split} (none would be held out); use more images (a larger --limit)"
            )
        data = PreparedData((flatten_scale(x_tr), y_tr), (flatten_scale(x_val), y_val), test, "val")
    return data


def start_run(
    plan: RunPlan,
    *,
    dataset: Dataset | None = None,
    verbose: int = 1,
    stream: TextIO | None = None,
    callbacks: tuple[Callback, ...] = (),
) -> RunResult:
    """Train the plan's model into a new run directory and score it once on the test set.

    Everything that can be checked (config, data, the split, the output folder) is checked
    before the folder is created. `dataset` passes data already loaded for this plan (a study
    training many models on one dataset); `callbacks` are added before the progress printer.
    """
    config = plan.config
    runtime = plan.runtime or resolve_runtime()
    if dataset is None:
        dataset = load_run_dataset(config.dataset, data_dir=plan.data_dir, limit=plan.limit)
    data = prepare_data(dataset, config.training.validation_split, config.training.seed, plan.validate_on)
    check_augmentable(config.training, dataset)
    model = build_model(config.model, dataset.num_features, dataset.num_classes, seed=config.training.seed)
    runtime = runtime.for_model(model, config.training.batch_size)  # "auto": measured once, recorded below
    if verbose and runtime.choice is not None and runtime.choice.note():
        print(f"note: {runtime.choice.note()}", file=stream or sys.stdout)
    run = RunDir(plan.out)
    with run.create(overwrite=plan.overwrite):
        record_start(run, plan, dataset, runtime, model)
        return _execute(_Job(run=run, config=config, model=model, dataset=dataset, data=data, runtime=runtime,
                             verbose=verbose, stream=stream, resume_from=None, callbacks=tuple(callbacks)))


def check_augmentable(training: TrainingConfig, dataset: Dataset) -> None:
    """Refuse, before the run's folder exists, images that `fit` could not augment (not square)."""
    if training.augment is not None and training.augment.active:
        resolve_image_shape(dataset.num_features, dataset.image_shape)


def record_start(run: RunDir, plan: RunPlan, dataset: Dataset, runtime: Runtime, model: MLP, **extra: Any) -> None:
    """config.toml, then run.json saying what runs, on what and how (`extra`: more keys for run.json)."""
    config = plan.config
    atomic_write_text(run.config, config.to_toml())  # before run.json: a run.json always has its config
    run.update_info(
        format="mlplab.run/1",
        name=config.name,
        status="running",
        command=list(plan.command),
        dataset={"name": dataset.name, "source": dataset.source, "limit": plan.limit},
        validate_on=plan.validate_on,
        runtime={**runtime.record(),
                 "gradients": describe_gradients(model, config.training.loss, runtime.precision,
                                             mode=config.training.gradients)},
        config=config.to_dict(),
        started=_now(),
        **extra,
    )


def resume_run(
    run_path: str | Path,
    *,
    data_dir: str | Path | None = None,
    runtime: Runtime | None = None,
    dataset: Dataset | None = None,
    verbose: int = 1,
    stream: TextIO | None = None,
    callbacks: tuple[Callback, ...] = (),
) -> RunResult:
    """Continue a run that did not finish (interrupted, failed, or its process died) from its last
    checkpoint, or from the start when it stopped before the first one; ends as an uninterrupted
    run would. A config.toml edited since the run started is refused, naming what changed."""
    run = RunDir(Path(run_path))
    if not run.run_json.is_file():
        raise ModelFileError(f"{run.path}: not an mlplab run directory (no run.json)")
    with run.lock():
        info = run.read_info()
        if info.get("status") in ("finished", "non_finite"):
            raise ModelFileError(f"{run.path}: this run already finished; nothing to resume")
        config = load_config(run.config)
        recorded = read_checkpoint_extra(run.checkpoint).get("config") if run.checkpoint.is_file() else None
        recorded = recorded if recorded is not None else info.get("config")
        if recorded is not None:
            changes = config_changes(recorded, config.to_dict())
            if changes:
                raise ConfigError(
                    f"{run.config} was changed since the run started ({'; '.join(changes)}); a resumed run "
                    f"must continue as it began: undo the change, or train a new run with the new config"
                )
        saved_runtime = info.get("runtime", {})
        # The recorded thread count too: it changes the last bits of the weights.
        runtime = runtime or resolve_runtime(saved_runtime.get("device", "auto"), saved_runtime.get("precision", "fp32"),
                                             saved_runtime.get("threads"))
        # "auto" continues in the precision the run chose when it started (a new probe might differ).
        runtime = runtime.with_recorded_precision(saved_runtime.get("precision", "fp32"))
        dataset_info = info.get("dataset", {})
        if dataset is None:
            dataset = load_run_dataset(dataset_info.get("name", config.dataset), data_dir=data_dir,
                                       limit=dataset_info.get("limit"))
        validate_on = info.get("validate_on", "val")
        data = prepare_data(dataset, config.training.validation_split, config.training.seed, validate_on)
        model = build_model(config.model, dataset.num_features, dataset.num_classes, seed=config.training.seed)
        run.update_info(status="running", resumed=_now())
        resume_from = run.checkpoint if run.checkpoint.is_file() else None
        return _execute(_Job(run=run, config=config, model=model, dataset=dataset, data=data, runtime=runtime,
                             verbose=verbose, stream=stream, resume_from=resume_from, callbacks=tuple(callbacks)))


def train_run(
    config: ExperimentConfig | str | Path,
    *,
    out: str | Path,
    dataset: Dataset | str | None = None,
    data_dir: str | Path | None = None,
    seed: int | None = None,
    limit: int | None = None,
    validate_on: ValidateOn = "val",
    runtime: Runtime | None = None,
    overwrite: bool = False,
    verbose: int = 1,
    stream: TextIO | None = None,
    command: list[str] | None = None,
    callbacks: tuple[Callback, ...] = (),
) -> RunResult:
    """Train one model from a config (or a shipped config's name) into `out`: the notebook's one call.

    `dataset` is a dataset's name, or a `Dataset` already loaded; see `RunPlan` for the rest.
    """
    loaded = dataset if isinstance(dataset, Dataset) else None
    plan = RunPlan(
        config=config if isinstance(config, ExperimentConfig) else load_config(config),
        out=Path(out), dataset=loaded.name if loaded is not None else dataset, seed=seed, validate_on=validate_on,
        limit=limit, data_dir=Path(data_dir) if data_dir is not None else None, runtime=runtime,
        overwrite=overwrite, command=tuple(command or ()),
    )
    return start_run(plan, dataset=loaded, verbose=verbose, stream=stream, callbacks=callbacks)


@dataclass(frozen=True)
class _Job:
    """A run being trained: its folder, what to train on what, and how (start and resume build one)."""

    run: RunDir
    config: ExperimentConfig
    model: MLP
    dataset: Dataset
    data: PreparedData
    runtime: Runtime
    verbose: int
    stream: TextIO | None
    resume_from: Path | None  # the checkpoint to continue from (None: from the start)
    callbacks: tuple[Callback, ...]  # the caller's, added before the progress printer


def _execute(job: _Job) -> RunResult:
    """Fit (and refit), score and save, turning every way this can end into a RunResult."""
    run = job.run
    try:
        return _fit_and_save(job)
    except KeyboardInterrupt:  # Ctrl-C outside the training loop (which turns it into a flag)
        return interrupted_outside_training(run)
    except StorageError as exc:
        return storage_failed(run, exc)
    except Exception as exc:
        failed_unexpectedly(run, exc)
        raise


def failed_unexpectedly(run: RunDir, exc: Exception) -> None:
    """A bug, or a refusal that came too late: run.json says so, instead of "running" for ever."""
    _mark(run, status="failed", failed=_now(), error=f"{type(exc).__name__}: {exc}")


def interrupted_outside_training(run: RunDir) -> RunResult:
    _mark(run, status="interrupted", interrupted=_now())
    return RunResult(run, StopCause.INTERRUPTED, History(), signal="SIGINT",
                     message=f"interrupted; resume with: mlplab train --resume {run.path}")


def storage_failed(run: RunDir, exc: StorageError) -> RunResult:
    _mark(run, status="failed", failed=_now(), error=str(exc))
    return RunResult(run, StopCause.FAILED, History(),
                     message=f"{exc}; once that is fixed, resume with: mlplab train --resume {run.path}")


def run_callbacks(job: _Job) -> list[Callback]:
    """The run's training callbacks: the standard set, its checkpoint and history files, the caller's."""
    return standard_callbacks(
        job.config.training, checkpoint_path=job.run.checkpoint, checkpoint_extra={"config": job.config.to_dict()},
        extra=[HistoryWriter(job.run), *job.callbacks], verbose=job.verbose, stream=job.stream,
    )


def _fit_and_save(job: _Job) -> RunResult:
    start = time.perf_counter()
    history = fit(job.model, job.config.training, job.data.train, job.data.validation, callbacks=run_callbacks(job),
                  runtime=job.runtime, resume_from=job.resume_from, image_shape=job.dataset.image_shape)
    wall = time.perf_counter() - start
    if history.interrupted:
        return interrupted_run(job.run, history, seconds=earlier_seconds(job) + wall)
    refit = None
    if wants_refit(job, history):
        refit_start = time.perf_counter()
        refitted, refit_history = refit_on_all_training_data(job, history.kept_epoch)
        refit = Refit(refitted, refit_history, time.perf_counter() - refit_start)
    return save_run(job, history, wall, refit)


def interrupted_run(run: RunDir, history: History, *, seconds: float) -> RunResult:
    """`seconds`: the run's training time so far, kept in run.json for the resumed run to add to."""
    return _interrupted(run, history, f"the state after epoch {_last_saved_epoch(run)} is saved in {run.checkpoint}",
                        seconds=seconds)


def earlier_seconds(job: _Job) -> float:
    """The training time of the sessions this one continues from their checkpoint (0 for a new run)."""
    return job.run.read_info().get("train_seconds", 0.0) if job.resume_from is not None else 0.0


def wants_refit(job: _Job, history: History) -> bool:
    """Whether the config asks for a refit on all training data, and the run ended in a way that allows one."""
    cause = stop_cause(history)
    return (cause.saved_model and cause is not StopCause.NON_FINITE and job.config.training.refit
            and job.data.validate_on == "val")


@dataclass(frozen=True)
class Refit:
    """A fresh model trained on all the training data for the epochs the validation run kept."""

    model: MLP
    history: History
    seconds: float


def save_run(job: _Job, history: History, wall: float, refit_run: Refit | None) -> RunResult:
    """After training (and any refit): score on the test set once, save model, metrics and status."""
    run, config, model, dataset, data, runtime = job.run, job.config, job.model, job.dataset, job.data, job.runtime
    cause = stop_cause(history)
    samples_seen = len(data.train[0]) * history.epochs_run
    previous_wall = earlier_seconds(job)
    refit: dict[str, Any] | None = None
    if refit_run is not None:
        if refit_run.history.interrupted:  # the refit's time is lost: it starts again
            return _interrupted(run, history, "it was refitting on all training data (the refit starts again)",
                                refit_run.history.interrupted, seconds=previous_wall + wall)
        model = refit_run.model
        if refit_run.history.stopped_by == "non_finite":
            cause = StopCause.NON_FINITE
            history.stop_reason = f"refit on all training data: {refit_run.history.stop_reason}"
        refit = {"epochs": history.kept_epoch, "train_samples": len(dataset.y_train), "seconds": refit_run.seconds}
        samples_seen += len(dataset.y_train) * history.kept_epoch
        wall += refit["seconds"]
    metrics = evaluate(model, data.test, loss=config.training.loss, runtime=runtime, per_class=True)
    outcome = {
        "epochs_run": history.epochs_run,
        "kept_epoch": history.kept_epoch,
        "stop_cause": cause.value,
        "stop_reason": history.stop_reason,
        "train_samples": len(data.train[0]),
        "validation_samples": len(data.validation[0]) if data.validation is not None else 0,
        "validate_on": data.validate_on,
        "train_seconds": previous_wall + wall,
        "train_flops": training_flops(config.model, dataset.num_features, dataset.num_classes, samples_seen),
        "refit": refit,
    }
    test_metrics = {
        "test_loss": metrics["loss"],
        "test_accuracy": metrics["accuracy"],
        "per_class_accuracy": metrics["per_class_accuracy"],
        "test_samples": len(data.test[0]),
    }
    save_model(
        run.path, model, name=config.name, class_names=list(dataset.class_names), image_shape=dataset.image_shape,
        extra={
            "dataset": {"name": dataset.name, "source": dataset.source},
            "config": config.to_dict(),
            "training": outcome,
            "metrics": test_metrics,
        },
    )
    write_json(run.metrics, {**test_metrics, **outcome})
    run.update_info(status=RUN_STATUS[cause], stop_cause=cause.value, finished=_now(),
                    train_seconds=outcome["train_seconds"])
    message = f"{history.stop_reason}; model saved in {run.path}" if cause is StopCause.NON_FINITE else ""
    return RunResult(run, cause, history, model, {**test_metrics, **outcome}, message)


def stop_cause(history: History) -> StopCause:
    """How fit ended, from the history's flags (never from its messages)."""
    if history.interrupted:
        return StopCause.INTERRUPTED
    if history.stopped_by == "non_finite":
        return StopCause.NON_FINITE
    if history.stopped_by == "early_stopping":
        return StopCause.EARLY_STOPPED
    return StopCause.COMPLETED


def _interrupted(run: RunDir, history: History, where: str, signal: str | None = None, *, seconds: float) -> RunResult:
    signal = signal or history.interrupted or "SIGINT"
    run.update_info(status="interrupted", interrupted=_now(), train_seconds=seconds)
    message = f"interrupted by {signal}; {where}. Resume with: mlplab train --resume {run.path}"
    return RunResult(run, StopCause.INTERRUPTED, history, message=message, signal=signal)


def refit_on_all_training_data(job: _Job, epochs: int) -> tuple[MLP, History]:
    """A fresh model (same seed) trained on training + validation data for the kept number of epochs."""
    config, dataset, data, verbose, stream = job.config, job.dataset, job.data, job.verbose, job.stream
    x = np.concatenate([data.train[0], data.validation[0]])  # type: ignore[index]
    y = np.concatenate([data.train[1], data.validation[1]])  # type: ignore[index]
    training: TrainingConfig = config.training.model_copy(update={"epochs": epochs, "early_stopping": None, "refit": False})
    if verbose:
        print(f"Refit on all {len(y)} training images for {epochs} epochs", file=stream or sys.stdout)
    model = build_model(config.model, dataset.num_features, dataset.num_classes, seed=config.training.seed)
    history = fit(model, training, (x, y), None, callbacks=standard_callbacks(training, verbose=verbose, stream=stream),
                  runtime=job.runtime, image_shape=dataset.image_shape)
    return model, history


def config_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """`training.optimizer.learning_rate: 0.001 -> 0.01`, one entry per changed key."""
    flat_before, flat_after = _flatten(before), _flatten(after)
    changes = []
    for key in sorted(set(flat_before) | set(flat_after)):
        old, new = flat_before.get(key, "(unset)"), flat_after.get(key, "(unset)")
        if old != new:
            changes.append(f"{key}: {old!r} -> {new!r}")
    return changes


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(node, list):
        out = {}
        for index, value in enumerate(node):
            out.update(_flatten(value, f"{prefix}[{index}]"))
        return out or {prefix: []}
    return {prefix: node}


def _mark(run: RunDir, **changes: Any) -> None:
    """Record how the run ended when the disk lets us; a run left at "running" stays resumable."""
    try:
        run.update_info(**changes)
    except (StorageError, ModelFileError, OSError):
        pass


def _last_saved_epoch(run: RunDir) -> int:
    try:
        return len(read_json(run.history_json)["rows"])
    except (ModelFileError, KeyError, TypeError):
        return 0


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
