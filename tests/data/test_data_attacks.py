"""Hostile and broken data inputs (issue 9, section 2): each is refused with one line, before memory is spent.

Every test here reproduces an attack that once broke mlplab (a traceback, memory exhaustion, a hang or
wrong data reported as verified).
"""

from __future__ import annotations

import gzip
import os
import struct
import tracemalloc

import numpy as np
import pytest

from mlplab.data import load_dataset
from mlplab.data.cache import decoded_dir
from mlplab.data.idx import MAX_IMAGE_PIXELS, decompress, parse_idx, read_idx
from mlplab.errors import DataError


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text, text
    return text


# --- the decoded-array cache is verified on every use ------------------------------------------------


def _flip_one_value(npy, offset_from_end: int = 1000) -> None:
    data = bytearray(npy.read_bytes())
    data[-offset_from_end] ^= 0x40
    npy.write_bytes(bytes(data))


def test_changed_cached_array_is_not_used(mnist_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MLPLAB_CACHE_DIR", str(tmp_path / "cache"))
    first = load_dataset("mnist", data_dir=mnist_dir.parent, download=False)
    cached = sorted(decoded_dir().glob("*.npy"), key=lambda p: p.stat().st_size)
    assert len(cached) == 4  # two label arrays, two image arrays
    for npy in cached:
        _flip_one_value(npy, offset_from_end=100)
    second = load_dataset("mnist", data_dir=mnist_dir.parent, download=False)
    assert second.source.endswith("(verified sha256)")
    for split in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(second, split), getattr(first, split))
    # The changed entries were replaced by good ones, so the next load uses the cache again.
    third = load_dataset("mnist", data_dir=mnist_dir.parent, download=False)
    np.testing.assert_array_equal(third.x_train, first.x_train)


def test_changed_cached_array_of_user_idx_data(idx, tmp_path, monkeypatch):
    monkeypatch.setenv("MLPLAB_CACHE_DIR", str(tmp_path / "cache"))
    arrays = idx.arrays(train=40, test=20, size=8)
    idx.write_dir(tmp_path / "d", arrays)
    load_dataset(f"idx:{tmp_path / 'd'}")
    for npy in decoded_dir().glob("*.npy"):
        _flip_one_value(npy, offset_from_end=3)
    again = load_dataset(f"idx:{tmp_path / 'd'}")
    np.testing.assert_array_equal(again.x_train, arrays["train_images"])
    np.testing.assert_array_equal(again.y_test, arrays["test_labels"])


def test_cache_entry_that_is_a_fifo_is_skipped(idx, tmp_path, monkeypatch):
    monkeypatch.setenv("MLPLAB_CACHE_DIR", str(tmp_path / "cache"))
    arrays = idx.arrays()
    idx.write_dir(tmp_path / "d", arrays)
    load_dataset(f"idx:{tmp_path / 'd'}")
    for npy in decoded_dir().glob("*.npy"):
        npy.unlink()
        os.mkfifo(npy)  # reading it would block forever
    np.testing.assert_array_equal(load_dataset(f"idx:{tmp_path / 'd'}").x_test, arrays["test_images"])


# --- IDX headers that claim too much ---------------------------------------------------------------


def idx_header(*shape: int, code: int = 0x08) -> bytes:
    return struct.pack(">HBB", 0, code, len(shape)) + struct.pack(f">{len(shape)}I", *shape)


def test_65_dimension_header():
    data = idx_header(*([1] * 65)) + b"\x07"
    with pytest.raises(DataError, match="^f: IDX header declares 65 dimensions") as err:
        parse_idx(data, "f")
    one_line(err)
    with pytest.raises(DataError, match="65 dimensions"):
        decompress(gzip.compress(data), "f")


def test_huge_images_refused_from_the_header(tmp_path):
    """Five valid 14000×14000 images: 980 MB, under the file-size cap, but no MLP input; refused before decoding."""
    path = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(idx_header(5, 14000, 14000))
        zeros = bytes(1 << 24)
        for _ in range(5 * 14000 * 14000 // len(zeros)):
            out.write(zeros)
        out.write(bytes(5 * 14000 * 14000 % len(zeros)))
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"images of 14000 x 14000 pixels are too large for an MLP") as err:
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    one_line(err)
    assert peak < 64 << 20, f"{peak} bytes allocated before refusing"


def test_largest_allowed_image_is_read():
    side = int(MAX_IMAGE_PIXELS**0.5)
    assert parse_idx(idx_header(1, side, side) + bytes(side * side), "ok").shape == (1, side, side)
    with pytest.raises(DataError, match="too large for an MLP"):
        parse_idx(idx_header(1, side, side + 1) + bytes(side * (side + 1)), "big")


def test_header_claiming_terabytes_in_a_tiny_gzip():
    with pytest.raises(DataError, match=r"^t.gz: IDX header declares shape \(1000000000, 1000, 28\) .* more than") as err:
        decompress(gzip.compress(idx_header(10**9, 1000, 28) + bytes(100)), "t.gz")
    one_line(err)


def test_gzip_bomb_stops_at_the_declared_size():
    bomb = gzip.compress(idx_header(10) + bytes(50_000_000), compresslevel=9)
    assert len(bomb) < 100_000
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"more than the 18 bytes its IDX header declares"):
            decompress(bomb, "bomb.gz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"{peak} bytes allocated before refusing"
