"""The FastAPI application: the page, the prediction endpoints, model list and health probes.

Request bodies are read by hand (see `inputs`) rather than by FastAPI's parameter parsing, so
that every refusal is a JSON `{"error": ...}` with a precise status, and a body that passes the
size cap mid-stream reaches the body-size middleware as such; the OpenAPI request body is
declared by hand to match.
"""

from __future__ import annotations

import asyncio
import logging
import os
from contextlib import asynccontextmanager
from importlib import resources
from typing import Annotated, Any

import anyio
from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

import mlplab
from mlplab.use.serve import engine
from mlplab.use.serve.errors import ClientError
from mlplab.use.serve.inputs import IMAGE_TYPES, RequestImage, read_images
from mlplab.use.serve.limits import AccessLog, BodySizeLimit, BodyTooLarge, ConcurrencyLimit
from mlplab.use.serve.registry import ServedModel, warm_up
from mlplab.use.serve.schemas import ErrorBody, Health, ModelInfo, ModelList, PixelsRequest, Prediction
from mlplab.use.serve.settings import ServeSettings

logger = logging.getLogger("mlplab.serve")

STATIC_FILES = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
PAGE_HEADERS = {
    # The page must work offline: nothing may load from another origin.
    "content-security-policy": "default-src 'self'; img-src 'self' data: blob:; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "cache-control": "no-cache",
}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def described(*statuses: int) -> dict[int | str, dict[str, Any]]:
    meanings = {
        400: "the body is not what its Content-Type says (not an image, truncated, malformed multipart or JSON)",
        404: "no model of that name",
        413: "the body is over the size limit, an image is over the pixel limit, or too many images",
        415: "unsupported Content-Type",
        422: "a well-formed body that cannot be used (no 'image' field, empty, blank image, wrong pixel array)",
        503: "too many requests in progress (see Retry-After), or the models are still warming up",
    }
    return {status: {"model": ErrorBody, "description": meanings[status]} for status in statuses}


def image_file_schema() -> dict[str, Any]:
    return {"type": "string", "format": "binary"}


PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "description": "One or more images: multipart (field `image`, repeatable), a raw image file, or 28×28 pixels as JSON.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {"image": {"type": "array", "items": image_file_schema(), "minItems": 1,
                                             "description": "image files (PNG, JPEG, WebP, BMP, GIF), one answer each"}},
                },
                "encoding": {"image": {"contentType": ", ".join(IMAGE_TYPES)}},
            },
            **{kind: {"schema": image_file_schema()} for kind in ("image/png", "image/jpeg")},
            "application/json": {"schema": PixelsRequest.model_json_schema()},
        },
    }
}


class Service:
    """What the routes share: the models by name, the limits, readiness and the worker threads."""

    def __init__(self, models: list[ServedModel], settings: ServeSettings) -> None:
        if not models:
            raise ValueError("a service needs at least one model")
        self.models = {model.name: model for model in models}
        self.default = models[0]
        self.settings = settings
        self.ready = False
        # Decoding and prediction are CPU work: a thread per core, the rest of the admitted requests wait.
        self.workers = anyio.CapacityLimiter(max(1, os.cpu_count() or 1))

    def model(self, name: str) -> ServedModel:
        try:
            return self.models[name]
        except KeyError:
            raise ClientError(404, f"no model named {name!r}; serving: {', '.join(self.models)}") from None

    def warm_up(self) -> None:
        for model in self.models.values():
            warm_up(model, self.settings.max_pixels)
        self.ready = True
        logger.info("ready: %s", ", ".join(self.models))

    def answer(self, model: ServedModel, images: list[RequestImage], top_k: int, include_input: bool) -> list[dict[str, Any]]:
        """Decode, preprocess and predict every image of one request (runs in a worker thread)."""
        pixels = []
        for image in images:
            if image.pixels is not None:
                source = image.pixels
            else:
                source = engine.decode(image.data or b"", max_pixels=self.settings.max_pixels, label=image.label)
            pixels.append(engine.model_input(source, model.input_style, label=image.label))
        results = engine.predict(model.saved, pixels, top_k=min(top_k, len(model.saved.class_names)))
        answers = []
        for result, seen in zip(results, pixels):
            result = {key: value for key, value in result.items() if key != "path"}
            if include_input:
                result["input_png"] = engine.png_base64(seen)
            answers.append(result)
        return answers

    async def predict(self, request: Request, model: ServedModel, top_k: int, include_input: bool) -> Response:
        if not self.ready:
            raise ClientError(503, "warming up: the models are not ready yet", {"Retry-After": "1"})
        images = await read_images(request, max_images=self.settings.max_images)
        if len(images) <= 4 and all(image.data is None or engine.is_small(image.data) for image in images):
            # A few hundred microseconds of work: a thread hop would cost more than it saves.
            answers = self.answer(model, images, top_k, include_input)
        else:
            # In a worker thread: a large photo's decode must not stall the event loop (and /livez).
            answers = await anyio.to_thread.run_sync(self.answer, model, images, top_k, include_input, limiter=self.workers)
        return JSONResponse(answers)


def read_static(name: str) -> bytes:
    return resources.files("mlplab.use.serve").joinpath("static", name).read_bytes()


def create_app(models: list[ServedModel], settings: ServeSettings | None = None) -> FastAPI:
    """The ASGI application serving `models` (the first is the default); warm-up runs at startup."""
    settings = settings or ServeSettings()
    service = Service(models, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Serve /livez at once; /readyz turns 200 when every model has answered a warm-up request.
        warming = asyncio.create_task(anyio.to_thread.run_sync(service.warm_up))
        yield
        warming.cancel()

    app = FastAPI(
        title="mlplab",
        version=mlplab.__version__,
        summary="Predictions of mlplab models on your images.",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc load from a CDN; the service stays offline
        redoc_url=None,
    )
    app.state.service = service
    install_error_handlers(app)
    add_routes(app, service)
    # Outermost last: the log sees every answer, the body cap runs before a request takes a slot.
    app.add_middleware(ConcurrencyLimit, max_concurrency=settings.max_concurrency)
    app.add_middleware(BodySizeLimit, max_body_bytes=settings.max_body_bytes)
    if settings.access_log:
        app.add_middleware(AccessLog)
    return app


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ClientError)
    async def client_error(request: Request, exc: ClientError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error.get("loc", ())) or "request"
        return error_response(422, f"{where}: {error.get('msg', 'invalid')}")

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
        # Nobody reads this answer; it keeps a client's hang-up out of the server's error log.
        return error_response(400, "the client closed the connection before sending the whole body")

    @app.exception_handler(BodyTooLarge)
    async def body_too_large(request: Request, exc: BodyTooLarge) -> JSONResponse:
        limit = request.app.state.service.settings.max_body_bytes
        return error_response(413, f"request body {exc} is over the limit of {limit:,} bytes", {"Connection": "close"})


TopK = Annotated[int, Query(ge=1, le=1000, description="how many classes to list in top_k (at most the model's)")]
IncludeInput = Annotated[bool, Query(description="add input_png: the 28×28 image the model saw")]
ModelName = Annotated[str, Path(description="a name from GET /v1/models")]


def add_routes(app: FastAPI, service: Service) -> None:
    page = read_static("index.html")
    static = {name: read_static(name) for name in STATIC_FILES}
    predict_doc = dict(response_model=list[Prediction], responses=described(400, 404, 413, 415, 422, 503),
                       openapi_extra=PREDICT_BODY)

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    @app.get("/static/{name}", include_in_schema=False)
    async def static_file(name: str) -> Response:
        if name not in static:
            raise ClientError(404, f"no static file {name!r}")
        return Response(static[name], media_type=STATIC_FILES[name], headers=PAGE_HEADERS)

    @app.get("/livez", response_model=Health, summary="The process answers")
    async def livez() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz", response_model=Health, responses=described(503),
             summary="Models loaded and a warm-up prediction done")
    async def readyz() -> Any:
        if not service.ready:
            return error_response(503, "warming up: the models are not ready yet", {"Retry-After": "1"})
        return {"status": "ready"}

    @app.get("/v1/models", response_model=ModelList, responses=described(503), summary="The served models")
    async def list_models() -> dict[str, Any]:
        return {"models": [ModelInfo(**m.info, default=m is service.default) for m in service.models.values()]}

    @app.post("/v1/predict", summary="Predict with the default model", **predict_doc)
    async def predict_default(request: Request, top_k: TopK = 3, include_input: IncludeInput = False) -> Response:
        return await service.predict(request, service.default, top_k, include_input)

    @app.post("/v1/models/{name}/predict", summary="Predict with a named model", **predict_doc)
    async def predict_named(request: Request, name: ModelName, top_k: TopK = 3,
                            include_input: IncludeInput = False) -> Response:
        return await service.predict(request, service.model(name), top_k, include_input)
