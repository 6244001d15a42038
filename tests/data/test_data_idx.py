"""The IDX reader: every malformed input is a DataError naming the file and the problem."""

from __future__ import annotations

import gzip
import shutil
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlplab.data import load_dataset
from mlplab.data.idx import decompress, parse_idx, read_idx
from mlplab.errors import DataError


def test_round_trip(idx, tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx.bytes(images)))
    out = read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, images)
    out[0, 0, 0] = 99  # decoded arrays are writable copies, not views of a buffer


def test_other_types_are_big_endian():
    data = struct.pack(">HBBI", 0, 0x0C, 1, 2) + struct.pack(">ii", -5, 70000)
    np.testing.assert_array_equal(parse_idx(data, "ints"), [-5, 70000])


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "too short"),
        (b"\x00\x01\x08\x01" + b"\x00" * 8, "not an IDX file (magic number 00010801"),
        (b"\x00\x00\x07\x01" + b"\x00" * 8, "not an IDX file"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated IDX header"),
        (struct.pack(">HBBI", 0, 8, 1, 10) + b"\x01" * 9, "truncated"),
        (struct.pack(">HBBI", 0, 8, 1, 10) + b"\x01" * 11, "trailing bytes"),
        (struct.pack(">HBBIII", 0, 8, 3, 2**31, 2**31, 2**31) + b"\x00", "truncated"),
    ],
)
def test_malformed_headers(data, problem):
    with pytest.raises(DataError, match="^some-file: ") as err:
        parse_idx(data, "some-file")
    assert problem in str(err.value)


def test_truncated_gzip(idx, tmp_path):
    whole = gzip.compress(idx.bytes(np.arange(3000, dtype=np.uint8).reshape(30, 10, 10) % 7))
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: truncated or damaged gzip"):
        read_idx(path)


def test_bit_flipped_gzip(idx, tmp_path):
    rng = np.random.default_rng(1)
    whole = bytearray(gzip.compress(idx.bytes(rng.integers(0, 256, (20, 10, 10), dtype=np.uint8))))
    whole[len(whole) // 2] ^= 0x10  # in the deflate stream, far from the header
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(bytes(whole))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz: (corrupt|truncated) gzip"):
        read_idx(path)


def test_gzip_bomb_is_cut_short():
    with pytest.raises(DataError, match="bomb.gz: decompresses to more than 1000 bytes"):
        decompress(gzip.compress(bytes(5000)), "bomb.gz", limit=1000)
    assert len(decompress(gzip.compress(bytes(1000)), "ok.gz", limit=1000)) == 1000


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="nope.gz: file not found"):
        read_idx(tmp_path / "nope.gz")


# --- the same damage to a real dataset file, found through the normal loading path ------------


@pytest.fixture
def mnist_copy(mnist_dir, tmp_path):
    """A writable copy of the real MNIST in DIR/mnist, for breaking."""
    shutil.copytree(mnist_dir, tmp_path / "mnist")
    return tmp_path


def test_real_file_truncated(mnist_copy):
    path = mnist_copy / "mnist" / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"mnist/t10k-labels-idx1-ubyte\.gz: truncated or damaged gzip") as err:
        load_dataset("mnist", data_dir=mnist_copy, download=False)
    assert "\n" in str(err.value) and "Replace the file" in str(err.value)


def test_real_file_bit_flip_fails_the_checksum(mnist_copy):
    path = mnist_copy / "mnist" / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(path.read_bytes())
    data[-20] ^= 0x01  # inside the CRC/size trailer or the end of the stream
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: (corrupt gzip|truncated or damaged gzip|checksum mismatch|decompresses to more than the 10008 bytes its IDX header declares)"):
        load_dataset("mnist", data_dir=mnist_copy, download=False)


def test_real_file_with_other_content_fails_the_checksum(mnist_copy, idx):
    path = mnist_copy / "mnist" / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx.bytes(np.zeros(10_000, dtype=np.uint8))))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: checksum mismatch: .* expected ff7bcfd4"):
        load_dataset("mnist", data_dir=mnist_copy, download=False)


# --- random bytes: the reader answers with a DataError, never with anything else -------------

headers = st.builds(
    lambda code, dims, payload: struct.pack(">HBB", 0, code, len(dims)) + struct.pack(f">{len(dims)}I", *dims) + payload,
    st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x07]),
    st.lists(st.integers(0, 6), min_size=0, max_size=4),
    st.binary(max_size=200),
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), headers, headers.map(gzip.compress), st.binary().map(lambda b: b"\x1f\x8b" + b)))
def test_random_bytes_give_an_array_or_a_data_error(data):
    try:
        array = parse_idx(decompress(data, "random"), "random")
    except DataError as exc:
        assert str(exc).startswith("random: ")
    else:
        assert isinstance(array, np.ndarray) and array.ndim >= 1
