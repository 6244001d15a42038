"""`mlplab reproduce` and `mlplab compare` (torch is imported inside the commands)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from mlplab.cli import options
from mlplab.errors import ConfigError

# Shown in --help without importing mlplab.config (pydantic); a test keeps it equal to TUTORIAL_MODELS.
TUTORIAL_MODELS_HELP = "tutorial-50-25 tutorial-512-512 tutorial-128-64"


def reproduce_command(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Option(help="Dataset to run the experiment on.")] = "mnist",
    configs: Annotated[Optional[list[str]], typer.Option(
        "--configs", help="The models to train, in the report's order: shipped config names or .toml files "
        "(--configs tutorial-50-25 fast-256-256 my.toml).", show_default=TUTORIAL_MODELS_HELP)] = None,
    out: Annotated[Path, typer.Option(help="Folder for the runs and the report.")] = Path("reports/tutorial"),
    overwrite: options.Overwrite = False,
    seeds: Annotated[int, typer.Option(min=1, help="Train every model this many times (seeds 0..N-1).")] = 1,
    pack: Annotated[bool, typer.Option(help="Train each model's new seeds together as one pack (docs/training.md); --no-pack trains them one after another.")] = True,
    validate_on: options.ValidateOn = "val",
    data_dir: options.DataDir = None,
    limit: options.Limit = None,
    max_epochs: Annotated[Optional[int], typer.Option(min=1, help="Cap every model's epochs (quick runs, CI).", show_default="the configs'")] = None,
    device: options.Device = "auto",
    precision: options.Precision = "auto",
    threads: options.Threads = "auto",
    verbose: options.Verbose = 1,
    with_recipes: Annotated[bool, typer.Option("--with-recipes", help="Also train mlplab's recipes for the dataset (recipe-* configs: the best MLPs within a time budget, docs/recipes.md) and show them in the same report; their time budgets add up to 33.5 minutes per seed on MNIST.", show_default="off")] = False,
    log_to: Annotated[Optional[list[str]], typer.Option("--log-to", help="Also log to tensorboard[:DIR] (default DIR: OUT/tensorboard, a sub-folder per run) or mlflow[:URI] (default: sqlite:///OUT/mlflow.db; the study is a parent run, each run nested); repeatable. Needs mlplab[track].", show_default="none")] = None,
) -> None:
    """Run the tutorial's experiment end to end: data, its three models (or --configs), training, test scores, report."""
    from mlplab.studies import reproduce
    from mlplab.config import TUTORIAL_MODELS
    from mlplab.tracking import Tracking  # tensorboard and mlflow load only when a run logs to them
    from mlplab.training.device import resolve_runtime

    tracking = Tracking.from_specs(log_to)
    models = config_names(configs, ctx.args) or TUTORIAL_MODELS
    runtime = resolve_runtime(device, precision, options.parse_threads(threads))
    options.print_runtime_notes(runtime, verbose)
    artefacts = reproduce(
        out, dataset_name=dataset, data_dir=data_dir, seeds=seeds, validate_on=validate_on, limit=limit,
        max_epochs=max_epochs, models=models, runtime=runtime,
        verbose=verbose, print_fn=typer.echo, command=["mlplab", *sys.argv[1:]], overwrite=overwrite,
        tracking=tracking, with_recipes=with_recipes, pack=pack,
    )
    typer.echo(f"Open {artefacts['report_html']} in a browser.")


def config_names(configs: list[str] | None, extra: list[str]) -> tuple[str, ...]:
    """`--configs A B C`: click gives an option one value, so B and C arrive as extra arguments.

    () when no --configs was given (the tutorial's three models)."""
    if configs is None:
        if extra:
            raise ConfigError(f"unexpected arguments {' '.join(extra)!r} (to choose the models: --configs A B C)")
        return ()
    return tuple([*configs, *extra])


def compare_command(
    runs: Annotated[list[Path], typer.Argument(help="Finished run directories to compare.", show_default=False)],
    out: Annotated[Path, typer.Option(help="Folder for the comparison report.")] = Path("reports/comparison"),
    data_dir: options.DataDir = None,
    allow_mixed_datasets: Annotated[bool, typer.Option(help="Compare runs trained on different datasets (their accuracies are not comparable).", show_default="refused")] = False,
) -> None:
    """Compare finished runs: curves, accuracy against cost, tables, per-model analysis, report.html.

    Runs of the same config are grouped and counted by distinct seed; two runs of one config with the same seed are refused."""
    from mlplab.studies import compare_runs

    compare_runs(runs, out, data_dir=data_dir, print_fn=typer.echo, commands=[" ".join(["mlplab", *sys.argv[1:]])],
                 allow_mixed_datasets=allow_mixed_datasets)


def register(root: typer.Typer) -> None:
    root.command("reproduce", context_settings={"allow_extra_args": True})(reproduce_command)
    root.command("compare")(compare_command)
