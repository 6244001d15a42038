"""The IDX reader's every type code, its exact limits and the messages of the structure checks."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from mlplab.data.idx import (
    IDX_TYPES, MAX_IDX_BYTES, check_images, check_label_range, check_labels, decompress, parse_idx, read_idx,
)
from mlplab.errors import DataError


@pytest.mark.parametrize(
    ("code", "values"),
    [
        (0x08, np.array([0, 7, 255], dtype=np.uint8)),
        (0x09, np.array([-128, -1, 127], dtype=np.int8)),
        (0x0B, np.array([-300, 2, 32767], dtype=np.int16)),
        (0x0C, np.array([-5, 70000, 2**31 - 1], dtype=np.int32)),
        (0x0D, np.array([-1.5, 0.25, 3e38], dtype=np.float32)),
        (0x0E, np.array([-1e300, 0.1, 2.5], dtype=np.float64)),
    ],
)
def test_every_type_code_decodes_big_endian_into_a_native_array(code, values):
    data = struct.pack(">HBBI", 0, code, 1, len(values)) + values.astype(values.dtype.newbyteorder(">")).tobytes()
    out = parse_idx(data, "f")
    np.testing.assert_array_equal(out, values)
    assert out.dtype == values.dtype and out.dtype.isnative and out.flags.writeable
    assert IDX_TYPES[code].itemsize == values.dtype.itemsize


def test_shapes_of_several_dimensions_and_exact_messages():
    data = struct.pack(">HBBIII", 0, 0x08, 3, 2, 3, 4) + bytes(range(24))
    assert parse_idx(data, "f").shape == (2, 3, 4)
    with pytest.raises(DataError, match=r"^f: too short for an IDX file \(3 bytes, the header alone is at least 4\)$"):
        parse_idx(b"\x00\x00\x08", "f")
    with pytest.raises(DataError, match=r"^f: not an IDX file \(magic number 00000f01, expected 0000 then a type code 08-0e\)$"):
        parse_idx(b"\x00\x00\x0f\x01" + bytes(8), "f")
    with pytest.raises(DataError, match=r"^f: IDX header declares 0 dimensions$"):
        parse_idx(b"\x00\x00\x08\x00" + bytes(4), "f")
    with pytest.raises(DataError, match=r"^f: truncated IDX header \(11 bytes, 2 dimensions need 12\)$"):
        parse_idx(b"\x00\x00\x08\x02" + bytes(7), "f")
    with pytest.raises(DataError, match=r"^f: file truncated: header declares shape \(2, 3\) \(24 bytes of data\), file holds 23$"):
        parse_idx(struct.pack(">HBBII", 0, 0x0C, 2, 2, 3) + bytes(23), "f")
    with pytest.raises(DataError, match=r"^f: file has trailing bytes: header declares shape \(2,\) \(2 bytes of data\), file holds 3$"):
        parse_idx(struct.pack(">HBBI", 0, 0x08, 1, 2) + bytes(3), "f")
    assert parse_idx(b"\x00\x00\x08\x01" + bytes(4), "f").shape == (0,)  # exactly the header


def test_decompress_passes_plain_bytes_and_stops_exactly_past_the_limit():
    plain = b"\x00\x00\x08\x01abc"
    assert decompress(plain, "p") is plain
    assert decompress(gzip.compress(bytes(1001)), "g", limit=1001) == bytes(1001)
    with pytest.raises(DataError, match=r"^g: decompresses to more than 1000 bytes; no dataset file is that large$"):
        decompress(gzip.compress(bytes(1001)), "g", limit=1000)
    big = bytes(3 * (1 << 24) + 5)  # several reads of 16 MiB, all kept
    assert decompress(gzip.compress(big, compresslevel=1), "big") == big
    assert MAX_IDX_BYTES == 1 << 30
    with pytest.raises(DataError, match=r"^g: corrupt gzip file \("):
        decompress(b"\x1f\x8b" + bytes(30), "g")
    with pytest.raises(DataError, match=r"^g: truncated or damaged gzip file \("):
        decompress(gzip.compress(bytes(100))[:-10], "g")


def test_structure_checks_name_what_they_found():
    images = np.zeros((2, 3, 3), dtype=np.uint8)
    assert check_images(images, "i") is images
    with pytest.raises(DataError, match=r"^i: expected uint8 images of 3 dimensions \(N, rows, columns\), found uint8 with shape \(2, 9\)$"):
        check_images(images.reshape(2, 9), "i")
    with pytest.raises(DataError, match=r"^i: expected uint8 images of 3 dimensions \(N, rows, columns\), found int16 with shape \(2, 3, 3\)$"):
        check_images(images.astype(np.int16), "i")
    for empty in [(0, 3, 3), (2, 0, 3), (2, 3, 0)]:
        with pytest.raises(DataError, match=rf"^i: holds no image data \(shape \({empty[0]}, {empty[1]}, {empty[2]}\)\)$"):
            check_images(np.zeros(empty, dtype=np.uint8), "i")
    labels = np.array([0, 2, 1], dtype=np.uint8)
    assert check_labels(labels, "l") is labels
    with pytest.raises(DataError, match=r"^l: expected uint8 labels of 1 dimension, found uint8 with shape \(3, 1\)$"):
        check_labels(labels.reshape(3, 1), "l")
    with pytest.raises(DataError, match=r"^l: expected uint8 labels of 1 dimension, found int8 with shape \(3,\)$"):
        check_labels(labels.astype(np.int8), "l")


def test_label_range_names_the_first_bad_label():
    check_label_range(np.array([0, 2, 1]), "l", 3)
    with pytest.raises(DataError, match=r"^l: label 3 at index 2 is out of range \(the dataset has 3 classes, 0-2\)$"):
        check_label_range(np.array([0, 2, 3, 5]), "l", 3)
    with pytest.raises(DataError, match=r"^l: label -1 at index 0 is out of range \(the dataset has 10 classes, 0-9\)$"):
        check_label_range(np.array([-1, 0]), "l", 10)


def test_unreadable_files_say_why(tmp_path):
    with pytest.raises(DataError, match=rf"^{tmp_path}/absent: file not found"):
        read_idx(tmp_path / "absent")
    with pytest.raises(DataError, match=rf"^{tmp_path}: "):
        read_idx(tmp_path)


def test_read_idx_names_the_file_in_content_errors(tmp_path):
    path = tmp_path / "labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(struct.pack(">HBBI", 0, 0x08, 1, 4) + bytes(3)))
    with pytest.raises(DataError, match=r"^labels-idx1-ubyte\.gz: file truncated: "):
        read_idx(path)
    path.write_bytes(struct.pack(">HBBI", 0, 0x08, 1, 2) + b"\x05\x06")  # not compressed
    np.testing.assert_array_equal(read_idx(str(path)), [5, 6])
