"""Strict reading of IDX files (the MNIST format), gzip-compressed or not.

The format is tiny: two zero bytes, a type code, the number of dimensions, one big-endian uint32
per dimension, then the values. Every way a file can disagree with its own header is reported as a
``DataError`` naming the file and the problem, because the usual failure (a truncated or
half-downloaded file) otherwise surfaces far away as a reshape error or, worse, as wrong data.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import zlib
from pathlib import Path

import numpy as np

from mlplab.errors import DataError
from mlplab.safeio import read_regular_file

GZIP_MAGIC = b"\x1f\x8b"
MAX_IDX_BYTES = 1 << 30  # 1 GiB: twenty times the largest MNIST-family file
MAX_IDX_DIMS = 4  # images (N, H, W), labels (N,); numpy itself stops at 64
MAX_IMAGE_PIXELS = 1 << 20  # per image: each pixel is an input of the MLP's first layer

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

    The IDX header is decompressed first and checked (dimensions, declared size against ``limit``),
    then no more than the declared size is decompressed: a gzip bomb, or a tiny file whose header
    claims terabytes, is refused before memory is spent on it.
    """
    if not data.startswith(GZIP_MAGIC):
        if len(data) > limit:
            raise DataError(f"{name}: {len(data)} bytes, more than the {limit} any dataset file may have")
        return data
    parts, size = [], 0
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            head = stream.read(4)
            if len(head) == 4 and head[:2] == b"\0\0" and 0 < head[3] <= MAX_IDX_DIMS:
                head += stream.read(4 * head[3])
            parts.append(head)
            size = len(head)
            declared = declared_size(head, name, limit)
            cap = limit if declared is None else declared
            while size <= cap and (part := stream.read(min(1 << 24, cap + 1 - size))):
                parts.append(part)
                size += len(part)
    except EOFError as exc:
        raise DataError(f"{name}: truncated or damaged gzip file ({exc})") from None
    except (gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise DataError(f"{name}: corrupt gzip file ({exc})") from None
    if size > cap:
        if declared is not None:
            raise DataError(
                f"{name}: decompresses to more than the {declared} bytes its IDX header declares "
                "(a corrupt gzip stream, or data after the IDX values)"
            )
        raise DataError(f"{name}: decompresses to more than {limit} bytes; no dataset file is that large")
    return b"".join(parts)


def declared_size(header: bytes, name: str, limit: int = MAX_IDX_BYTES) -> int | None:
    """The total size (header and values) an IDX header declares; None if ``header`` is not a whole IDX header.

    Raises DataError when the header is valid but declares too many dimensions, images too large
    for an MLP, or more than ``limit`` bytes.
    """
    if len(header) < 4:
        return None
    zero, type_code, ndim = struct.unpack(">HBB", header[:4])
    if zero != 0 or type_code not in IDX_TYPES or ndim == 0:
        return None
    if ndim > MAX_IDX_DIMS:
        raise DataError(
            f"{name}: IDX header declares {ndim} dimensions; dataset files have 1 (labels) or 3 (images), "
            f"at most {MAX_IDX_DIMS} are read"
        )
    header_len = 4 + 4 * ndim
    if len(header) < header_len:
        return None
    shape = struct.unpack(f">{ndim}I", header[4:header_len])
    total = IDX_TYPES[type_code].itemsize
    for dim in shape:  # Python ints: a hostile header cannot overflow this
        total *= dim
    if total > limit:
        raise DataError(
            f"{name}: IDX header declares shape {tuple(shape)} ({total} bytes of data), more than the "
            f"{limit} any dataset file may hold"
        )
    if ndim == 3:
        check_image_size(shape[1:], name)
    return header_len + total


def check_image_size(image_shape, name: str) -> None:
    """An image of ``height × width`` pixels is at most MAX_IMAGE_PIXELS (each pixel is an MLP input)."""
    pixels = 1
    for dim in image_shape:
        pixels *= int(dim)
    if pixels > MAX_IMAGE_PIXELS:
        raise DataError(
            f"{name}: images of {' x '.join(str(int(d)) for d in image_shape)} pixels are too large for an MLP "
            f"(at most {MAX_IMAGE_PIXELS} pixels, e.g. 1024 x 1024; MNIST is 28 x 28); resize them first"
        )


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
    for dim in shape:
        expected *= dim
    payload = len(data) - header_len
    if payload != expected:
        problem = "truncated" if payload < expected else "has trailing bytes"
        raise DataError(
            f"{name}: file {problem}: header declares shape {tuple(shape)} ({expected} bytes of data), "
            f"file holds {payload}"
        )
    declared_size(data[:header_len], name, max(MAX_IDX_BYTES, len(data)))  # dimensions, image size
    return np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape).astype(dtype.newbyteorder("="))


def idx_header(array: np.ndarray) -> bytes:
    """The IDX header of an array (the inverse of `parse_idx`'s reading, for uint8 and the other IDX types)."""
    codes = {dtype.newbyteorder("="): code for code, dtype in IDX_TYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None or array.ndim > 255:
        raise ValueError(f"no IDX encoding for {array.dtype} arrays of {array.ndim} dimensions")
    return struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)


def idx_sha256(array: np.ndarray) -> str:
    """The sha256 of an array's IDX encoding: equal to the digest of the decompressed file it was read from."""
    digest = hashlib.sha256(idx_header(array))
    big_endian = array.dtype.newbyteorder(">")
    values = array if array.dtype.itemsize == 1 or array.dtype == big_endian else array.astype(big_endian)
    digest.update(memoryview(np.ascontiguousarray(values)).cast("B"))
    return digest.hexdigest()


def check_images(array: np.ndarray, name: str) -> np.ndarray:
    """Images are uint8 (N, H, W) with at least one image of at least one pixel."""
    if array.dtype != np.uint8 or array.ndim != 3:
        raise DataError(
            f"{name}: expected uint8 images of 3 dimensions (N, rows, columns), "
            f"found {array.dtype} with shape {array.shape}"
        )
    if 0 in array.shape:
        raise DataError(f"{name}: holds no image data (shape {array.shape})")
    check_image_size(array.shape[1:], name)
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
    data = read_regular_file(path, MAX_IDX_BYTES, error=DataError)
    return parse_idx(decompress(data, path.name), path.name)
