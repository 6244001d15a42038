"""When a cached decode may stand in for reading a dataset file, and when the pinned digest wins.

Entries of the decoded cache are keyed by the file's digest, so a genuine entry always holds the
same array; a doctored entry (a different array) shows which path was taken.
"""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from mlplab.data import cache
from mlplab.data.cache import Decoded, sha256_hex
from mlplab.data.idx import idx_sha256
from mlplab.data.registry import FileSpec
from mlplab.data.verify import read_dataset_file


@pytest.fixture
def labels_file(tmp_path, monkeypatch, idx):
    monkeypatch.setenv("MLPLAB_CACHE_DIR", str(tmp_path / "cache"))
    content = idx.bytes(np.array([3, 1, 4, 1, 5], dtype=np.uint8))
    raw = gzip.compress(content, mtime=0)
    path = tmp_path / "labels-idx1-ubyte.gz"
    path.write_bytes(raw)
    doctored = np.array([9, 9, 9, 9, 9], dtype=np.uint8)
    # a consistent entry (the cache checks an array against its own recorded digest), but not this file's
    cache.put(sha256_hex(raw), Decoded(doctored, content_sha256=idx_sha256(doctored)))
    return path, sha256_hex(content), sha256_hex(raw), doctored


def test_a_cache_entry_contradicting_the_pinned_content_digest_is_not_used(labels_file):
    path, content_sha, _, _ = labels_file
    array, verified = read_dataset_file(path, FileSpec(path.name, (5,), sha256=content_sha), "labels")
    np.testing.assert_array_equal(array, [3, 1, 4, 1, 5])
    assert verified


@pytest.mark.parametrize("pinned", ["nothing", "no spec", "the gz digest"])
def test_a_cache_entry_stands_in_when_no_pinned_digest_contradicts_it(labels_file, pinned):
    path, content_sha, gz_sha, doctored = labels_file
    spec = {
        "nothing": FileSpec(path.name, (5,), sha256=None),
        "no spec": None,
        "the gz digest": FileSpec(path.name, (5,), sha256=content_sha, gz_sha256=gz_sha),
    }[pinned]
    array, verified = read_dataset_file(path, spec, "labels")
    np.testing.assert_array_equal(array, doctored)  # read from the cache, not decoded again
    assert verified == (pinned == "the gz digest")


def test_a_file_pinned_by_its_content_digest_is_decoded_once(tmp_path, monkeypatch, idx):
    """A recompressed copy (its .gz digest unknown) is vouched for by the cached content digest."""
    monkeypatch.setenv("MLPLAB_CACHE_DIR", str(tmp_path / "cache"))
    content = idx.bytes(np.array([2, 7, 1], dtype=np.uint8))
    path = tmp_path / "labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(content, compresslevel=1, mtime=0))
    spec = FileSpec(path.name, (3,), sha256=sha256_hex(content), gz_sha256="f" * 64)
    assert read_dataset_file(path, spec, "labels")[1]

    def no_decoding(*args):
        raise AssertionError("decoded again although the cache vouched for the file")

    monkeypatch.setattr("mlplab.data.verify.parse_idx", no_decoding)
    array, verified = read_dataset_file(path, spec, "labels")
    np.testing.assert_array_equal(array, [2, 7, 1])
    assert verified
