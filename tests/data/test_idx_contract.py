"""The IDX reader's every type code, its exact limits and the messages of the structure checks."""

from __future__ import annotations

import gzip
import hashlib
import io
import mmap
import struct
import tracemalloc

import numpy as np
import pytest

from mlplab.data.idx import (
    IDX_TYPES, MAX_IDX_BYTES, MAX_IMAGE_PIXELS, check_images, check_label_range, check_labels, decompress, idx_header,
    idx_sha256, parse_idx, read_idx,
)
from mlplab.errors import DataError


EVERY_TYPE = pytest.mark.parametrize(
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


def header(*shape: int, code: int = 0x08) -> bytes:
    return struct.pack(">HBB", 0, code, len(shape)) + struct.pack(f">{len(shape)}I", *shape)


@EVERY_TYPE
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


# --- the digest of a decoded array (what the decoded cache checks a cached array against) -----------


@EVERY_TYPE
def test_idx_sha256_is_the_digest_of_the_file_the_array_was_read_from(code, values):
    grid = np.stack([values, values[::-1]])[:, None, :]  # (2, 1, 3): a header of three dimensions
    data = header(*grid.shape, code=code) + grid.astype(grid.dtype.newbyteorder(">")).tobytes()
    array = parse_idx(data, "f")
    assert idx_header(array) == data[:16]
    digest = hashlib.sha256(data).hexdigest()
    assert idx_sha256(array) == digest
    # the values decide, not their byte order in memory or their layout
    assert idx_sha256(array.astype(array.dtype.newbyteorder(">"))) == digest
    assert idx_sha256(np.asfortranarray(array)) == digest


@pytest.mark.parametrize("dtype", [np.bool_, np.uint16, np.float16, np.int64])
def test_idx_header_refuses_a_dtype_idx_cannot_hold(dtype):
    with pytest.raises(ValueError, match=rf"^no IDX encoding for {np.dtype(dtype)} arrays of 2 dimensions$"):
        idx_header(np.zeros((2, 3), dtype=dtype))


# --- exact limits: dimensions, sizes, image size --------------------------------------------------


def test_four_dimensions_are_read_and_their_declared_size_still_guards_the_gzip_stream():
    data = header(2, 1, 2, 3) + bytes(range(12))
    assert parse_idx(data, "f").shape == (2, 1, 2, 3)
    assert decompress(gzip.compress(data), "f.gz") == data
    message = (
        "^f.gz: decompresses to more than the 32 bytes its IDX header declares "
        r"\(a corrupt gzip stream, or data after the IDX values\)$"
    )
    with pytest.raises(DataError, match=message):
        decompress(gzip.compress(data + b"\x00"), "f.gz")


def test_a_dimension_count_over_127_is_refused_as_too_many_dimensions():
    """The count is an unsigned byte: 200 is not read as -56."""
    data = header(*([1] * 200)) + b"\x07"
    with pytest.raises(DataError, match=r"^f: IDX header declares 200 dimensions; .* at most 4 are read$"):
        parse_idx(data, "f")
    with pytest.raises(DataError, match=r"^f.gz: IDX header declares 200 dimensions"):
        decompress(gzip.compress(data), "f.gz")


def test_size_limits_are_inclusive_and_each_names_the_limit():
    plain = header(6) + bytes(6)  # 14 bytes
    assert decompress(plain, "p", limit=14) is plain
    with pytest.raises(DataError, match=r"^p: 14 bytes, more than the 13 any dataset file may have$"):
        decompress(plain, "p", limit=13)
    # in a gzip file the limit applies to the data its header declares, refused before decompressing them
    assert decompress(gzip.compress(plain), "g", limit=6) == plain
    with pytest.raises(
        DataError, match=r"^g: IDX header declares shape \(6,\) \(6 bytes of data\), more than the 5 any dataset file may hold$"
    ):
        decompress(gzip.compress(plain), "g", limit=5)


@pytest.mark.parametrize("content", [b"", b"\x00\x00\x08"])
def test_a_gzip_file_too_short_for_a_header_is_decompressed_for_parse_idx_to_refuse(content, tmp_path):
    assert decompress(gzip.compress(content), "g") == content
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(content))
    with pytest.raises(DataError, match=rf"^labels.gz: too short for an IDX file \({len(content)} bytes,"):
        read_idx(path)


def test_images_over_the_pixel_limit_are_refused_naming_the_file_and_the_size():
    assert MAX_IMAGE_PIXELS == 1024 * 1024
    check_images(np.zeros((1, 1024, 1024), dtype=np.uint8), "i")
    with pytest.raises(DataError, match=r"^i: images of 1024 x 1025 pixels are too large for an MLP \(at most 1048576 pixels"):
        check_images(np.zeros((1, 1024, 1025), dtype=np.uint8), "i")
    # from the header of a gzip file, before any of its values is decompressed
    with pytest.raises(DataError, match=r"^f.gz: images of 1025 x 1024 pixels are too large for an MLP"):
        decompress(gzip.compress(header(1, 1025, 1024)), "f.gz")


def test_a_gzip_bomb_past_a_whole_read_is_caught_at_the_declared_size():
    """A file that declares 16 MiB (one read of the decompressor exactly) and holds 16 MiB more.

    The byte after the declared size is what shows the extra data: stopping at the declared size
    would silently drop it, and reading another whole chunk would spend 16 MiB more on a bomb.
    """
    declared = 1 << 24
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=1, mtime=0) as out:
        out.write(header(declared))
        for _ in range(2 * declared >> 20):
            out.write(bytes(1 << 20))
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=rf"^b.gz: decompresses to more than the {declared + 8} bytes its IDX header declares"):
            decompress(buffer.getvalue(), "b.gz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * declared, f"{peak} bytes allocated for a file declaring {declared}"


def test_parse_idx_checks_the_shape_of_a_buffer_over_the_file_size_limit(tmp_path):
    """Bytes already in memory (here a memory map) are judged by their header, not refused for their size.

    The file-size limit belongs to reading (read_idx, decompress); a sparse file keeps this test small.
    """
    side = 32769  # one image of side x side pixels: more than MAX_IDX_BYTES
    path = tmp_path / "big-idx3-ubyte"
    with open(path, "wb") as out:
        out.write(header(1, side, side))
        out.truncate(16 + side * side)
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        assert len(data) > MAX_IDX_BYTES
        with pytest.raises(DataError, match=rf"^big: images of {side} x {side} pixels are too large for an MLP"):
            parse_idx(data, "big")
