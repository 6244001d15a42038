"""`mlplab data list | info | show | fetch`: thin wrappers over mlplab.data."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from mlplab.cli.options import DataDir

app = typer.Typer(help="Datasets: list, inspect, show and fetch.", no_args_is_help=True, rich_markup_mode=None)

DATASET_HELP = "mnist, fashion-mnist, kmnist, or your own data: idx:DIR, npz:FILE, folder:DIR."
Download = Annotated[bool, typer.Option(help="Download into the cache when the dataset is found nowhere.")]


class Split(str, Enum):
    train = "train"
    test = "test"


@app.command("list")
def list_(data_dir: DataDir = None) -> None:
    """The known datasets and where each was found (files are verified when loaded)."""
    from mlplab.data import list_datasets
    from mlplab.data.locate import cache_dir

    for entry in list_datasets(data_dir):
        where = entry.location.describe() if entry.location else f"missing: `mlplab data fetch {entry.name}`"
        typer.echo(f"{entry.name:14s} {entry.spec.num_classes:3d} classes  {where}")
        typer.echo(f"{'':14s} {entry.spec.title}; checked by {entry.spec.verification}")
    typer.echo(f"\ncache: {cache_dir()}")
    typer.echo("your own data: idx:DIR (four IDX files), npz:FILE (x_train, y_train, x_test, y_test), "
               "folder:DIR (a sub-folder of images per class)")


@app.command()
def info(
    dataset: Annotated[str, typer.Argument(help=DATASET_HELP)],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.", show_default="off")] = False,
    data_dir: DataDir = None,
    download: Download = True,
) -> None:
    """Shapes, dtypes, classes and counts, the first label and the first image's mean pixel."""
    from mlplab.data import load_dataset
    from mlplab.data.dataset import describe

    facts = describe(load_dataset(dataset, data_dir=data_dir, download=download))
    if as_json:
        typer.echo(json.dumps(facts, indent=2, ensure_ascii=False))
        return
    typer.echo(f"{facts['name']}: {facts['source']}")
    for split in ("train", "test"):
        part = facts[split]
        typer.echo(f"x_{split:5s} {tuple(part['images']['shape'])} {part['images']['dtype']}")
        typer.echo(f"y_{split:5s} {tuple(part['labels']['shape'])} {part['labels']['dtype']}")
    typer.echo(f"classes ({facts['num_classes']}):")
    # A class is shown once: MNIST's are named by their label ("0"), Fashion-MNIST's are not ("0 T-shirt/top").
    labels = [str(k) if name == str(k) else f"{k} {name}" for k, name in enumerate(facts["class_names"])]
    width = max(map(len, labels), default=0)
    for k, label in enumerate(labels):
        train_n, test_n = facts["train"]["class_counts"][k], facts["test"]["class_counts"][k]
        typer.echo(f"  {label:<{width}s}  train {train_n:6d}  test {test_n:6d}")
    typer.echo(f"first training label: {facts['first_train_label']}")
    typer.echo(f"first training image mean pixel: {facts['first_train_image_mean']:.6f}")
    low, high = facts["pixel_range"]
    typer.echo(f"pixel range: {low}-{high}")


@app.command()
def show(
    dataset: Annotated[str, typer.Argument(help=DATASET_HELP)],
    out: Annotated[Path, typer.Option(help="Image file to write (.png, .pdf, .svg, ...).")],
    split: Annotated[Split, typer.Option(help="Which split to draw from.")] = Split.train,
    index: Annotated[Optional[int], typer.Option(min=0, help="The image to show (first of the grid with --grid).",
                                                 show_default="0")] = None,
    grid: Annotated[Optional[str], typer.Option(help="Show ROWSxCOLS images (e.g. 4x8) instead of one.",
                                                show_default="one image")] = None,
    augment: Annotated[Optional[str], typer.Option(
        help="Config (file or shipped name) whose training.augment distorts the images, as in training.",
        show_default="no distortion")] = None,
    data_dir: DataDir = None,
    download: Download = True,
) -> None:
    """Draw one image with its label (the tutorial's first digit), or a grid of them."""
    from mlplab.data import load_dataset
    from mlplab.data.plot import parse_grid, save_images

    try:
        shape = parse_grid(grid) if grid is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--grid") from None
    transform = None
    if augment is not None:
        if split is not Split.train:
            raise typer.BadParameter("augmentation applies to training images only", param_hint="--split")
        transform = _augmentation(augment)
    ds = load_dataset(dataset, data_dir=data_dir, download=download)
    path = save_images(ds, out, split=split.value, index=index or 0, grid=shape, transform=transform)
    typer.echo(f"wrote {path}")


def _augmentation(config_name: str):
    """The config's training.augment as a function on uint8 image arrays (torch is imported here, not at startup)."""
    from mlplab.config import load_config
    from mlplab.errors import ConfigError
    from mlplab.training.augment import augment_images

    config = load_config(config_name)
    settings, seed = config.training.augment, config.training.seed
    if settings is None or not settings.active:
        raise ConfigError(f"{config_name}: training.augment is off (set shift, rotate, scale, shear or elastic_alpha)")
    return lambda images: augment_images(settings, images, seed=seed)


@app.command()
def fetch(
    dataset: Annotated[str, typer.Argument(help="mnist, fashion-mnist or kmnist.")],
    mirror: Annotated[Optional[list[str]], typer.Option(
        help="A base URL to try before the registry's mirrors (repeatable).", show_default="none")] = None,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds to wait for a mirror to answer.")] = 30.0,
) -> None:
    """Download the dataset into the cache and verify it (files already there are verified again)."""
    from mlplab.data import fetch_dataset, get_spec
    from mlplab.data.registry import USER_PREFIXES
    from mlplab.errors import DataError

    if dataset.lower().startswith(USER_PREFIXES):
        raise DataError(f"{dataset}: your own data is read where it is; there is nothing to fetch")
    spec = get_spec(dataset)
    report = fetch_dataset(spec, mirrors=[*(mirror or []), *spec.mirrors], timeout=timeout)
    for filename, how in report.files.items():
        typer.echo(f"{filename}: {how}")
    typer.echo(f"{spec.name} is in {report.folder}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="data")
