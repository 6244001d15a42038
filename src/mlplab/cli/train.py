"""`mlplab train` and `mlplab evaluate`.

The computing modules (torch and everything that imports it) are imported inside the commands,
so that `mlplab --help` and the commands that do not compute start fast.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from mlplab.cli import options
from mlplab.errors import ConfigError


LOG_TO_HELP = (
    "Also log to tensorboard[:DIR] (default DIR: OUT/tensorboard) or mlflow[:URI] (default: sqlite:///OUT/mlflow.db, "
    "no server needed; any tracking URI works); repeatable. Needs mlplab[track]. A resumed run goes on logging where it did."
)


def default_run_dir(name: str) -> Path:
    return Path("runs") / f"{name}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"


def shortcut_overrides(epochs: int | None, batch_size: int | None, learning_rate: float | None) -> list[str]:
    """`--epochs 3` is `--set training.epochs=3`, and so on: the keys people reach for first."""
    overrides = []
    if epochs is not None:
        overrides.append(f"training.epochs={epochs}")
    if batch_size is not None:
        overrides.append(f"training.batch_size={batch_size}")
    if learning_rate is not None:
        overrides.append(f"training.optimizer.learning_rate={learning_rate!r}")
    return overrides


def train(
    config: Annotated[Optional[str], typer.Argument(help="A config file (.toml) or a shipped config's name (see `mlplab configs`).", show_default=False)] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a config key: --set training.epochs=3 (repeatable).", show_default="none")] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Shortcut for --set training.epochs=N.", show_default="the config's")] = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1, help="Shortcut for --set training.batch_size=N.", show_default="the config's")] = None,
    learning_rate: Annotated[Optional[float], typer.Option(help="Shortcut for --set training.optimizer.learning_rate=X.", show_default="the config's")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Dataset to train on: mnist, fashion-mnist, kmnist, idx:DIR, npz:FILE, folder:DIR.", show_default="the config's, mnist")] = None,
    data_dir: options.DataDir = None,
    out: Annotated[Optional[Path], typer.Option(help="Run directory to create.", show_default="runs/NAME-DATE-TIME")] = None,
    overwrite: options.Overwrite = False,
    seed: Annotated[Optional[int], typer.Option(help="Seed for initialisation, shuffling, dropout and the validation split.", show_default="the config's, 0")] = None,
    verbose: options.Verbose = 1,
    device: options.Device = "auto",
    precision: options.Precision = "auto",
    threads: options.Threads = "auto",
    limit: options.Limit = None,
    validate_on: options.ValidateOn = "val",
    resume: Annotated[Optional[Path], typer.Option(help="Continue an interrupted run directory from its checkpoint (on the thread count it recorded, unless --threads is given).", show_default="none")] = None,
    log_to: Annotated[Optional[list[str]], typer.Option("--log-to", help=LOG_TO_HELP, show_default="none")] = None,
    seeds: Annotated[Optional[int], typer.Option(min=1, help="Train N seeds (the config's or --seed, then the next ones) into OUT/NAME-seedK, one run directory each, together as one pack where the models allow (docs/training.md).", show_default="one run")] = None,
) -> None:
    """Train a model and write a run directory (config, history, checkpoint, model, metrics)."""
    from mlplab.config import load_config, parse_assignments
    from mlplab.runs import RunPlan, resume_run, start_run
    from mlplab.tracking import Tracking, track  # tensorboard and mlflow load only when a run logs to them
    from mlplab.training.device import resolve_runtime

    tracking = Tracking.from_specs(log_to)  # a bad spec or a missing extra fails before anything runs
    shortcuts = shortcut_overrides(epochs, batch_size, learning_rate)
    if resume is not None:
        if (config is not None or set_ or shortcuts or dataset or seed is not None or limit is not None or out
                or overwrite or seeds is not None):
            raise ConfigError("--resume continues a run as it was configured: give no CONFIG, --set, --epochs, "
                              "--batch-size, --learning-rate, --dataset, --seed, --seeds, --limit, --out or --overwrite")
        if threads == "auto":  # the recorded count, so the resumed run ends as an uninterrupted one would
            threads = str(_recorded_threads(resume) or "auto")
    runtime = resolve_runtime(device, precision, options.parse_threads(threads))
    options.print_runtime_notes(runtime, verbose)
    if resume is not None:
        tracking = tracking or Tracking.recorded(resume)  # a run that logged goes on logging
        outcome = track(tracking, resume, lambda callbacks: resume_run(
            resume, data_dir=data_dir, runtime=runtime, verbose=verbose, callbacks=callbacks))
    else:
        if config is None:
            raise ConfigError("give a CONFIG to train (a .toml file or a shipped config: see `mlplab configs`), or --resume RUN_DIR")
        overrides = parse_assignments([*(set_ or []), *shortcuts])
        if dataset is not None:
            overrides["dataset"] = dataset  # as given: no round trip through TOML escapes (unicode paths)
        if seed is not None:
            overrides["training.seed"] = seed
        cfg = load_config(config).with_overrides(overrides)
        if seeds is not None:
            if tracking:
                raise ConfigError("--seeds and --log-to cannot be combined yet: train the seeds one by one to log them")
            _train_seeds(cfg, seeds, out or default_run_dir(cfg.name), validate_on=validate_on, limit=limit,
                         data_dir=data_dir, runtime=runtime, overwrite=overwrite, verbose=verbose)
            return
        plan = RunPlan(
            cfg, out or default_run_dir(cfg.name), validate_on=validate_on, limit=limit,  # type: ignore[arg-type]
            data_dir=data_dir, runtime=runtime, overwrite=overwrite, command=("mlplab", "train", *sys.argv[2:]),
        )
        outcome = track(tracking, plan.out, lambda callbacks: start_run(plan, verbose=verbose, callbacks=callbacks))
    if not outcome.ok:
        typer.echo(f"error: {outcome.message}", err=True)
        raise typer.Exit(outcome.exit_status)
    m = outcome.metrics
    typer.echo(
        f"test loss {m['test_loss']:.4f} - test accuracy {m['test_accuracy']:.4f} "
        f"(weights of epoch {m['kept_epoch']} of {m['epochs_run']})"
    )
    typer.echo(f"saved run: {outcome.run.path}")


def _train_seeds(cfg, seeds: int, out: Path, **plan_options) -> None:
    """`train --seeds N`: N runs of one config (seeds s, s+1, …) trained as one pack where possible."""
    from mlplab.runs import RunPlan
    from mlplab.runs.pack import start_pack

    verbose = plan_options.pop("verbose")
    first = cfg.training.seed
    plans = [RunPlan(cfg, out / f"{cfg.name}-seed{seed}", seed=seed, command=("mlplab", "train", *sys.argv[2:]),
                     **plan_options) for seed in range(first, first + seeds)]
    results = start_pack(plans, verbose=verbose)
    for result in results:
        if result.ok:
            m = result.metrics
            typer.echo(f"{result.run.path.name}: test loss {m['test_loss']:.4f} - test accuracy "
                       f"{m['test_accuracy']:.4f} (weights of epoch {m['kept_epoch']} of {m['epochs_run']})")
    failed = [result for result in results if not result.ok]
    if failed:  # one line: the first run's message names the others
        others = f" (likewise {', '.join(r.run.path.name for r in failed[1:])})" if failed[1:] else ""
        typer.echo(f"error: {failed[0].message}{others}", err=True)
        raise typer.Exit(max(result.exit_status for result in failed))
    typer.echo(f"saved runs: {out}")


def _recorded_threads(run_path: Path) -> int | None:
    from mlplab.runs.run_dir import RunDir

    threads = RunDir(run_path).read_info().get("runtime", {}).get("threads")
    return threads if isinstance(threads, int) and threads > 0 else None


def evaluate(
    run: Annotated[Path, typer.Argument(help="A run directory (or its model.json).", show_default=False)],
    dataset: Annotated[Optional[str], typer.Option(help="Evaluate on another dataset's test set.", show_default="the run's")] = None,
    data_dir: options.DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.", show_default="off")] = False,
    force: Annotated[bool, typer.Option("--force", help="Score on a --dataset whose classes are not the model's.", show_default="off")] = False,
) -> None:
    """Test loss and accuracy (and per class) of a saved model."""
    from mlplab.runs import evaluate_run

    result = evaluate_run(run, dataset_name=dataset, data_dir=data_dir, force=force)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(f"{result['run']} on {result['dataset']} ({result['test_samples']} test images)")
    typer.echo(f"test loss {result['test_loss']:.4f} - test accuracy {result['test_accuracy']:.4f}")
    for name, acc in zip(result["class_names"], result["per_class_accuracy"]):
        typer.echo(f"  {name:>12s}: {acc:.4f}")
    recorded = result["recorded"].get("test_accuracy")
    if recorded is not None:
        same = recorded == result["test_accuracy"] and result["recorded"]["test_loss"] == result["test_loss"]
        typer.echo("matches the figures recorded at training time" if same else f"recorded at training time: {recorded:.4f}")


def register(root: typer.Typer) -> None:
    root.command()(train)
    root.command()(evaluate)
