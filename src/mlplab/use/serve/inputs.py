"""A prediction request's body → the images in it (bytes of image files, or a pixel array).

Three ways to send images: multipart/form-data (field `image`, repeatable), a raw image body
(image/png, image/jpeg, ...), or JSON `{"pixels": [[28 rows of 28 values]]}`. Anything else is
415; a body that does not say what it claims to be is 400; one that is well-formed but unusable
is 422. Nothing here decodes an image: that happens in `engine`, under the pixel limit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from mlplab.use.serve.errors import ClientError
from mlplab.use.serve.schemas import PixelsRequest

IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/bmp", "image/gif")
ACCEPTED = ("multipart/form-data", *IMAGE_TYPES, "application/json")


@dataclass(frozen=True)
class RequestImage:
    """One image of a request: `data` (an image file's bytes) or `pixels` (28×28 uint8)."""

    label: str
    data: bytes | None = None
    pixels: np.ndarray | None = None


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_images(request: Request, *, max_images: int) -> list[RequestImage]:
    kind = media_type(request)
    if kind == "multipart/form-data":
        return await read_multipart(request, max_images=max_images)
    if kind in IMAGE_TYPES:
        data = await request.body()
        if not data:
            raise ClientError(422, "empty request body: send the image file's bytes")
        return [RequestImage("image", data=data)]
    if kind == "application/json" or kind.endswith("+json"):
        return [read_pixels(await request.body())]
    shown = f"Content-Type {kind!r}" if kind else "no Content-Type"
    raise ClientError(415, f"{shown}: send multipart/form-data (field 'image'), a raw image/png or image/jpeg body, "
                           "or application/json {\"pixels\": [[...]]}")


async def read_multipart(request: Request, *, max_images: int) -> list[RequestImage]:
    try:
        form = await request.form(max_files=max_images, max_fields=max_images)
    except HTTPException as exc:  # Starlette reports a malformed multipart body this way
        if "too many" in str(exc.detail).lower():
            raise ClientError(413, f"more than {max_images} images (or fields) in one request") from None
        raise ClientError(400, f"malformed multipart body: {exc.detail}") from None
    try:
        parts = form.getlist("image")
        if not parts:
            raise ClientError(422, "the multipart body has no 'image' field (send each image file as a field named 'image')")
        images = []
        for number, part in enumerate(parts, 1):
            if not isinstance(part, UploadFile):
                raise ClientError(422, f"'image' field {number} is text, not a file: send the image file itself")
            label = f"image {number}" + (f" ({part.filename})" if part.filename else "")
            images.append(RequestImage(label, data=await part.read()))
        return images
    finally:
        await form.close()


def read_pixels(body: bytes) -> RequestImage:
    try:
        document = json.loads(body)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise ClientError(400, f"the body is not valid JSON ({exc})") from None
    try:
        request = PixelsRequest.model_validate(document)
    except ValidationError as exc:
        raise ClientError(422, "invalid pixels: " + first_problem(exc)) from None
    return RequestImage("pixels", pixels=np.asarray(request.pixels, dtype=np.uint8))


def first_problem(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"]) or "body"
    return f"{where}: {error['msg']} ({len(exc.errors())} problem{'s' if len(exc.errors()) > 1 else ''} in all)"
