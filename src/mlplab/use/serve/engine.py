"""Decode → preprocess → predict for the service: the one module that calls mlplab's predict code.

Everything else in the service deals with HTTP; this module turns bytes or pixel arrays into
the answers `mlplab predict --json` gives, and maps the predict code's one-line `InputError`s
to HTTP statuses (413 for an image over the pixel limit, 400 for one that cannot be read,
422 for one that can be read but not used, such as a blank page).
"""

from __future__ import annotations

import base64
import io
import struct
from typing import Any

import numpy as np
from PIL import Image

from mlplab.errors import InputError
from mlplab.runs import SavedModel
from mlplab.use.images import open_image
from mlplab.use.predict import model_input_style, predict_images
from mlplab.use.preprocess import preprocess_image
from mlplab.use.serve.errors import ClientError


def input_style(saved: SavedModel) -> str:
    """"digit" or "object": how images are brought to 28×28 for this model."""
    return model_input_style(saved)


SMALL_IMAGE_PIXELS = 512 * 512  # a canvas export or an MNIST-sized file: decoded in well under a millisecond
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def is_small(data: bytes) -> bool:
    """A PNG whose header declares at most SMALL_IMAGE_PIXELS (read from IHDR, nothing decoded).

    Other formats answer False: finding their size means parsing more of the file.
    """
    if not 24 <= len(data) <= 256 * 1024 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return False
    width, height = struct.unpack(">II", data[16:24])
    return width * height <= SMALL_IMAGE_PIXELS


def decode(data: bytes, *, max_pixels: int, label: str = "image") -> Image.Image:
    """Bytes of an image file → a PIL image; 413 over `max_pixels` (checked from the header before
    decoding), 400 when it is not a readable image, 422 when the body is empty."""
    if not data:
        raise ClientError(422, f"{label}: empty (0 bytes)")
    try:
        return open_image(data, max_pixels=max_pixels)
    except InputError as exc:
        message = str(exc)
        status = 413 if message.startswith("image too large") else 400
        raise ClientError(status, f"{label}: {message}") from None


def model_input(image: Image.Image | np.ndarray, style: str, *, label: str = "image") -> np.ndarray:
    """The 28×28 uint8 image the model sees (MNIST-style preprocessing of the model's input style)."""
    try:
        return preprocess_image(image, style)
    except InputError as exc:
        raise ClientError(422, f"{label}: {exc}") from None


def predict(saved: SavedModel, pixels: list[np.ndarray], *, top_k: int) -> list[dict[str, Any]]:
    """Predictions for preprocessed 28×28 images, as `mlplab predict --json` writes them (no path)."""
    return predict_images(saved, np.stack(pixels), top_k=top_k)


def png_base64(pixels: np.ndarray) -> str:
    """A 28×28 uint8 image as base64 PNG (what the page shows as 'what the model saw')."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(buffer, format="PNG", compress_level=1)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
