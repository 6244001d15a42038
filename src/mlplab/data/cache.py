"""Decoded arrays cached as ``.npy``, so that loading MNIST again takes a fraction of a second.

Decompressing and hashing 47 MB of IDX is what makes a first load slow. Each decoded array is
stored under the user cache (``<cache>/decoded/<sha256 of the file as stored>.npy``), never next
to the data: data folders are often read-only (``../shared/data`` in CI, ``/usr/share``). Keying
by the file's own digest means the file is still hashed on every load — a changed or corrupted
file simply misses the cache and is verified and decoded afresh — while the costly part, which
depends only on those bytes, is done once. A small JSON sidecar records what the first read
established (the decompressed content's digest), so a verification is not repeated either.

A cache that cannot be written (read-only home, full disk) is skipped silently: it only saves time.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlplab.data.locate import cache_dir


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Decoded:
    array: np.ndarray
    content_sha256: str  # of the decompressed IDX bytes the array came from


def decoded_dir() -> Path:
    return cache_dir() / "decoded"


def get(file_sha256: str) -> Decoded | None:
    """The cached array for a file with this digest, or None (missing or unreadable entry)."""
    base = decoded_dir() / file_sha256
    try:
        meta = json.loads(base.with_suffix(".json").read_text(encoding="utf-8"))
        array = np.load(base.with_suffix(".npy"), allow_pickle=False)
        if list(array.shape) != meta["shape"] or str(array.dtype) != meta["dtype"]:
            return None
        return Decoded(array, str(meta["content_sha256"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


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
        _replace_into(folder / f"{file_sha256}.npy", lambda h: np.save(h, decoded.array, allow_pickle=False))
        _replace_into(folder / f"{file_sha256}.json", lambda h: h.write(json.dumps(meta).encode()))
    except OSError:
        pass


def _replace_into(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
