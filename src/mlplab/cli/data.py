"""`mlplab data ...` (placeholder until the data layer lands)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Datasets: list, inspect, show and fetch.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="data")
