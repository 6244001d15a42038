"""Decoded arrays cached as ``.npy``, so that loading MNIST again takes a fraction of a second.

Decompressing and hashing 47 MB of IDX is what makes a first load slow. Each decoded array is
stored under the user cache (``<cache>/decoded/<sha256 of the file as stored>.npy``), never next
to the data: data folders are often read-only (``../shared/data`` in CI, ``/usr/share``). Keying
by the file's own digest means the file is still hashed on every load — a changed or corrupted
file simply misses the cache and is verified and decoded afresh — while the costly part, which
depends only on those bytes, is done once. A small JSON sidecar records what the first read
established (the decompressed content's digest), so a verification is not repeated either.

A cached array is never trusted as it lies on disk: each read hashes its IDX encoding (header
rebuilt from shape and dtype, then the values), which is byte for byte the decompressed file it
came from, and compares that digest with the sidecar's, which the loader in turn compares with the
registry's pinned digest. An array changed on disk (one byte is enough) misses the cache and is
decoded afresh from the file. This costs one sha256 pass over the arrays (about 0.07 s for
MNIST's 55 MB; `python bench/data_loading.py` measures a warm load).

A cache that cannot be written (read-only home, full disk) is skipped silently: it only saves time.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlplab.data.idx import MAX_IDX_BYTES, idx_sha256
from mlplab.data.locate import cache_dir
from mlplab.errors import DataError, StorageError
from mlplab.safeio import atomic_write_with, open_regular_file, read_regular_file


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Decoded:
    array: np.ndarray
    content_sha256: str  # of the decompressed IDX bytes the array came from


def decoded_dir() -> Path:
    return cache_dir() / "decoded"


def get(file_sha256: str) -> Decoded | None:
    """The cached array for a file with this digest, or None (missing, unreadable or changed entry).

    The array is returned only if its IDX encoding still hashes to the digest recorded when it was
    decoded (see the module's docstring); its ``content_sha256`` is that recomputed digest.
    """
    base = decoded_dir() / file_sha256
    try:
        meta = json.loads(read_regular_file(base.with_suffix(".json"), 1 << 16, error=DataError))
        with open_regular_file(base.with_suffix(".npy"), MAX_IDX_BYTES + (1 << 16), error=DataError) as handle:
            shape, fortran, dtype = read_npy_header(handle)
            if list(shape) != meta["shape"] or str(dtype) != meta["dtype"] or fortran or dtype.hasobject:
                return None
            handle.seek(0)
            array = np.load(handle, allow_pickle=False)
        content_sha256 = idx_sha256(array)
        if content_sha256 != meta["content_sha256"]:
            return None
        return Decoded(array, content_sha256)
    except (OSError, ValueError, KeyError, TypeError, DataError):
        return None


def read_npy_header(handle) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, Fortran order, dtype) from an open ``.npy`` stream, which is left just past the header."""
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(handle)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(handle)
    raise ValueError(f".npy format version {version} is not supported")


def put(file_sha256: str, decoded: Decoded) -> None:
    """Store an array; the .npy lands before its sidecar, so a sidecar always has its array."""
    folder = decoded_dir()
    meta = {
        "content_sha256": decoded.content_sha256,
        "shape": list(decoded.array.shape),
        "dtype": str(decoded.array.dtype),
    }
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_with(folder / f"{file_sha256}.npy", lambda h: np.save(h, decoded.array, allow_pickle=False))
        atomic_write_with(folder / f"{file_sha256}.json", lambda h: h.write(json.dumps(meta).encode()))
    except (OSError, StorageError):
        pass  # the cache only saves time: a read-only or full disk just means decoding again

