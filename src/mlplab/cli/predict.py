"""`mlplab predict` and `mlplab export`: a trained model put to work on files.

torch (and onnx) are imported inside the commands, so that `mlplab --help` stays fast.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

EXIT_INPUT_FAILED = 1


def predict(
    model: Annotated[str, typer.Argument(metavar="RUN_OR_MODEL", help="A run directory, or its model.json / model.safetensors.")],
    inputs: Annotated[list[str], typer.Argument(metavar="INPUT...", help="Image files (PNG, JPEG, BMP, GIF, WebP, TIFF), folders of them (recursive, sorted), .npy/.npz arrays of 28×28 images, IDX files.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array, one object per input (default: one line per input).")] = False,
    top_k: Annotated[int, typer.Option(min=1, help="How many classes to list per input, most probable first.")] = 3,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per forward pass.")] = 1024,
    no_preprocess: Annotated[bool, typer.Option("--no-preprocess", help="Feed images as they are (grey, resized to 28×28), without the model's input style (default: applied).")] = False,
    show_preprocessed: Annotated[Optional[Path], typer.Option(metavar="DIR", help="Write the 28×28 images the model saw as PNGs into DIR (default: not written).")] = None,
) -> None:
    """Predict the class of each input with a trained model; exits 1 when any input could not be used.

    Images are prepared the way the model's training data was (recorded in model.json): for digits, inverted when the background is light, cropped to the ink, scaled to 20 pixels and centred by centre of mass in 28×28, as MNIST itself was made.
    """
    import numpy as np

    from mlplab.runs.model_file import load_model
    from mlplab.use.inputs import gather
    from mlplab.use.predict import model_input_style, predict_images

    saved = load_model(model)
    check_image_model(saved)
    style = model_input_style(saved)
    prepared = gather(inputs, style, preprocess=not no_preprocess)
    ready = [p for p in prepared if p.image is not None]
    results = iter(predict_images(saved, np.stack([p.image for p in ready]), top_k=top_k, batch_size=batch_size)
                   if ready else [])
    rows = [{"path": p.path, "error": p.error} if p.image is None else {"path": p.path, **next(results)}
            for p in prepared]
    if show_preprocessed is not None:
        write_preprocessed(show_preprocessed, prepared)
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False))
    else:
        print_lines(rows)
    failed = sum("error" in row for row in rows)
    if failed:
        print(f"error: {failed} of {len(rows)} inputs could not be used", file=sys.stderr)
        raise typer.Exit(EXIT_INPUT_FAILED)


def check_image_model(saved) -> None:
    from mlplab.errors import ModelFileError

    if saved.model.num_features != 28 * 28:
        raise ModelFileError(
            f"{saved.path}: the model takes {saved.model.num_features} features; predict works on 28×28 images (784)"
        )


def print_lines(rows: list[dict]) -> None:
    """One line per input: path, class, probability, then the next-best classes."""
    width = min(max((len(row["path"]) for row in rows), default=0), 60)
    for row in rows:
        if "error" in row:
            typer.echo(f"{row['path']:<{width}}  error: {row['error']}")
            continue
        others = ", ".join(f"{c['class_name']} {c['probability']:.1%}" for c in row["top_k"][1:])
        line = f"{row['path']:<{width}}  {row['class_name']}  {row['probability']:6.1%}"
        typer.echo(f"{line}   next: {others}" if others else line)


def write_preprocessed(folder: Path, prepared) -> None:
    """The 28×28 images the model saw, numbered in input order so that names never collide."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for number, item in enumerate(prepared):
        if item.image is not None:
            stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(item.path).name)
            Image.fromarray(item.image, "L").save(folder / f"{number:05d}-{stem}.png")


def export(
    run: Annotated[str, typer.Argument(metavar="RUN", help="A run directory, or its model.json / model.safetensors.")],
    format_: Annotated[str, typer.Option("--format", help="Export format; onnx is the one there is.")] = "onnx",
    out: Annotated[Optional[Path], typer.Option(help="File to write (default: model.onnx in the run directory).")] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset version (9-20).")] = 17,
    check: Annotated[bool, typer.Option("--check/--no-check", help="Check the file with onnxruntime against PyTorch on the dataset's test images before writing it (default: check).")] = True,
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder with one sub-folder per dataset, for the check (default: $MLPLAB_DATA_DIR, then the cache).")] = None,
) -> None:
    """Export a trained model to ONNX: input `pixels` float32 (N, 784) in [0, 1], output `probabilities`.

    Needs `pip install 'mlplab\\[export]'`. The file's metadata holds the class names, the input style and mlplab's version. Unless --no-check, onnxruntime must give the same class as PyTorch on every test image and probabilities within 1e-5, or nothing is written.
    """
    from mlplab.errors import ConfigError

    if format_ != "onnx":
        raise ConfigError(f"unknown export format {format_!r}: onnx is the one there is")
    from mlplab.runs.model_file import load_model
    from mlplab.use.export import export_onnx, require_export_packages

    require_export_packages()  # before loading torch and the model: fail fast with the install hint
    saved = load_model(run)
    target = out if out is not None else saved.path / "model.onnx"
    parity = export_onnx(saved, target, opset=opset, check=check, data_dir=data_dir)
    if parity is not None:
        typer.echo(parity.line())
    typer.echo(f"wrote {target}")


def register(root: typer.Typer) -> None:
    root.command()(predict)
    root.command()(export)
