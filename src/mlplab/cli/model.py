"""`mlplab summary` and `mlplab configs`: neither needs torch."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from mlplab.cli import options


def summary(
    config: Annotated[str, typer.Argument(help="A config file (.toml) or the name of a shipped config.", show_default=False)],
    dataset: Annotated[Optional[str], typer.Option(
        help="Take the input size and the classes from this dataset (mnist, fashion-mnist, kmnist, idx:DIR, npz:FILE, "
        "folder:DIR); overrides --num-features and --num-classes.", show_default="none")] = None,
    num_features: Annotated[Optional[int], typer.Option(min=1, help="Input features, without --dataset.", show_default="784, 28×28 images")] = None,
    num_classes: Annotated[Optional[int], typer.Option(min=1, help="Number of classes, without --dataset.", show_default="10")] = None,
    data_dir: options.DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of the table.", show_default="off")] = False,
) -> None:
    """Print the model's layers, output shapes and parameter counts, as Keras's model.summary() does."""
    from mlplab.config import load_config
    from mlplab.errors import ConfigError
    from mlplab.model.summary import summarize

    cfg = load_config(config)
    if dataset is not None:
        if num_features is not None or num_classes is not None:
            raise ConfigError("--dataset gives the input size and the classes: drop --num-features/--num-classes")
        from mlplab.data import load_dataset

        ds = load_dataset(dataset, data_dir=data_dir)
        num_features, num_classes = ds.num_features, ds.num_classes
    table = summarize(cfg.model, num_features or 784, num_classes or 10, name=cfg.name)
    if as_json:
        typer.echo(json.dumps(table.to_dict(), indent=2))
    else:
        table.print(typer.echo)


def configs() -> None:
    """List the shipped configs in the tutorial's order, one line each (usable by name wherever a config is asked for)."""
    from mlplab.config import load_config, shipped_configs

    shipped = shipped_configs()
    width = max(map(len, shipped), default=0)
    for name, path in shipped.items():
        typer.echo(f"{name:{width}s}  {load_config(path).description}")


def register(root: typer.Typer) -> None:
    root.command()(summary)
    root.command()(configs)
