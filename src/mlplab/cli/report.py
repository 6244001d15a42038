"""`mlplab reproduce` and `mlplab compare`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from mlplab.studies import TUTORIAL_MODELS, compare_runs, reproduce
from mlplab.training.device import resolve_runtime


def reproduce_command(
    dataset: Annotated[str, typer.Option(help="Dataset to run the experiment on.")] = "mnist",
    out: Annotated[Path, typer.Option(help="Folder for the runs and the report.")] = Path("reports/tutorial"),
    seeds: Annotated[int, typer.Option(min=1, help="Train every model this many times (seeds 0..N-1).")] = 1,
    validate_on: Annotated[str, typer.Option(help="val: early stopping watches a split of the training data; test: the tutorial's literal setup (test figures optimistic).")] = "val",
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder with one sub-folder per dataset (default: $MLPLAB_DATA_DIR, then the cache).")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Use only the first N training and N test images (quick runs, CI).")] = None,
    max_epochs: Annotated[Optional[int], typer.Option(help="Cap every model's epochs (quick runs, CI).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    precision: Annotated[str, typer.Option(help="fp32 or bf16.")] = "fp32",
    threads: Annotated[Optional[int], typer.Option(help="CPU threads (default: one per core; on a busy machine 1 can be much faster).")] = None,
    verbose: Annotated[int, typer.Option(min=0, max=2, help="0 silent, 1 progress bar, 2 one line per epoch.")] = 1,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Train every run again, replacing those in --out (default: reuse finished runs, resume interrupted ones).", show_default="off")] = False,
) -> None:
    """Run the tutorial's experiment end to end: data, the three models, training, test scores, report."""
    artefacts = reproduce(
        out, dataset_name=dataset, data_dir=data_dir, seeds=seeds, validate_on=validate_on, limit=limit,
        max_epochs=max_epochs, models=TUTORIAL_MODELS, runtime=resolve_runtime(device, precision, threads),
        overwrite=overwrite, verbose=verbose, print_fn=typer.echo, command=["mlplab", *sys.argv[1:]],
    )
    typer.echo(f"Open {artefacts['report_html']} in a browser.")


def compare_command(
    runs: Annotated[list[Path], typer.Argument(help="Finished run directories to compare.")],
    out: Annotated[Path, typer.Option(help="Folder for the comparison report.")] = Path("reports/comparison"),
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder with one sub-folder per dataset (default: $MLPLAB_DATA_DIR, then the cache).")] = None,
    allow_mixed_datasets: Annotated[bool, typer.Option(help="Compare runs trained on different datasets (default: refused; their accuracies are not comparable).")] = False,
) -> None:
    """Compare finished runs: curves, accuracy against cost, tables, per-model analysis, report.html.

    Runs of the same config are grouped and counted by distinct seed; two runs of one config with the same seed are refused."""
    compare_runs(runs, out, data_dir=data_dir, print_fn=typer.echo, commands=[" ".join(["mlplab", *sys.argv[1:]])],
                 allow_mixed_datasets=allow_mixed_datasets)


def register(root: typer.Typer) -> None:
    root.command("reproduce")(reproduce_command)
    root.command("compare")(compare_command)
