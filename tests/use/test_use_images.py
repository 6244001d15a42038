"""open_image: every way an untrusted image file can be bad gives one line, never a crash."""

from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from mlplab.errors import InputError, MlplabError
from mlplab.use.images import open_image


def png_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **options)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width×height, with a valid CRC and no pixel data worth the name."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    idat = b"IDAT" + zlib.compress(b"\x00")
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
            + struct.pack(">I", len(idat) - 4) + idat + struct.pack(">I", zlib.crc32(idat))
            + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND")))


def digit_image(mode: str = "L") -> Image.Image:
    image = Image.new("L", (60, 40), 255)
    image.paste(0, (20, 5, 30, 35))
    return image.convert(mode)


def test_a_path_bytes_and_a_file_object_give_the_same_decoded_image(tmp_path):
    data = png_bytes(digit_image())
    (tmp_path / "d.png").write_bytes(data)
    images = [open_image(tmp_path / "d.png"), open_image(str(tmp_path / "d.png")), open_image(data),
              open_image(io.BytesIO(data))]
    for image in images:
        assert image.size == (60, 40) and image.mode == "L"
        assert np.array_equal(np.asarray(image), np.asarray(images[0]))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF"])
def test_the_listed_formats_open(tmp_path, fmt):
    path = tmp_path / f"d.{fmt.lower()}"
    digit_image("RGB").save(path, fmt)
    assert open_image(path).size == (60, 40)


def _expect(source, pattern: str, **options) -> InputError:
    with pytest.raises(InputError, match=pattern) as info:
        open_image(source, **options)
    message = str(info.value)
    assert "\n" not in message and isinstance(info.value, MlplabError)
    return info.value


def test_a_missing_path_and_a_folder(tmp_path):
    _expect(tmp_path / "nope.png", r"nope.png: no such file or directory")
    _expect(tmp_path, "is a folder")


def test_a_fifo_is_not_read(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    _expect(tmp_path / "pipe.png", "pipe.png: not a regular file")


def test_an_empty_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    _expect(tmp_path / "empty.png", "empty.png: empty file")
    _expect(b"", "empty image data")


def test_a_text_file_is_not_an_image(tmp_path):
    (tmp_path / "notes.png").write_text("my digits are in another folder\n")
    _expect(tmp_path / "notes.png", "notes.png: not an image Pillow can read")


def test_a_truncated_png_and_jpeg(tmp_path):
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8))
    data = png_bytes(noisy)
    _expect(data[: len(data) // 2], "truncated or corrupt image")
    buffer = io.BytesIO()
    noisy.save(buffer, "JPEG")
    _expect(buffer.getvalue()[:800], "truncated or corrupt image")


def test_a_zero_size_image():
    _expect(png_header_only(0, 10), r"zero-size image \(0×10, declared in its PNG header\)")
    gif = b"GIF89a" + struct.pack("<HH", 12, 0) + b"\x00\x00\x00;"
    _expect(gif, r"zero-size image \(12×0")


def test_a_damaged_header_of_a_known_format():
    _expect(b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, "damaged PNG image")


def test_a_decompression_bomb_is_refused_from_its_header_before_decoding():
    # 50,000 × 50,000 declared in 70 bytes: decoding it would need 2.5 GB.
    _expect(png_header_only(50_000, 50_000), "image too large: 2,500,000,000 pixels, the limit is 40,000,000")
    _expect(png_header_only(8_000, 6_000), "image too large: 8000×6000 = 48,000,000 pixels, the limit is 40,000,000")


def test_the_pixel_limit_is_explicit_and_adjustable():
    data = png_bytes(Image.new("L", (100, 100), 255))
    _expect(data, r"the limit is 9,999", max_pixels=9_999)
    assert open_image(data, max_pixels=10_000).size == (100, 100)
    with pytest.raises(ValueError, match="max_pixels"):
        open_image(data, max_pixels=0)


def test_pillows_own_bomb_warning_is_an_error_even_under_a_higher_limit():
    # Over Pillow's MAX_IMAGE_PIXELS (89,478,485) but under ours: Pillow only warns; we refuse.
    error = _expect(png_header_only(10_000, 9_000), "image too large", max_pixels=200_000_000)
    assert "decompression bomb" in str(error).lower()


def test_animated_png_webp_and_multi_page_tiff_are_refused(tmp_path):
    frames = [digit_image("RGB"), Image.new("RGB", (60, 40), "white")]
    for fmt, name in (("PNG", "anim.png"), ("WEBP", "anim.webp"), ("TIFF", "pages.tiff")):
        frames[0].save(tmp_path / name, fmt, save_all=True, append_images=frames[1:])
        _expect(tmp_path / name, rf"{name}: {fmt if fmt != 'WEBP' else 'WEBP'} file with 2 frames \(animated or multi-page\)")


def test_an_animated_gif_gives_its_first_frame(tmp_path):
    first, second = digit_image("P"), Image.new("P", (60, 40), 255)
    first.save(tmp_path / "anim.gif", save_all=True, append_images=[second], duration=100, loop=0)
    assert Image.open(tmp_path / "anim.gif").n_frames == 2
    assert np.array_equal(np.asarray(open_image(tmp_path / "anim.gif").convert("L")), np.asarray(digit_image()))


def test_formats_outside_the_list_are_not_even_tried(tmp_path):
    digit_image("RGB").save(tmp_path / "icon.ico", "ICO")
    _expect(tmp_path / "icon.ico", "not an image Pillow can read here")


def test_a_phone_photo_is_turned_upright_by_its_exif_orientation(tmp_path):
    upright = digit_image("RGB")  # 60 wide, 40 high
    sideways = upright.transpose(Image.Transpose.ROTATE_90)  # as the sensor stored it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    sideways.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    opened = open_image(tmp_path / "phone.jpg")
    assert opened.size == (60, 40)
    assert np.abs(np.asarray(opened.convert("L"), dtype=int) - np.asarray(upright.convert("L"))).mean() < 3
