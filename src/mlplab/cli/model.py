"""`mlplab summary`: the Keras-style table of a config's model."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from mlplab.config import load_config
from mlplab.model.summary import summarize


def summary(
    config: Annotated[str, typer.Argument(help="A config file (.toml) or the name of a shipped config.")],
    num_features: Annotated[int, typer.Option(help="Input features (28×28 images: 784).")] = 784,
    num_classes: Annotated[int, typer.Option(help="Number of classes.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of the table.")] = False,
) -> None:
    """Print the model's layers, output shapes and parameter counts, as Keras's model.summary() does."""
    cfg = load_config(config)
    table = summarize(cfg.model, num_features, num_classes, name=cfg.name)
    if as_json:
        typer.echo(json.dumps(table.to_dict(), indent=2))
    else:
        table.print(typer.echo)


def configs() -> None:
    """List the shipped configs (usable by name wherever a config is asked for)."""
    from mlplab.config import shipped_configs

    for name, path in sorted(shipped_configs().items()):
        typer.echo(f"{name:20s} {load_config(path).description}")


def register(root: typer.Typer) -> None:
    root.command()(summary)
    root.command()(configs)
