"""`mlplab train` and `mlplab evaluate`."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from mlplab.config import load_config, parse_assignments
from mlplab.errors import ConfigError
from mlplab.runs import RunPlan, evaluate_run, resume_run, start_run
from mlplab.training.device import resolve_runtime


def default_run_dir(name: str) -> Path:
    return Path("runs") / f"{name}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"


def train(
    config: Annotated[Optional[str], typer.Argument(help="A config file (.toml) or a shipped config's name.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a config key: --set training.epochs=3 (repeatable).")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Dataset to train on (default: the config's, mnist).")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder with one sub-folder per dataset (default: $MLPLAB_DATA_DIR, then the cache).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Run directory to create (default: runs/NAME-DATE-TIME).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for initialisation, shuffling, dropout and the validation split (default: the config's, 0).")] = None,
    verbose: Annotated[int, typer.Option(min=0, max=2, help="0 silent, 1 progress bar (one line per epoch when not a terminal), 2 one line per epoch.")] = 1,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    precision: Annotated[str, typer.Option(help="fp32, or bf16 for CPUs and GPUs with bfloat16 matrix units.")] = "fp32",
    threads: Annotated[Optional[int], typer.Option(help="CPU threads (default: one per core; on a busy machine 1 can be much faster).")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Use only the first N training and N test images (quick runs, CI).")] = None,
    validate_on: Annotated[str, typer.Option(help="val: a split of the training data; test: the test set, as the tutorial does (test figures become optimistic).")] = "val",
    resume: Annotated[Optional[Path], typer.Option(help="Continue an interrupted run directory from its checkpoint.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the run already in --out (only an mlplab run's files are removed).", show_default="off")] = False,
) -> None:
    """Train a model and write a run directory (config, history, checkpoint, model, metrics)."""
    runtime = resolve_runtime(device, precision, threads)
    for warning in runtime.warnings():
        typer.echo(f"warning: {warning}", err=True)
    if resume is not None:
        if config is not None or set_ or dataset or seed is not None or limit is not None or out or overwrite:
            raise ConfigError(
                "--resume continues a run as it was configured: give no CONFIG, --set, --dataset, --seed, --limit, "
                "--out or --overwrite"
            )
        outcome = resume_run(resume, data_dir=data_dir, runtime=runtime, verbose=verbose)
    else:
        if config is None:
            raise ConfigError("give a CONFIG to train (a .toml file or a shipped config: see `mlplab configs`), or --resume RUN_DIR")
        overrides = parse_assignments(list(set_ or []))
        if dataset is not None:
            overrides["dataset"] = dataset  # as given: no round trip through TOML escapes (unicode paths)
        if seed is not None:
            overrides["training.seed"] = seed
        cfg = load_config(config).with_overrides(overrides)
        plan = RunPlan(
            cfg, out or default_run_dir(cfg.name), validate_on=validate_on, limit=limit,  # type: ignore[arg-type]
            data_dir=data_dir, runtime=runtime, overwrite=overwrite, command=("mlplab", "train", *sys.argv[2:]),
        )
        outcome = start_run(plan, verbose=verbose)
    if not outcome.ok:
        typer.echo(f"error: {outcome.message}", err=True)
        raise typer.Exit(outcome.exit_status)
    m = outcome.metrics
    typer.echo(
        f"test loss {m['test_loss']:.4f} - test accuracy {m['test_accuracy']:.4f} "
        f"(weights of epoch {m['kept_epoch']} of {m['epochs_run']})"
    )
    typer.echo(f"saved run: {outcome.run.path}")


def evaluate(
    run: Annotated[Path, typer.Argument(help="A run directory (or its model.json).")],
    dataset: Annotated[Optional[str], typer.Option(help="Evaluate on another dataset's test set (default: the run's).")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder with one sub-folder per dataset (default: $MLPLAB_DATA_DIR, then the cache).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Score on a --dataset whose classes are not the model's.", show_default="off")] = False,
) -> None:
    """Test loss and accuracy (and per class) of a saved model."""
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
