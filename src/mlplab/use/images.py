"""Opening an image a user (or a web client) hands us, safely.

Everything that can go wrong with an untrusted image file becomes an `InputError` with one line:
a missing, empty, truncated or non-image file, a zero-size image, a decompression bomb (more
pixels than an explicit limit, checked from the header *before* the pixels are decoded), an
animated or multi-page file. Only a few formats are even tried (`ALLOWED_FORMATS`), which keeps
Pillow's rarely used decoders out of reach.

GIF is the one multi-frame format that is accepted: its first frame is used, as the issue asks
("GIF first frame"); an animated PNG or WebP and a multi-page TIFF are refused, because which
frame the user meant cannot be guessed.
"""

from __future__ import annotations

import io
import re
import struct
import warnings
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageOps, UnidentifiedImageError

from mlplab.errors import InputError

DEFAULT_MAX_PIXELS = 40_000_000  # 40 megapixels: a modern phone photo is 12-50 MP; MNIST needs 784 pixels
ALLOWED_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF", "PPM")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".pbm")
FIRST_FRAME_FORMATS = ("GIF",)  # multi-frame files of these formats give their first frame
MAX_FILE_BYTES = 256 << 20  # an uncompressed 40-megapixel RGBA BMP is 160 MB; nothing larger is an image we take


def open_image(
    source: str | Path | bytes | BinaryIO, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Image.Image:
    """A fully decoded image (first frame of a GIF) detached from its file, or an `InputError`.

    `source` is a path, the file's bytes, or a binary file object. `max_pixels` is the largest
    width × height accepted; it is checked against the header before anything is decoded.
    """
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive integer, got {max_pixels!r}")
    name, data = _read_source(source)
    if not data:
        raise InputError(f"{name}: empty file" if name else "empty image data")
    where = f"{name}: " if name else ""
    _bomb_warnings_are_errors()
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
        _check_header(image, max_pixels, where)
        image.load()
        # Phones store photos sideways and say so in EXIF: upright them as every viewer does
        # (exif_transpose also returns a copy, detaching a GIF's first frame from the decoder).
        image = _upright(image)
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Raised by Image.open itself, before our own check could see the size.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = f"{int(found.group(1)):,} pixels" if found else "more pixels than Pillow allows"
        raise InputError(
            f"{where}image too large: {pixels}, the limit is {max_pixels:,} (Pillow: possible decompression bomb)"
        ) from None
    except UnidentifiedImageError:
        raise InputError(f"{where}{_unidentified(data)}") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        # Pillow reports truncated and corrupt data as OSError (or SyntaxError from some plugins).
        raise InputError(f"{where}truncated or corrupt image ({_one_line(exc)})") from None
    if 0 in image.size:
        raise InputError(f"{where}zero-size image ({image.size[0]}×{image.size[1]})")
    return image


def _upright(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except (ValueError, TypeError, KeyError, OSError, SyntaxError, struct.error):
        return image.copy()  # damaged EXIF: the pixels are still good, as they are stored


def _bomb_warnings_are_errors() -> None:
    """Pillow's bomb check only *warns* between its limit and twice its limit: make that an error.

    A process-wide filter, (re-)added on every call: `warnings.catch_warnings()` is not thread-safe
    (the HTTP service opens images in several threads at once) and could leak another thread's
    temporary filters; re-adding the same filter is idempotent and survives a test harness that
    resets the filters. Our own header check (`max_pixels`) refuses large images in any case.
    """
    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


def _read_source(source: str | Path | bytes | BinaryIO) -> tuple[str, bytes]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "", bytes(source)
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise InputError(f"{path}: no such file or directory")
        if path.is_dir():
            raise InputError(f"{path}: is a folder, not an image file")
        if not path.is_file():
            raise InputError(f"{path}: not a regular file")  # a FIFO or a device: reading could block forever
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise InputError(f"{path}: file too large ({path.stat().st_size:,} bytes, the limit is {MAX_FILE_BYTES:,})")
            return str(path), path.read_bytes()
        except OSError as exc:
            raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if hasattr(source, "read"):
        data = source.read(MAX_FILE_BYTES + 1)
        name = str(getattr(source, "name", "") or "")
        if len(data) > MAX_FILE_BYTES:
            raise InputError(f"{name or 'image'}: more than {MAX_FILE_BYTES:,} bytes; too large for an image we take")
        return name, data
    raise TypeError(f"an image source is a path, bytes or a binary file, got {type(source).__name__}")


def _check_header(image: Image.Image, max_pixels: int, where: str) -> None:
    width, height = image.size
    if width <= 0 or height <= 0:
        raise InputError(f"{where}zero-size image ({width}×{height})")
    if width * height > max_pixels:
        raise InputError(
            f"{where}image too large: {width}×{height} = {width * height:,} pixels, the limit is {max_pixels:,}"
        )
    frames = getattr(image, "n_frames", 1)
    if frames > 1 and image.format not in FIRST_FRAME_FORMATS:
        raise InputError(
            f"{where}{image.format} file with {frames} frames (animated or multi-page); save the one image to predict on"
        )


SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"GIF87a": "GIF", b"GIF89a": "GIF", b"BM": "BMP", b"\xff\xd8\xff": "JPEG",
              b"II*\x00": "TIFF", b"MM\x00*": "TIFF"}


def _unidentified(data: bytes) -> str:
    """Why Pillow could not identify the data: a damaged or zero-size header of a known format, or no image."""
    fmt = next((name for magic, name in SIGNATURES.items() if data.startswith(magic)), None)
    if fmt is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        fmt = "WEBP"
    if fmt is None:
        return f"not an image Pillow can read here (accepted: {', '.join(ALLOWED_FORMATS)})"
    size = _declared_size(fmt, data)
    if size is not None and 0 in size:
        return f"zero-size image ({size[0]}×{size[1]}, declared in its {fmt} header)"
    return f"damaged {fmt} image (its header cannot be read)"


def _declared_size(fmt: str, data: bytes) -> tuple[int, int] | None:
    try:
        if fmt == "PNG" and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if fmt == "GIF":
            return struct.unpack("<HH", data[6:10])
        if fmt == "BMP":
            width, height = struct.unpack("<ii", data[18:26])
            return width, abs(height)
    except struct.error:
        return None
    return None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
