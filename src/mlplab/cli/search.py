"""`mlplab search` and `mlplab search-report` (optuna and torch are imported only when they run)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer


def search_command(
    space: Annotated[str, typer.Argument(help="A search-space file (.toml) or a shipped space's name (tutorial-space).")],
    trials: Annotated[int, typer.Option(min=1, help="Stop when the study holds this many complete trials.")] = 20,
    timeout: Annotated[Optional[float], typer.Option(help="Stop starting trials after this many seconds (default: no limit).", show_default="no limit")] = None,
    out: Annotated[Path, typer.Option(help="Folder for the study file, trials/, refit/, front/ and the report.")] = Path("searches/search"),
    storage: Annotated[Optional[str], typer.Option(help="postgresql://user:pass@host/db (many machines), or a journal file (default: OUT/study.journal).", show_default="OUT/study.journal")] = None,
    study: Annotated[Optional[str], typer.Option(help="Study name in the storage.", show_default="the space's name")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes on this machine.")] = 1,
    threads: Annotated[Optional[int], typer.Option(min=1, help="CPU threads per worker (default: cores / workers).", show_default="cores / workers")] = None,
    objectives: Annotated[Optional[str], typer.Option(help="Costs to minimise against validation accuracy, comma-separated: train_flops, seconds, params, inference_flops (default: train_flops).", show_default="train_flops")] = None,
    sampler: Annotated[str, typer.Option(help="tpe or nsga2 (seeded by --seed).")] = "tpe",
    dataset: Annotated[Optional[str], typer.Option(help="Dataset (default: the space's base config's, mnist).", show_default="the base config's")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder with one sub-folder per dataset (default: $MLPLAB_DATA_DIR, then the cache).", show_default="$MLPLAB_DATA_DIR, then the cache")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sampler.")] = 0,
    limit: Annotated[Optional[int], typer.Option(help="Train every trial on the first N images (quick tries, CI).", show_default="all images")] = None,
    refit_top: Annotated[int, typer.Option(min=0, help="Refit at most N front trials on all training images and score them on the test set.")] = 5,
    reference: Annotated[bool, typer.Option("--reference/--no-reference", help="Train the tutorial's three models as the trials are, to mark them on the front.")] = True,
    heartbeat: Annotated[int, typer.Option(min=1, help="Database storage: seconds between a worker's heartbeats; a trial silent for twice this is failed and re-queued.")] = 60,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    verbose: Annotated[int, typer.Option(min=0, max=2, help="0: a line per trial; 1, 2: also each trial's epochs.")] = 0,
    finish: Annotated[bool, typer.Option("--finish/--no-finish", help="After the search, refit the front and write the report (--no-finish: only run trials, e.g. extra machines).")] = True,
    log_to: Annotated[Optional[list[str]], typer.Option("--log-to", help="Also log each trial to tensorboard[:DIR] or mlflow[:URI], nested under the study (repeatable; docs/tracking.md). Needs mlplab[track].", show_default="none")] = None,
) -> None:
    """Search a space for the best validation accuracy at each cost: a Pareto front, refit and reported."""
    from mlplab.studies.search import SearchPlan, parse_objectives, run_search
    from mlplab.tracking import Tracking  # tensorboard and mlflow load only when a run logs to them

    tracking = Tracking.from_specs(log_to)  # a bad spec or a missing extra fails before anything runs
    plan = SearchPlan(
        space, out, trials=trials, study=study, storage=storage, costs=parse_objectives(objectives), sampler=sampler,
        seed=seed, dataset=dataset, data_dir=data_dir, limit=limit, timeout=timeout, workers=workers, threads=threads,
        refit_top=refit_top, reference=reference, heartbeat=heartbeat, device=device,
        command=("mlplab", *sys.argv[1:]), tracking=tracking or None,
    )
    outcome = run_search(plan, print_fn=lambda line: typer.echo(line), verbose=verbose, finish=finish)
    if outcome.interrupted:
        raise typer.Exit(130)
    if outcome.report is not None:
        typer.echo(f"Open {outcome.report} in a browser.")


def search_report_command(
    out: Annotated[Path, typer.Option(help="Folder for report.html.")] = Path("searches/report"),
    storage: Annotated[Optional[str], typer.Option(help="The study's storage: a database URL or a study.journal file (required).", show_default="none")] = None,
    study: Annotated[Optional[str], typer.Option(help="The study's name (default: the storage's only study).", show_default="the space's name")] = None,
) -> None:
    """Build a search's report from its storage alone (on any machine that can reach it)."""
    from mlplab.errors import ConfigError
    from mlplab.studies.search.report import build_search_report
    from mlplab.studies.search.storage import open_storage
    from mlplab.studies.search.study import import_optuna

    optuna = import_optuna()
    if storage is None:
        raise ConfigError("give --storage (a database URL, or the search folder's study.journal)")
    if not ("://" in storage) and not Path(storage).is_file():
        raise ConfigError(f"--storage {storage}: no such file")
    store = open_storage(storage, out)
    names = [s.study_name for s in optuna.get_all_study_summaries(store, include_best_trial=False)]
    if study is None:
        if len(names) != 1:
            raise ConfigError(f"the storage holds {len(names)} studies ({', '.join(names) or 'none'}); choose one with --study")
        study = names[0]
    if study not in names:
        raise ConfigError(f"no study {study!r} in the storage (it holds: {', '.join(names) or 'none'})")
    report = build_search_report(optuna.load_study(study_name=study, storage=store), out, print_fn=typer.echo)
    typer.echo(f"Open {report} in a browser.")


def register(root: typer.Typer) -> None:
    root.command("search")(search_command)
    root.command("search-report")(search_report_command)
