"""The tutorial's experiment as one study: its three models (each a fresh network), N seeds each,
trained through the run layer, then compared in one report.

Run again into the same folder, it continues: finished runs are reused (when their config is the
one planned), an interrupted one is resumed, the missing ones are trained.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mlplab.config import TUTORIAL_MODELS, ExperimentConfig, load_config
from mlplab.data import Dataset
from mlplab.data.dataset import describe
from mlplab.errors import ConfigError, TrainingError
from mlplab.model.summary import summarize
from mlplab.runs import RunDir, RunPlan, RunResult, load_run_dataset, open_run, resume_run, start_run
from mlplab.runs.lifecycle import config_changes
from mlplab.runs.pack import start_pack
from mlplab.runs.plan import VALIDATE_ON
from mlplab.studies.compare import Printer, compare_runs
from mlplab.studies.recipes import RECIPES, recipes_for
from mlplab.training import Runtime, resolve_runtime
from mlplab.training.callbacks import Callback

if TYPE_CHECKING:
    from mlplab.tracking import StudyTracking, Tracking

THIRD_MODEL_NOTE = (
    "The tutorial's text calls model2.fit a second time where it means to train its third model, so its "
    "'third model' curve is really the second model trained further; here the 128-64 model is trained as "
    "its own fresh network."
)
HONEST_NOTE = (
    "Early stopping watched a validation split carved from the training data (stratified, seeded); the test "
    "set was scored once, at the end, and chose nothing."
)
REFIT_NOTE = (
    "Models whose config says refit = true were then trained afresh (same seed) on all the training images "
    "for the number of epochs the validation run kept; the curves show the validation run, the test figures "
    "the refit model."
)
RECIPES_NOTE = (
    "The recipe-* models are mlplab's training recipes (docs/recipes.md): chosen on a validation split with "
    "bench/recipe_search.py, they train on all the training images for a fixed number of epochs (no early "
    "stopping), so the test set chose nothing for them either."
)
RECIPE_NAMES = frozenset(r.config for r in RECIPES)


def print_data_facts(dataset: Dataset, print_fn: Printer) -> None:
    facts = describe(dataset)
    print_fn(f"Dataset {dataset.name} from {dataset.source}")
    for split in ("train", "test"):
        images, labels = facts[split]["images"], facts[split]["labels"]
        print_fn(
            f"  {split}: images {tuple(images['shape'])} {images['dtype']}, labels {tuple(labels['shape'])} {labels['dtype']}"
        )
    print_fn(
        f"  first training label {facts['first_train_label']}, its mean pixel {facts['first_train_image_mean']}, "
        f"pixel range {facts['pixel_range']}; flattened to {dataset.num_features} float32 columns scaled to [0, 1]"
    )


def reproduce(
    out: Path,
    *,
    dataset_name: str = "mnist",
    data_dir: str | Path | None = None,
    seeds: int = 1,
    validate_on: str = "val",
    limit: int | None = None,
    max_epochs: int | None = None,
    models: tuple[str, ...] = TUTORIAL_MODELS,
    runtime: Runtime | None = None,
    overwrite: bool = False,
    verbose: int = 1,
    print_fn: Printer = print,
    command: list[str] | None = None,
    tracking: "Tracking | None" = None,
    with_recipes: bool = False,
    pack: bool = True,
) -> dict[str, Path]:
    """Train the tutorial's models (`seeds` times each) and write the comparison report into `out`.

    `models` are config names or files; `with_recipes` adds the shipped recipes for the dataset
    (`mlplab.studies.recipes`) after them, so the report shows how far the same kind of model goes.
    `overwrite` trains every run afresh, replacing the runs already in `out`. `tracking` logs the
    study as a parent MLflow run with each run nested under it (and each run to TensorBoard). With
    `pack`, each model's seeds that have no run yet are trained together as one pack
    (`mlplab.runs.pack`); without, one after another.
    """
    if not models:
        raise ConfigError("give at least one config to reproduce")
    if seeds < 1:
        raise ConfigError(f"seeds must be at least 1, got {seeds}")
    if validate_on not in VALIDATE_ON:
        raise ConfigError(f"validate_on must be val or test, got {validate_on!r}")
    if with_recipes:
        added = recipes_for(dataset_name)
        if not added:
            raise ConfigError(f"no recipes for dataset {dataset_name!r} (recipes: {', '.join(r.config for r in RECIPES)})")
        models = (*models, *(name for name in added if name not in models))
    runtime = runtime or resolve_runtime()
    out = Path(out)
    plans = [
        RunPlan(config, out / "runs" / f"{config.name}-seed{seed}", seed=seed, validate_on=validate_on,  # type: ignore[arg-type]
                limit=limit, data_dir=Path(data_dir) if data_dir else None, runtime=runtime, overwrite=overwrite,
                command=tuple(command or ()))
        for config in (_study_config(name, dataset_name, max_epochs) for name in models)
        for seed in range(seeds)
    ]  # every plan checked (configs, --out) before anything is loaded or created
    dataset = load_run_dataset(dataset_name, data_dir=data_dir, limit=limit)
    print_data_facts(dataset, print_fn)
    study_tracking = (tracking.study(out, name=f"reproduce {dataset_name}", tags={"mlplab.dataset": dataset_name})
                      if tracking else contextlib.nullcontext(None))
    with study_tracking as study:
        artefacts = _train_and_compare(plans, out, dataset, dataset_name, limit, validate_on, seeds, runtime, data_dir,
                                       verbose, print_fn, command, study, pack)
        if study is not None:
            study.log_artifacts([p for p in artefacts.values() if isinstance(p, Path)])
    return artefacts


def _train_and_compare(plans: list[RunPlan], out: Path, dataset: Dataset, dataset_name: str, limit: int | None,
                       validate_on: str, seeds: int, runtime: Runtime, data_dir: str | Path | None, verbose: int,
                       print_fn: Printer, command: list[str] | None, study: "StudyTracking | None",
                       pack: bool = True) -> dict[str, Path]:
    refits = False
    packed: dict[Path, dict] = {}
    for index, plan in enumerate(plans):
        config = plan.config
        refits = refits or (config.training.refit and validate_on == "val")
        if index % seeds == 0:
            print_fn("")
            summarize(config.model, dataset.num_features, dataset.num_classes, name=config.name).print(print_fn)
            packed = (_train_new_seeds_as_pack(plans[index : index + seeds], dataset, verbose, print_fn, study)
                      if pack else {})
        if plan.out in packed:
            metrics = packed[plan.out]
        else:
            print_fn(f"\nTraining {config.name} (seed {plan.seed}) → {plan.out}")
            metrics = _run_or_continue(plan, dataset, verbose, print_fn, study)
        print_fn(
            f"{config.name} seed {plan.seed}: test loss {metrics['test_loss']:.4f}, test accuracy "
            f"{metrics['test_accuracy']:.4f} (epoch {metrics['kept_epoch']} of {metrics['epochs_run']} kept); "
            f"saved model: {plan.out}"
        )
    # With --validate-on test the report itself warns that the test figures are optimistic.
    third = [THIRD_MODEL_NOTE] if any(plan.config.name == "tutorial-128-64" for plan in plans) else []
    notes = third + ([HONEST_NOTE] if validate_on == "val" else []) + ([REFIT_NOTE] if refits else [])
    if any(plan.config.name in RECIPE_NAMES for plan in plans):
        notes.append(RECIPES_NOTE)
    if limit:
        notes.append(f"Quick run: only the first {limit} training and {limit} test images were used.")
    return compare_runs(
        [plan.out for plan in plans], out, runtime=runtime, data_dir=data_dir, print_fn=print_fn,
        title=f"Reproducing the MLP tutorial on {dataset_name}", commands=[" ".join(command or [])], notes=notes,
        datasets={(dataset_name, limit): dataset},
    )


def _train_new_seeds_as_pack(plans: list[RunPlan], dataset: Dataset, verbose: int, print_fn: Printer,
                             study: "StudyTracking | None") -> dict[Path, dict]:
    """One model's seeds that have no run yet, trained as one pack; their metrics by run directory.

    Runs already finished are reused and interrupted ones resumed (one by one) by
    `_run_or_continue`, as are all runs of a tracked study (each run is logged on its own).
    """
    fresh = [plan for plan in plans if plan.overwrite or not RunDir(plan.out).run_json.is_file()]
    if len(fresh) < 2 or study is not None:
        return {}
    print_fn(f"\nTraining {fresh[0].config.name} (seeds {', '.join(str(p.seed) for p in fresh)}) → "
             f"{fresh[0].out.parent}")
    results = start_pack(fresh, dataset=dataset, verbose=verbose)
    return {plan.out: _finished(result) for plan, result in zip(fresh, results)}


def _study_config(name: str, dataset_name: str, max_epochs: int | None) -> ExperimentConfig:
    config = load_config(name).with_overrides({"dataset": dataset_name})
    if max_epochs is not None:
        config = config.with_overrides({"training.epochs": min(config.training.epochs, max_epochs)})
    return config


def _run_or_continue(plan: RunPlan, dataset: Dataset, verbose: int, print_fn: Printer,
                     study: "StudyTracking | None" = None) -> dict:
    """Train the planned run, reuse it when it already finished, resume it when it was interrupted."""
    run = RunDir(plan.out)
    if plan.overwrite or not run.run_json.is_file():
        return _finished(_tracked(study, plan.out, lambda callbacks: start_run(
            plan, dataset=dataset, verbose=verbose, callbacks=callbacks)))
    info = run.read_info()
    recorded = info.get("config")
    if recorded is not None:
        changes = config_changes(recorded, plan.config.to_dict())
        if changes:
            raise ConfigError(
                f"{run.path} holds a run of another config ({'; '.join(changes[:3])}); "
                "use another --out, or --overwrite to train it again"
            )
    if info.get("status") in ("finished", "non_finite"):
        record = open_run(run.path)
        print_fn(f"reusing the finished run in {run.path}")
        if study is not None and not study.holds(run.path):  # trained before tracking was asked for
            with study.run(run.path) as tracked:
                tracked.log_finished()
        if info.get("status") == "non_finite":
            raise TrainingError(f"{run.path}: {record.metrics.get('stop_reason')}; use --overwrite to train it again",
                                exit_code=3)
        return record.metrics
    print_fn(f"resuming the unfinished run in {run.path}")
    return _finished(_tracked(study, run.path, lambda callbacks: resume_run(
        run.path, runtime=plan.runtime, dataset=dataset, verbose=verbose, data_dir=plan.data_dir, callbacks=callbacks)))


def _tracked(study: "StudyTracking | None", run_dir: Path,
             train: Callable[[tuple[Callback, ...]], RunResult]) -> RunResult:
    if study is None:
        return train(())
    with study.run(run_dir) as tracked:
        result = train(tracked.callbacks)
        tracked.finish(result)
    return result


def _finished(result: RunResult) -> dict:
    if not result.ok:  # interrupted, non-finite or failed: stop the study, keep what is saved
        raise TrainingError(result.message, exit_code=result.exit_status)
    return result.metrics
