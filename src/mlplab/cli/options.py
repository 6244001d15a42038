"""Options shared by several commands. Nothing here imports torch: `--help` must stay fast."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mlplab.errors import ConfigError

DataDir = Annotated[
    Optional[Path],
    typer.Option(
        help="Folder with one sub-folder per dataset (DIR/mnist/...).",
        show_default="$MLPLAB_DATA_DIR, then the cache, then /usr/share/datasets",
    ),
]
Device = Annotated[str, typer.Option(help="auto (a CUDA GPU when torch sees one, else the CPU), cpu, cuda or cuda:N.")]
Precision = Annotated[str, typer.Option(
    metavar="auto|fp32|bf16",
    help="auto: bf16 where a short probe (a few ms, at the model's largest layer) finds bf16 matrix products "
    "clearly faster than fp32 on this machine (CPUs with AMX, most GPUs), else fp32; recorded in run.json. "
    "bf16 keeps fp32 master weights and an fp32 loss.")]
Threads = Annotated[
    str,
    typer.Option(
        metavar="N|auto",
        help="CPU threads. auto: one per core, less one for each core other programs keep busy "
        "(measured for 50 ms before training; the choice is recorded in run.json).",
    ),
]
Verbose = Annotated[
    int,
    typer.Option(min=0, max=2, help="0 silent, 1 progress bar (one line per epoch when not a terminal), 2 one line per epoch."),
]
Limit = Annotated[
    Optional[int],
    typer.Option(help="Use only the first N training and N test images (quick runs, CI).", show_default="all"),
]
ValidateOn = Annotated[
    str,
    typer.Option(help="val: early stopping watches a split of the training data; test: the test set, as the "
                 "tutorial does (test figures become optimistic)."),
]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace runs that already exist in the output folder (only their own files).", show_default="off")]


def parse_threads(text: str) -> int | str:
    """`auto` or a positive integer, for `resolve_runtime(threads=...)` (which names a bad value)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"--threads must be a positive integer or auto, got {text!r}") from None


def print_runtime_notes(runtime, verbose: int) -> None:
    """Warnings go to stderr; the choices made for the user (threads) are news, not problems: stdout."""
    for warning in runtime.warnings():
        typer.echo(f"warning: {warning}", err=True)
    if verbose:
        for note in runtime.notes():
            typer.echo(f"note: {note}")
