"""Strict reading of IDX files (the MNIST format), gzip-compressed or not.

The format is tiny: two zero bytes, a type code, the number of dimensions, one big-endian uint32
per dimension, then the values. Every way a file can disagree with its own header is reported as a
``DataError`` naming the file and the problem, because the usual failure (a truncated or
half-downloaded file) otherwise surfaces far away as a reshape error or, worse, as wrong data.
"""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from pathlib import Path

import numpy as np

from mlplab.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
MAX_IDX_BYTES = 1 << 30  # 1 GiB: twenty times the largest MNIST-family file

# IDX type code -> numpy dtype (values are big-endian in the file).
IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def decompress(data: bytes, name: str, limit: int = MAX_IDX_BYTES) -> bytes:
    """The IDX bytes of a file's contents: gunzipped when they are gzip, else as they are.

    Decompression stops past ``limit`` bytes, so a hostile mirror's gzip bomb cannot exhaust memory.
    """
    if not data.startswith(GZIP_MAGIC):
        return data
    parts, size = [], 0
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            while size <= limit and (part := stream.read(1 << 24)):
                parts.append(part)
                size += len(part)
    except EOFError as exc:
        raise DataError(f"{name}: truncated or damaged gzip file ({exc})") from None
    except (gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise DataError(f"{name}: corrupt gzip file ({exc})") from None
    if size > limit:
        raise DataError(f"{name}: decompresses to more than {limit} bytes; no dataset file is that large")
    return b"".join(parts)


def parse_idx(data: bytes, name: str) -> np.ndarray:
    """Decode the bytes of an (uncompressed) IDX file into an array of its declared shape."""
    if len(data) < 4:
        raise DataError(f"{name}: too short for an IDX file ({len(data)} bytes, the header alone is at least 4)")
    zero, type_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or type_code not in IDX_TYPES:
        raise DataError(f"{name}: not an IDX file (magic number {data[:4].hex()}, expected 0000 then a type code 08-0e)")
    if ndim == 0:
        raise DataError(f"{name}: IDX header declares 0 dimensions")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(f"{name}: truncated IDX header ({len(data)} bytes, {ndim} dimensions need {header_len})")
    shape = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = IDX_TYPES[type_code]
    expected = dtype.itemsize
    for dim in shape:  # Python ints: a hostile header cannot overflow this
        expected *= dim
    payload = len(data) - header_len
    if payload != expected:
        problem = "truncated" if payload < expected else "has trailing bytes"
        raise DataError(
            f"{name}: file {problem}: header declares shape {tuple(shape)} ({expected} bytes of data), "
            f"file holds {payload}"
        )
    return np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape).astype(dtype.newbyteorder("="))


def check_images(array: np.ndarray, name: str) -> np.ndarray:
    """Images are uint8 (N, H, W) with at least one image of at least one pixel."""
    if array.dtype != np.uint8 or array.ndim != 3:
        raise DataError(
            f"{name}: expected uint8 images of 3 dimensions (N, rows, columns), "
            f"found {array.dtype} with shape {array.shape}"
        )
    if 0 in array.shape:
        raise DataError(f"{name}: holds no image data (shape {array.shape})")
    return array


def check_labels(array: np.ndarray, name: str) -> np.ndarray:
    """Labels in an IDX file are one uint8 dimension."""
    if array.dtype != np.uint8 or array.ndim != 1:
        raise DataError(
            f"{name}: expected uint8 labels of 1 dimension, found {array.dtype} with shape {array.shape}"
        )
    return array


def check_label_range(labels: np.ndarray, name: str, num_classes: int) -> None:
    """Every label is a class index: 0 <= label < num_classes."""
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        where = int(np.argmax(bad))
        raise DataError(
            f"{name}: label {labels[where]} at index {where} is out of range "
            f"(the dataset has {num_classes} classes, 0-{num_classes - 1})"
        )


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (.gz or not) with every structural check."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return parse_idx(decompress(data, path.name), path.name)
