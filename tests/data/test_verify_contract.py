"""The digest rule of dataset files (`check_digest`) and what `read_dataset_file` reports, exactly.

`check_digest`'s second value is what a download is accepted on; `read_dataset_file`'s errors name
the file they are about and keep the DataError type that loaders catch.
"""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest

from mlplab.data.registry import FileSpec
from mlplab.data.verify import check_digest, read_dataset_file
from mlplab.errors import DataError


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def labels(idx):
    """(IDX content, its published .gz) of five labels."""
    content = idx.bytes(np.array([3, 1, 4, 1, 5], dtype=np.uint8))
    return content, gzip.compress(content, mtime=0)


@pytest.fixture
def no_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MLPLAB_CACHE_DIR", str(tmp_path / "cache"))


def test_the_published_gz_digest_alone_vouches_for_a_file(labels):
    """KMNIST pins only its .gz digests: the published file is verified, a recompressed copy is not."""
    content, raw = labels
    spec = FileSpec("l.gz", (5,), sha256=None, gz_sha256=sha(raw))
    assert check_digest(raw, spec, "l.gz") == (content, True)
    assert check_digest(gzip.compress(content, compresslevel=1, mtime=1), spec, "l.gz") == (content, False)


def test_without_a_spec_a_file_is_read_but_not_verified(labels):
    content, raw = labels
    assert check_digest(raw, None, "l.gz") == (content, False)
    assert check_digest(content, None, "l") == (content, False)


def test_a_checksum_mismatch_says_whether_the_decompressed_content_was_hashed(labels):
    content, raw = labels
    expected = "0" * 64
    spec = FileSpec("l.gz", (5,), sha256=expected)
    tail = rf"has sha256 {sha(content)}, expected {expected} \(the file is corrupt or not the published one\)$"
    with pytest.raises(DataError, match=rf"^l.gz: checksum mismatch: the decompressed content {tail}"):
        check_digest(raw, spec, "l.gz")
    with pytest.raises(DataError, match=rf"^l: checksum mismatch: the content {tail}"):
        check_digest(content, spec, "l")


def test_a_file_that_contradicts_its_pinned_digest_is_refused(labels, tmp_path, no_cache):
    content, raw = labels
    path = tmp_path / "labels-idx1-ubyte.gz"
    path.write_bytes(raw)
    with pytest.raises(DataError, match=r"^labels-idx1-ubyte.gz: checksum mismatch: "):
        read_dataset_file(path, FileSpec(path.name, (5,), sha256="0" * 64), "labels")
    array, verified = read_dataset_file(path, FileSpec(path.name, (5,), sha256=sha(content)), "labels")
    np.testing.assert_array_equal(array, [3, 1, 4, 1, 5])
    assert verified


def test_errors_of_read_dataset_file_are_data_errors_naming_the_file(labels, idx, tmp_path, no_cache):
    content, raw = labels
    with pytest.raises(DataError, match=rf"^{tmp_path}/absent.gz: file not found$"):
        read_dataset_file(tmp_path / "absent.gz", None, "labels")
    truncated = tmp_path / "truncated-idx1-ubyte.gz"
    truncated.write_bytes(gzip.compress(content[:-1]))
    with pytest.raises(DataError, match=r"^truncated-idx1-ubyte.gz: file truncated: "):
        read_dataset_file(truncated, None, "labels")
    labels_path = tmp_path / "labels-idx1-ubyte.gz"
    labels_path.write_bytes(raw)
    with pytest.raises(DataError, match=r"^labels-idx1-ubyte.gz: expected uint8 images of 3 dimensions"):
        read_dataset_file(labels_path, None, "images")
    images_path = tmp_path / "images-idx3-ubyte.gz"
    images_path.write_bytes(gzip.compress(idx.bytes(np.zeros((2, 3, 3), dtype=np.uint8))))
    with pytest.raises(DataError, match=r"^images-idx3-ubyte.gz: expected uint8 labels of 1 dimension"):
        read_dataset_file(images_path, None, "labels")
    with pytest.raises(DataError, match=r"^labels-idx1-ubyte.gz: holds shape \(5,\), this dataset's file has \(4,\)$"):
        read_dataset_file(labels_path, FileSpec(labels_path.name, (4,), sha256=None), "labels")
