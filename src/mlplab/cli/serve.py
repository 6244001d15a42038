"""`mlplab serve`: the HTTP service and its draw-a-digit page (FastAPI on uvicorn)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from mlplab.errors import MlplabError

INSTALL_HINT = "mlplab serve needs FastAPI, uvicorn and python-multipart: pip install 'mlplab[serve]'"


class MissingExtraError(MlplabError):
    """An optional dependency group is not installed."""


def require_serve_extra() -> None:
    missing = []
    for package, modules in (("fastapi", ("fastapi",)), ("uvicorn", ("uvicorn",)),
                             ("python-multipart", ("python_multipart", "multipart"))):
        for module in modules:  # python-multipart's module was `multipart` before 0.0.13
            try:
                __import__(module)
                break
            except ImportError:
                pass
        else:
            missing.append(package)
    if missing:
        raise MissingExtraError(f"{INSTALL_HINT} ({', '.join(missing)} missing)")


def serve(
    models: Annotated[list[Path], typer.Argument(metavar="RUN_OR_MODEL", help="Run directories or model files; the first is the default model.")],
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface; only on a trusted network).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body accepted; larger ones get 413.")] = 4 * 1024 * 1024,
    max_concurrency: Annotated[int, typer.Option(help="Requests processed at once; more get 503 with Retry-After (0: 8 per CPU core).")] = 0,
    max_pixels: Annotated[int, typer.Option(help="Largest image accepted, in pixels (width × height); larger ones get 413.")] = 40_000_000,
) -> None:
    """Serve models over HTTP: a page to draw digits on (GET /), JSON predictions (POST /v1/predict), OpenAPI at /openapi.json."""
    require_serve_extra()
    import uvicorn

    from mlplab.use.serve import ServeSettings, create_app, load_served_models

    try:
        settings = ServeSettings(host=host, port=port, max_body_bytes=max_body_bytes,
                                 max_concurrency=max_concurrency, max_pixels=max_pixels)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    served = load_served_models(list(models))
    app = create_app(served, settings)
    from mlplab.training.device import resolve_runtime

    # One torch thread per request: a batch-1 forward pass is too small to split, and idle
    # OpenMP threads spinning between requests take the cores the event loop needs. Requests
    # run in parallel on the service's worker threads (one per core) instead.
    resolve_runtime("cpu", "fp32", threads=1)
    configure_logging()
    for model in served:
        typer.echo(f"model {model.name}: {model.info['dataset']}, {model.input_style} input "
                   f"→ http://{host}:{port}/v1/models/{model.name}/predict", err=True)
    typer.echo(f"page: http://{host}:{port}/   API: http://{host}:{port}/openapi.json   (Ctrl-C stops)", err=True)
    config = uvicorn.Config(app, host=host, port=port, access_log=False, log_level="warning",
                            timeout_keep_alive=5, server_header=False)
    try:
        uvicorn.Server(config).run()
    except KeyboardInterrupt:  # uvicorn shuts down cleanly on Ctrl-C, then re-raises it; stopping is normal
        pass
    typer.echo("stopped", err=True)


class StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (tests swap it), not the one at start-up."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure_logging() -> None:
    logger = logging.getLogger("mlplab.serve")
    if not logger.handlers:
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%dT%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def register(root: typer.Typer) -> None:
    root.command()(serve)
