"""Several runs trained as one pack (`mlplab.training.pack`): one run directory each, as if alone.

`start_pack(plans)` is `start_run` for plans whose models can share a pack (the seeds of one
config, typically): each plan gets the run directory `start_run` would write (config, run.json,
history, checkpoint after every epoch, model file, metrics), trained together, and run.json says
`"pack": {"size": N, ...}`. The refits on all training data (configs with `refit = true`) are
packed too. Plans that cannot share a pack are started one after another with `start_run`.

Interrupted (Ctrl-C, SIGTERM), every member keeps its checkpoint of the last completed epoch and
is marked interrupted; each one is then resumed on its own (`mlplab train --resume RUN`, or
`reproduce` run again), which continues from that checkpoint exactly as a solo run would. The
packed and the solo step sum in different orders, so a run resumed alone ends within float
tolerance of the one the uninterrupted pack would have given, not bit for bit.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Sequence
from typing import TextIO

import numpy as np

from mlplab.data import Dataset
from mlplab.data.preprocess import flatten_scale, train_val_split
from mlplab.errors import ConfigError, StorageError
from mlplab.model.build import build_model
from mlplab.runs.lifecycle import (
    Refit, _Job, failed_unexpectedly, interrupted_outside_training, interrupted_run, load_run_dataset, prepare_data,
    record_start, run_callbacks, save_run, start_run, storage_failed, wants_refit,
)
from mlplab.runs.plan import RunPlan
from mlplab.runs.result import RunResult
from mlplab.runs.run_dir import RunDir
from mlplab.training import resolve_runtime, standard_callbacks
from mlplab.training.callbacks import Callback
from mlplab.training.pack import PackMember, fit_pack, pack_support

__all__ = ["start_pack"]


def start_pack(
    plans: Sequence[RunPlan],
    *,
    dataset: Dataset | None = None,
    verbose: int = 1,
    stream: TextIO | None = None,
    callbacks: Sequence[tuple[Callback, ...]] | None = None,
) -> list[RunResult]:
    """Train the plans together into a new run directory each; one RunResult per plan, in order.

    The plans must share dataset, limit and data folder (they are loaded once); `callbacks`, one
    tuple per plan, are added to that plan's run as `start_run` adds them.
    """
    plans = list(plans)
    per_plan = list(callbacks) if callbacks is not None else [() for _ in plans]
    if len(per_plan) != len(plans):
        raise ValueError(f"{len(plans)} plans but {len(per_plan)} tuples of callbacks")
    if not plans:
        return []
    first = plans[0]
    for plan in plans[1:]:
        if (plan.dataset, plan.limit, plan.data_dir) != (first.dataset, first.limit, first.data_dir):
            raise ConfigError(f"{plan.out}: a pack's runs must share dataset, --limit and data folder")
    if len({plan.out.resolve() for plan in plans}) != len(plans):
        raise ConfigError("two runs of the pack would share one run directory")
    if len(plans) == 1:
        return [start_run(first, dataset=dataset, verbose=verbose, stream=stream, callbacks=tuple(per_plan[0]))]
    runtime = first.runtime or resolve_runtime()
    if dataset is None:
        dataset = load_run_dataset(first.config.dataset, data_dir=first.data_dir, limit=first.limit)
    print_line = (lambda line: print(line, file=stream or sys.stdout)) if verbose else (lambda line: None)
    features, labels = flatten_scale(dataset.x_train), dataset.y_train.astype(np.int64)
    jobs, members = [], []
    for plan, extra in zip(plans, per_plan):
        config = plan.config
        data = prepare_data(dataset, config.training.validation_split, config.training.seed, plan.validate_on)
        model = build_model(config.model, dataset.num_features, dataset.num_classes, seed=config.training.seed)
        jobs.append(_Job(run=RunDir(plan.out), config=config, model=model, dataset=dataset, data=data,
                         runtime=runtime.for_model(model, config.training.batch_size),  # "auto" decided as start_run does
                         verbose=verbose, stream=stream, resume_from=None, callbacks=tuple(extra)))
        train, _ = _split_rows(labels, config.training.validation_split, config.training.seed, data.validate_on)
        members.append(PackMember(model, config.training, (features, labels), data.validation, train_rows=train))
    support = pack_support(members, jobs[0].runtime)  # precision already decided per run above
    if not support.ok:
        print_line(f"Training the {len(plans)} runs one after another: {support.reason}")
        return [start_run(plan, dataset=dataset, verbose=verbose, stream=stream, callbacks=tuple(extra))
                for plan, extra in zip(plans, per_plan)]
    print_line(f"Training {len(plans)} runs as one pack: {support.reason}")
    pack_record = {"size": len(plans), "runs": [str(plan.out) for plan in plans]}
    with contextlib.ExitStack() as held:
        for plan, job in zip(plans, jobs):
            held.enter_context(job.run.create(overwrite=plan.overwrite))
        for plan, job in zip(plans, jobs):
            record_start(job.run, plan, dataset, job.runtime, job.model, pack=pack_record)
        try:
            return _train(jobs, members, features, labels)
        except KeyboardInterrupt:  # Ctrl-C outside the training loop (which turns it into a flag)
            return [interrupted_outside_training(job.run) for job in jobs]
        except StorageError as exc:
            return [storage_failed(job.run, exc) for job in jobs]
        except Exception as exc:
            for job in jobs:
                failed_unexpectedly(job.run, exc)
            raise


def _train(jobs: list[_Job], members: list[PackMember], features: np.ndarray, labels: np.ndarray) -> list[RunResult]:
    for job, member in zip(jobs, members):
        member.callbacks = run_callbacks(job)
    start = time.perf_counter()
    histories = fit_pack(members, runtime=jobs[0].runtime)
    wall = time.perf_counter() - start  # each member waited for the whole pack
    if any(history.interrupted for history in histories):
        return [interrupted_run(job.run, history, seconds=wall) for job, history in zip(jobs, histories)]
    refits = _refit_pack([(job, history) for job, history in zip(jobs, histories) if wants_refit(job, history)],
                         features, labels)
    return [save_run(job, history, wall, refits.get(id(job))) for job, history in zip(jobs, histories)]


def _refit_pack(wanted: list[tuple[_Job, object]], features: np.ndarray, labels: np.ndarray) -> dict[int, Refit]:
    """`refit_on_all_training_data` for every run that wants it, as one pack (each its kept epochs)."""
    if not wanted:
        return {}
    members, models = [], []
    for job, history in wanted:
        config = job.config
        training = config.training.model_copy(update={"epochs": history.kept_epoch, "early_stopping": None,
                                                      "refit": False})
        train, validation = _split_rows(labels, config.training.validation_split, config.training.seed, "val")
        model = build_model(config.model, job.dataset.num_features, job.dataset.num_classes, seed=config.training.seed)
        models.append(model)
        # The refit's training set is the validation run's training rows, then its validation rows.
        members.append(PackMember(model, training, (features, labels), None,
                                  callbacks=standard_callbacks(training, verbose=job.verbose, stream=job.stream),
                                  train_rows=np.concatenate([train, validation])))
    if wanted[0][0].verbose:
        print(f"Refit {len(wanted)} models on all {len(labels)} training images for the epochs each kept",
              file=wanted[0][0].stream or sys.stdout)
    start = time.perf_counter()
    histories = fit_pack(members, runtime=wanted[0][0].runtime)
    seconds = time.perf_counter() - start
    return {id(job): Refit(model, history, seconds) for (job, _), model, history in zip(wanted, models, histories)}


def _split_rows(labels: np.ndarray, split: float, seed: int, validate_on: str) -> tuple[np.ndarray, np.ndarray]:
    """The training and validation rows `prepare_data` picks for this seed (validation: none unless "val")."""
    if validate_on != "val":
        return np.arange(len(labels)), np.arange(0)
    rows, _, validation, _ = train_val_split(np.arange(len(labels)), labels, val_fraction=split, seed=seed)
    return rows, validation
