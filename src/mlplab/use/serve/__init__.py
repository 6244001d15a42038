"""`mlplab serve`: a FastAPI application on uvicorn that serves saved models over HTTP.

    >>> from mlplab.use.serve import ServeSettings, create_app, load_served_models
    >>> models = load_served_models(["runs/wide"])
    >>> app = create_app(models, ServeSettings())          # any ASGI server can run it

Modules: ``settings`` (limits, validated), ``registry`` (loaded models, their names, warm-up),
``limits`` (pure ASGI middlewares: body cap, concurrency cap, one log line per request),
``inputs`` (request body → images), ``engine`` (decode, preprocess, predict; the one place that
calls the predict code), ``schemas`` (the OpenAPI models), ``app`` (routes), ``static/`` (the page).
"""

from __future__ import annotations

from mlplab.use.serve.app import create_app
from mlplab.use.serve.registry import ServedModel, load_served_models
from mlplab.use.serve.settings import ServeSettings

__all__ = ["ServeSettings", "ServedModel", "create_app", "load_served_models"]
