"""`mlplab` console entry point: assembles the command groups and turns user errors into one line."""

from __future__ import annotations

import sys

import typer

from mlplab.errors import MlplabError

app = typer.Typer(
    name="mlplab",
    help="Build, train, compare and use multilayer perceptrons on MNIST-style image data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: rich's renderer imports markdown-it, a third of --help's time
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 200},
)



def _print_version(value: bool) -> None:
    if value:
        from mlplab import __version__

        typer.echo(f"mlplab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print mlplab's version and exit.", show_default="off"),
) -> None:
    """Build, train, compare and use multilayer perceptrons on MNIST-style image data."""


# Command groups register themselves on `app`; see each module. Their modules import torch only
# inside the commands that compute, so that `--help` and `configs` start fast (tests/cli/test_startup.py).
from mlplab.cli import data as _data  # noqa: E402
from mlplab.cli import model as _model  # noqa: E402
from mlplab.cli import predict as _predict  # noqa: E402
from mlplab.cli import report as _report  # noqa: E402
from mlplab.cli import search as _search  # noqa: E402
from mlplab.cli import serve as _serve  # noqa: E402
from mlplab.cli import train as _train  # noqa: E402

for _group in (_data, _model, _train, _report, _predict, _serve, _search):
    _group.register(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status (tests call this with an argument list)."""
    try:
        app(args=argv, prog_name="mlplab")
    except SystemExit as exc:  # typer's standalone mode reports usage errors and --help this way
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except MlplabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
