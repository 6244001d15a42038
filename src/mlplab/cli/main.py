"""`mlplab` console entry point: assembles the command groups and turns user errors into one line."""

from __future__ import annotations

import sys

import click
import typer

from mlplab.errors import MlplabError

app = typer.Typer(
    name="mlplab",
    help="Build, train, compare and use multilayer perceptrons on MNIST-style image data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Command groups register themselves on `app`; see each module.
from mlplab.cli import data as _data  # noqa: E402

_data.register(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status instead of raising (tests call this directly)."""
    try:
        app(args=argv, prog_name="mlplab", standalone_mode=False)
    except MlplabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (click.Abort, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
