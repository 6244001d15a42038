"""Checking a dataset file against its pinned digests, and reading it through the decoded cache.

``check_digest`` is the single rule for "is this the right file", shared by downloads (which must
pass it) and by files found on disk: the published ``.gz`` digest or the decompressed content's
digest must match. When neither is pinned for a file (KMNIST's decompressed digests, user data),
the file is accepted on its IDX structure alone and reported as not verified.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlplab.data import cache
from mlplab.data.cache import Decoded, sha256_hex
from mlplab.data.idx import MAX_IDX_BYTES, check_images, check_labels, decompress, parse_idx
from mlplab.data.registry import FileSpec
from mlplab.errors import DataError
from mlplab.safeio import read_regular_file


def check_digest(raw: bytes, spec: FileSpec | None, name: str, file_sha256: str | None = None) -> tuple[bytes, bool]:
    """The decompressed content, and whether a pinned digest vouched for it.

    Raises DataError for a corrupt gzip stream, or when a pinned digest exists and nothing matches.
    """
    file_sha256 = file_sha256 or sha256_hex(raw)
    content = decompress(raw, name)
    if spec is None:
        return content, False
    if spec.gz_sha256 and file_sha256 == spec.gz_sha256:
        return content, True
    if spec.sha256 is None:
        return content, False
    got = sha256_hex(content)
    if got != spec.sha256:
        raise DataError(
            f"{name}: checksum mismatch: the {'decompressed ' if content is not raw else ''}content has "
            f"sha256 {got}, expected {spec.sha256} (the file is corrupt or not the published one)"
        )
    return content, True


def is_verified(spec: FileSpec | None, file_sha256: str, content_sha256: str) -> bool:
    return spec is not None and (file_sha256 == spec.gz_sha256 or content_sha256 == spec.sha256)


def read_dataset_file(path: Path, spec: FileSpec | None, kind: str) -> tuple[np.ndarray, bool]:
    """Read images or labels from an IDX file: (array, verified by a pinned digest).

    ``kind`` is "images" or "labels". Label ranges are checked by the caller, who knows the classes.
    """
    raw = read_regular_file(path, MAX_IDX_BYTES, error=DataError)
    file_sha = sha256_hex(raw)
    hit = cache.get(file_sha)
    fresh = hit is None or not _cache_may_stand_in(hit, spec, file_sha)
    if fresh:
        content, _ = check_digest(raw, spec, path.name, file_sha)
        hit = Decoded(parse_idx(content, path.name), sha256_hex(content))
    array = check_images(hit.array, path.name) if kind == "images" else check_labels(hit.array, path.name)
    if spec is not None and array.shape != spec.shape:
        raise DataError(f"{path.name}: holds shape {array.shape}, this dataset's file has {spec.shape}")
    if fresh:
        cache.put(file_sha, hit)
    return array, is_verified(spec, file_sha, hit.content_sha256)


def _cache_may_stand_in(hit: Decoded, spec: FileSpec | None, file_sha256: str) -> bool:
    """A cached decode of these exact bytes replaces reading them, unless it contradicts a pinned digest
    (then the slow path runs and reports the mismatch)."""
    return spec is None or spec.sha256 is None or is_verified(spec, file_sha256, hit.content_sha256)
