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
    for npy in (cached[0], cached[2]):  # the test labels and images (smallest of each: the re-decode is quick)
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
    """A valid file of 14000×14000 images: under the file-size cap, but no MLP input; refused before decoding."""
    path = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(idx_header(1, 14000, 14000))
        zeros = bytes(1 << 24)
        for _ in range(14000 * 14000 // len(zeros)):
            out.write(zeros)
        out.write(bytes(14000 * 14000 % len(zeros)))
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
    bomb = gzip.compress(idx_header(10) + bytes(20_000_000), compresslevel=6)
    assert len(bomb) < 100_000
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"more than the 18 bytes its IDX header declares"):
            decompress(bomb, "bomb.gz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"{peak} bytes allocated before refusing"


# --- .npz archives that claim too much ---------------------------------------------------------------


def keras_arrays(n_train: int = 10, n_test: int = 4, size: int = 6) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (n_train, size, size), dtype=np.uint8),
        "y_train": np.arange(n_train) % 2,
        "x_test": rng.integers(0, 256, (n_test, size, size), dtype=np.uint8),
        "y_test": np.arange(n_test) % 2,
    }


@pytest.mark.parametrize("label", [10**9, 2**40, 2**63 + 5])
def test_npz_with_a_huge_label(tmp_path, label):
    """A 4 KB archive with one label of 10**9 once built a class name per value up to it (killed at 23 GB)."""
    arrays = keras_arrays()
    arrays["y_train"] = arrays["y_train"].astype(np.uint64)
    arrays["y_train"][3] = label
    path = tmp_path / "labels.npz"
    np.savez_compressed(path, **arrays)
    assert path.stat().st_size < 4096
    with pytest.raises(DataError, match=rf"y_train: label {label} is beyond the 10000 classes") as err:
        load_dataset(f"npz:{path}")
    one_line(err)


def _npz_with_header(path, key: str, header_shape: tuple[int, ...], arrays: dict[str, np.ndarray]) -> None:
    """An .npz whose ``key`` member's .npy header claims ``header_shape`` but holds only a few bytes."""
    import io
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            if name == key:
                np.lib.format.write_array_header_1_0(
                    buffer, {"descr": "|u1", "fortran_order": False, "shape": header_shape})
                buffer.write(bytes(64))
            else:
                np.save(buffer, array)
            archive.writestr(f"{name}.npy", buffer.getvalue())


def test_npz_header_claims_a_huge_shape(tmp_path):
    path = tmp_path / "claims.npz"
    _npz_with_header(path, "x_train", (10**9, 1000, 28), keras_arrays())
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"x_train declares shape \(1000000000, 1000, 28\) .* more than the") as err:
            load_dataset(f"npz:{path}")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    one_line(err)
    assert peak < 16 << 20


def test_npz_header_claims_more_than_the_member_holds(tmp_path):
    """Under the size limit, but more than the member holds: refused before allocating 500 MB."""
    path = tmp_path / "claims.npz"
    _npz_with_header(path, "x_test", (500, 1000, 1000), keras_arrays())
    with pytest.raises(DataError, match=r"x_test declares shape \(500, 1000, 1000\) .* but holds 192 bytes"):
        load_dataset(f"npz:{path}")


def test_npz_images_too_large_for_an_mlp(tmp_path):
    path = tmp_path / "big.npz"
    _npz_with_header(path, "x_train", (2, 14000, 14000), keras_arrays())
    with pytest.raises(DataError, match="images of 14000 x 14000 pixels are too large"):
        load_dataset(f"npz:{path}")


def test_npz_zip_bomb_is_refused_from_the_zip_directory(tmp_path, monkeypatch):
    """A member that decompresses past the array limit is refused before decompressing (limit lowered
    to 1 MB here, so that the test does not have to build a 1 GiB bomb)."""
    from mlplab.data import user

    monkeypatch.setattr(user, "MAX_ARRAY_BYTES", 1 << 20)
    arrays = keras_arrays()
    arrays["x_train"] = np.zeros((5000, 28, 28), np.uint8)  # 3.9 MB of zeros, 4 KB compressed
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, **arrays)
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"x_train decompresses to 3920128 bytes, more than the 1048576"):
            load_dataset(f"npz:{path}")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_npz_member_truncated_or_padded(tmp_path):
    arrays = keras_arrays()
    import io
    import zipfile

    for change, problem in ((lambda b: b[:-5], "holds fewer bytes"), (lambda b: b + b"\0" * 7, "holds more bytes")):
        path = tmp_path / "t.npz"
        with zipfile.ZipFile(path, "w") as archive:
            for name, array in arrays.items():
                buffer = io.BytesIO()
                np.save(buffer, array)
                data = buffer.getvalue()
                archive.writestr(f"{name}.npy", change(data) if name == "y_test" else data)
        with pytest.raises(DataError, match=f"y_test {problem} than its header"):
            load_dataset(f"npz:{path}")


def test_npz_fortran_order_and_big_endian_are_read_faithfully(tmp_path):
    arrays = keras_arrays()
    expected = arrays["x_train"].copy()
    arrays["x_train"] = np.asfortranarray(arrays["x_train"])
    arrays["y_train"] = arrays["y_train"].astype(">i4")
    np.savez(tmp_path / "f.npz", **arrays)
    ds = load_dataset(f"npz:{tmp_path / 'f.npz'}")
    np.testing.assert_array_equal(ds.x_train, expected)
    np.testing.assert_array_equal(ds.y_train, np.arange(10) % 2)


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_npz_that_is_not_a_regular_file(tmp_path, kind):
    path = tmp_path / "d.npz"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    with pytest.raises(DataError, match=r"d\.npz: not a regular file"):
        load_dataset(f"npz:{path}")


# --- IDX folders: classes.txt, counts, empty and broken files ------------------------------------------


def test_classes_txt_not_utf8(idx, tmp_path):
    idx.write_dir(tmp_path, idx.arrays(classes=3))
    (tmp_path / "classes.txt").write_bytes("chat\nchien\n\xe9l\xe9phant\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"classes\.txt: not UTF-8 text") as err:
        load_dataset(f"idx:{tmp_path}")
    one_line(err)


@pytest.mark.parametrize("kind", ["loop", "fifo", "folder"])
def test_classes_txt_unreadable(idx, tmp_path, kind):
    idx.write_dir(tmp_path, idx.arrays(classes=3))
    names = tmp_path / "classes.txt"
    if kind == "loop":
        names.symlink_to(names)  # ELOOP: unreadable even for root
    elif kind == "fifo":
        os.mkfifo(names)
    else:
        names.mkdir()
    with pytest.raises(DataError, match=r"classes\.txt: (cannot open|not a regular file)") as err:
        load_dataset(f"idx:{tmp_path}")
    one_line(err)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "too short for an IDX file"),
        (b"\x00\x00\x08", "too short for an IDX file"),
        (b"PK\x03\x04" + bytes(20), "not an IDX file"),
        (b"\x1f\x8b\x08\x00" + bytes(6), "(truncated|corrupt) .*gzip"),
    ],
)
def test_idx_folder_with_a_broken_file(idx, tmp_path, content, problem):
    paths = idx.write_dir(tmp_path, idx.arrays())
    paths["test_labels"].write_bytes(content)
    with pytest.raises(DataError, match=problem) as err:
        load_dataset(f"idx:{tmp_path}")
    one_line(err)


def test_idx_folder_with_no_images(idx, tmp_path):
    arrays = idx.arrays()
    arrays["test_images"] = arrays["test_images"][:0]
    arrays["test_labels"] = arrays["test_labels"][:0]
    idx.write_dir(tmp_path, arrays)
    with pytest.raises(DataError, match="holds no image data"):
        load_dataset(f"idx:{tmp_path}")


def test_idx_folder_with_one_class(idx, tmp_path):
    arrays = idx.arrays()
    arrays["train_labels"][:] = 0
    arrays["test_labels"][:] = 0
    idx.write_dir(tmp_path, arrays)
    with pytest.raises(DataError, match="1 class .* a classifier needs at least two"):
        load_dataset(f"idx:{tmp_path}")


# --- image folders ---------------------------------------------------------------------------------


def _png(path, value: int = 100, size=(28, 28), mode: str = "L") -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color=value).save(path)


def test_folder_with_one_class(tmp_path):
    for i in range(5):
        _png(tmp_path / "only" / f"{i}.png")
    with pytest.raises(DataError, match=r"1 class \(only\); a classifier needs at least two") as err:
        load_dataset(f"folder:{tmp_path}")
    one_line(err)


def test_folder_class_name_not_utf8(tmp_path):
    _png(tmp_path / "a" / "0.png")
    bad = os.fsencode(tmp_path) + b"/caf\xe9"
    os.mkdir(bad)
    _png(tmp_path / os.fsdecode(b"caf\xe9") / "0.png")
    with pytest.raises(DataError, match=r"caf\\xe9: the name is not valid UTF-8; rename it") as err:
        load_dataset(f"folder:{tmp_path}")
    one_line(err)


def test_folder_root_not_utf8(tmp_path):
    root = tmp_path / os.fsdecode(b"d\xff")
    for cls in ("a", "b"):
        _png(root / cls / "0.png")
    with pytest.raises(DataError, match=r"d\\xff: the name is not valid UTF-8"):
        load_dataset(f"folder:{root}")


@pytest.mark.parametrize("which", ["root", "class"])
def test_folder_unreadable(tmp_path, monkeypatch, which):
    """A folder that cannot be listed (permissions; simulated, since tests may run as root)."""
    from pathlib import Path

    for cls in ("a", "b"):
        _png(tmp_path / cls / "0.png")
    target = tmp_path if which == "root" else tmp_path / "b"
    real_iterdir = Path.iterdir

    def iterdir(self):
        if self == target:
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    with pytest.raises(DataError, match=rf"{target.name}: cannot read the folder \(Permission denied\)") as err:
        load_dataset(f"folder:{tmp_path}")
    one_line(err)


def test_folder_16_bit_png_is_scaled_not_clipped(tmp_path):
    from PIL import Image

    ramp = (np.arange(28 * 28, dtype=np.uint32).reshape(28, 28) * 65535 // (28 * 28 - 1)).astype(np.uint16)
    for cls in ("a", "b"):
        path = tmp_path / cls / "0.png"
        path.parent.mkdir(parents=True)
        Image.fromarray(ramp).save(path)
    assert Image.open(tmp_path / "a" / "0.png").mode.startswith("I")  # really a 16-bit image
    ds = load_dataset(f"folder:{tmp_path}")
    image = np.concatenate([ds.x_train, ds.x_test])[0].astype(int)
    expected = np.rint(ramp / 257.0).astype(int)
    assert np.abs(image - expected).max() <= 1
    assert (image == 255).mean() < 0.01  # clipping made 99.5 % of the pixels 255


def test_folder_float_image_in_0_1_is_scaled(tmp_path):
    from PIL import Image

    for cls in ("a", "b"):
        path = tmp_path / cls / "0.tif"
        path.parent.mkdir(parents=True)
        Image.fromarray(np.full((28, 28), 0.5, np.float32), mode="F").save(path)
    ds = load_dataset(f"folder:{tmp_path}")
    assert set(np.concatenate([ds.x_train, ds.x_test]).ravel().tolist()) == {128}


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_folder_image_too_large(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    _png(tmp_path / "a" / "0.png")
    _png(tmp_path / "b" / "0.png", size=(40, 30))
    with pytest.raises(DataError, match=r"0\.png: 40 x 30 pixels, more than the 1000 an image may have"):
        load_dataset(f"folder:{tmp_path}")


def test_folder_image_that_is_not_an_image(tmp_path):
    _png(tmp_path / "a" / "0.png")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "0.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(10))
    with pytest.raises(DataError, match=r"b/0\.png: not a readable image") as err:
        load_dataset(f"folder:{tmp_path}")
    one_line(err)


# --- more: negative and empty shapes, repeated class names, empty files -----------------------------


@pytest.mark.parametrize(("key", "shape"), [("x_train", (-1, 6, 6)), ("x_train", (2, -3, 6)), ("y_train", (-5,))])
def test_npz_header_with_a_negative_dimension(tmp_path, key, shape):
    path = tmp_path / "neg.npz"
    _npz_with_header(path, key, shape, keras_arrays())
    with pytest.raises(DataError, match=rf"{key} declares shape .* with a negative dimension"):
        load_dataset(f"npz:{path}")


def test_npz_with_an_empty_split(tmp_path):
    arrays = keras_arrays()
    arrays["x_test"], arrays["y_test"] = arrays["x_test"][:0], arrays["y_test"][:0]
    np.savez(tmp_path / "e.npz", **arrays)
    with pytest.raises(DataError, match=r"x_test: holds no images"):
        load_dataset(f"npz:{tmp_path / 'e.npz'}")


def test_repeated_class_names(tmp_path, idx):
    np.savez(tmp_path / "c.npz", **keras_arrays(), class_names=np.array(["cat", "cat"]))
    with pytest.raises(DataError, match="class names must differ; repeated: 'cat'"):
        load_dataset(f"npz:{tmp_path / 'c.npz'}")
    idx.write_dir(tmp_path / "d", idx.arrays(classes=3))
    (tmp_path / "d" / "classes.txt").write_text("a\nb\na\n")
    with pytest.raises(DataError, match="repeated: 'a'"):
        load_dataset(f"idx:{tmp_path / 'd'}")


def test_empty_npz_file(tmp_path):
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.npz: not a readable \.npz archive"):
        load_dataset(f"npz:{tmp_path / 'empty.npz'}")


# --- through the command line: one line, exit status 2 ---------------------------------------------


def test_cli_reports_each_data_attack_on_one_line(tmp_path, idx, capsys):
    from mlplab.cli.main import main

    arrays = keras_arrays()
    arrays["y_train"] = arrays["y_train"].astype(np.int64)
    arrays["y_train"][0] = 10**9
    np.savez(tmp_path / "label.npz", **arrays)
    _npz_with_header(tmp_path / "shape.npz", "x_train", (10**9, 1000, 28), keras_arrays())
    os.mkfifo(tmp_path / "fifo.npz")
    deep = tmp_path / "idx65"
    idx.write_dir(deep, idx.arrays())
    (deep / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_header(*([1] * 65)) + b"\x00"))
    for kind, file in (("npz", "label.npz"), ("npz", "shape.npz"), ("npz", "fifo.npz"), ("idx", "idx65")):
        assert main(["data", "info", f"{kind}:{tmp_path / file}"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
