"""preprocess_image: what MNIST did to its digits, checked on real MNIST digits put back into photos."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import mlplab
from mlplab.errors import InputError
from mlplab.use.preprocess import INPUT_STYLES, input_style_for, preprocess_image


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    mass = image.astype(np.float64)
    total = mass.sum()
    return float(mass.sum(axis=1) @ np.arange(28) / total), float(mass.sum(axis=0) @ np.arange(28) / total)


def ink_box(image: np.ndarray, level: int = 0) -> tuple[int, int]:
    rows, cols = np.flatnonzero(image.max(axis=1) > level), np.flatnonzero(image.max(axis=0) > level)
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def on_paper(digit: np.ndarray, size=(900, 700), at=(120, 500), height=300, paper=235, ink=30) -> Image.Image:
    """Dark ink on light paper: the MNIST digit scaled up and placed off-centre on a large sheet."""
    big = Image.fromarray(digit).resize((height * 28 // 28, height), Image.Resampling.BICUBIC)
    alpha = np.asarray(big, dtype=np.float32) / 255
    sheet = np.full((size[1], size[0]), float(paper), dtype=np.float32)
    top, left = at
    sheet[top : top + height, left : left + height] = paper * (1 - alpha) + ink * alpha
    return Image.fromarray(sheet.astype(np.uint8))


def test_public_names():
    assert mlplab.preprocess_image is preprocess_image
    assert set(INPUT_STYLES) == {"digit", "object", "none"}
    assert input_style_for("mnist") == input_style_for("KMNIST") == "digit"
    assert input_style_for("fashion-mnist") == input_style_for("fashion_mnist") == "object"
    assert input_style_for("npz:mine.npz") == input_style_for(None) == "digit"
    with pytest.raises(ValueError, match="style must be one of digit, object, none, got 'photo'"):
        preprocess_image(np.zeros((28, 28), np.uint8), "photo")


@pytest.mark.parametrize("style", ["digit", "object", "none"])
def test_mnist_images_are_taken_as_they_are(mnist, style):
    for digit in mnist.x_test[:20]:
        out = preprocess_image(digit, style)
        assert out.dtype == np.uint8 and np.array_equal(out, digit)


def test_a_digit_on_paper_becomes_an_mnist_digit(mnist):
    """Inverted, cropped, longer side 20, centre of mass at MNIST's (14, 14)."""
    offsets = []
    for digit in mnist.x_test[:10]:
        out = preprocess_image(on_paper(digit))
        assert out.shape == (28, 28) and out.dtype == np.uint8
        assert out.max() >= 240 and out[0].max() == out[-1].max() == out[:, 0].max() == out[:, -1].max() == 0
        assert max(ink_box(out, 10)) in (19, 20, 21)
        cy, cx = centre_of_mass(out)
        assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5  # placed by whole pixels, as MNIST was
        offsets += [abs(cy - 14), abs(cx - 14)]
        # close to the original digit: what a model trained on MNIST needs
        assert np.abs(out.astype(int) - digit).mean() < 20
    assert np.mean(offsets) < 0.35  # rounding errors, not a systematic half-pixel shift


def test_position_on_the_page_does_not_matter(mnist):
    digit = mnist.x_test[3]
    a = preprocess_image(on_paper(digit, at=(20, 20)))
    b = preprocess_image(on_paper(digit, at=(380, 580)))
    assert np.array_equal(a, b)


def test_light_ink_on_dark_and_dark_ink_on_light_give_the_same_digit(mnist):
    digit = mnist.x_test[7]
    dark_on_light = on_paper(digit, paper=240, ink=10)
    light_on_dark = Image.fromarray(255 - np.asarray(dark_on_light))
    assert np.abs(preprocess_image(dark_on_light).astype(int) - preprocess_image(light_on_dark)).max() <= 2


def test_a_canvas_export_with_a_transparent_background_is_not_blank(mnist):
    """Black strokes on transparent black: without compositing the grey image would be all black."""
    digit = mnist.x_test[0]
    alpha = Image.fromarray(digit).resize((280, 280), Image.Resampling.BICUBIC)
    black_strokes = Image.merge("RGBA", (*Image.new("RGB", (280, 280)).split(), alpha))
    white_strokes = Image.merge("RGBA", (*Image.new("RGB", (280, 280), "white").split(), alpha))
    expected = preprocess_image(Image.fromarray(np.asarray(alpha)))
    for image in (black_strokes, white_strokes, black_strokes.convert("LA")):
        out = preprocess_image(image)
        assert np.abs(out.astype(int) - expected).max() <= 2


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "I;16", "I", "F", "1"])
def test_every_common_mode_gives_the_same_digit(mnist, mode):
    image = on_paper(mnist.x_test[1])
    reference = preprocess_image(image)
    if mode == "I;16":
        converted = Image.fromarray(np.asarray(image).astype(np.uint16) * 257)
    elif mode == "1":
        converted = image.point(lambda v: 255 if v > 128 else 0).convert("1")
    else:
        converted = image.convert(mode)
    out = preprocess_image(converted)
    tolerance = 100 if mode == "1" else 3  # a 1-bit image loses the grey levels of the edges
    assert np.abs(out.astype(int) - reference).mean() < (12 if mode == "1" else 0.5)
    assert np.abs(out.astype(int) - reference).max() <= tolerance or mode == "1"


def test_arrays_in_every_accepted_form(mnist):
    digit = mnist.x_test[2]
    page = np.asarray(on_paper(digit))
    reference = preprocess_image(page)
    assert np.array_equal(preprocess_image(page.astype(np.float32) / 255), reference)
    assert np.array_equal(preprocess_image(np.stack([page] * 3, axis=-1)), reference)
    assert np.array_equal(preprocess_image(digit.reshape(784)), digit)
    for bad, message in ((np.full((28, 28), np.nan), "NaN"), (np.full((28, 28), -1.0), r"\[0, 1\]"),
                         (np.zeros((3, 28, 28), np.uint8), "shape"), (np.zeros((0, 5), np.uint8), "zero-size"),
                         (np.full((28, 28), "a"), "dtype")):
        with pytest.raises(InputError, match=message):
            preprocess_image(bad)


@pytest.mark.parametrize("image", [
    Image.new("L", (300, 200), 255),                      # white paper
    Image.new("RGB", (300, 200), (40, 40, 40)),            # dark
    Image.new("RGBA", (300, 200), (0, 0, 0, 0)),           # an empty canvas export
    Image.fromarray(np.random.default_rng(0).normal(200, 3, (400, 300)).clip(0, 255).astype(np.uint8)),  # grain only
    np.zeros((28, 28), np.uint8),
], ids=["white", "dark", "transparent", "paper-grain", "black-28"])
def test_a_blank_image_is_an_error(image):
    with pytest.raises(InputError, match="no ink found: the image is blank"):
        preprocess_image(image)


def test_a_dust_speck_far_from_the_digit_does_not_shrink_it(mnist):
    digit = mnist.x_test[4]
    page = np.asarray(on_paper(digit)).copy()
    clean = preprocess_image(page)
    page[680:683, 20:23] = 30  # a 3×3 speck in the far corner
    assert np.abs(preprocess_image(page).astype(int) - clean).mean() < 3


def test_object_style_fits_the_whole_object_centred():
    """A dark rectangle (a bag) on white, 300×150: inverted, 28 wide, 14 high, centred."""
    page = np.full((500, 700), 250, np.uint8)
    page[100:250, 200:500] = 60
    out = preprocess_image(page, "object")
    assert ink_box(out, 20) == (14, 28)
    rows = np.flatnonzero(out.max(axis=1) > 20)
    assert rows[0] == 7 and rows[-1] == 20  # centred
    assert out[14, 14] > 150 and out[0, 0] == 0


def test_none_style_only_converts_and_resizes():
    page = np.full((56, 56), 255, np.uint8)
    page[:28, :28] = 0
    out = preprocess_image(page, "none")
    assert out.shape == (28, 28)
    assert out[:14, :14].max() == 0 and out[14:, 14:].min() == 255  # not inverted, not centred


def product_photo(item: np.ndarray, height: int = 300) -> np.ndarray:
    """A Fashion-MNIST item as a shop photo: dark-on-white (the dataset's negative), large, off-centre."""
    big = np.asarray(Image.fromarray(item).resize((height, height), Image.Resampling.BICUBIC), dtype=np.float32)
    page = np.full((520, 640), 255.0, dtype=np.float32)
    page[150 : 150 + height, 300 : 300 + height] = 255.0 - big
    return page.clip(0, 255).astype(np.uint8)


def test_object_style_gives_fashion_mnist_back_from_product_photos():
    from mlplab.data import load_dataset
    from mlplab.errors import DataError

    try:
        fashion = load_dataset("fashion-mnist", download=False)
    except DataError:
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist; .ci/run does it)")
    similar, naive_similar = [], []
    for item in fashion.x_test[:20]:
        photo = product_photo(item)
        out = preprocess_image(photo, "object")
        rows, cols = np.flatnonzero(out.max(axis=1) > 0), np.flatnonzero(out.max(axis=0) > 0)
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 == 28  # the whole item, fitted to 28
        naive = 255 - np.asarray(Image.fromarray(photo).resize((28, 28), Image.Resampling.BILINEAR))
        similar.append(np.corrcoef(out.ravel(), item.ravel())[0, 1])
        naive_similar.append(np.corrcoef(naive.ravel(), item.ravel())[0, 1])
    # the item as the dataset has it (textures lose a little in the photo's round trip), far closer
    # than resizing the whole photo
    assert np.mean(similar) > 0.85 and min(similar) > 0.6, similar
    assert np.mean(similar) - np.mean(naive_similar) > 0.4 and min(np.subtract(similar, naive_similar)) > 0.1


def test_a_thin_pen_line_is_thickened_to_an_mnist_stroke():
    """A 3-pixel line, 300 pixels tall: at 20 pixels it would be a faint hairline a model never saw."""
    page = np.full((600, 400), 230, np.uint8)
    page[150:450, 200:203] = 20
    page[150:153, 170:203] = 20  # the little flag of a handwritten 1
    out = preprocess_image(page)
    columns = np.flatnonzero(out[8:20].max(axis=0) > 128)  # the upright's middle rows
    assert 2 <= len(columns) <= 4 and out.max() >= 250
    from mlplab.use.preprocess import stroke_width

    assert stroke_width(out / 255) >= 2.0
    # MNIST-thick strokes are left alone: the same line 40 pixels wide gives the same upright width
    # as MNIST's ones (2-4 px), not a thickened one
    thick = np.full((600, 400), 230, np.uint8)
    thick[150:450, 180:220] = 20
    assert 2 <= len(np.flatnonzero(preprocess_image(thick)[8:20].max(axis=0) > 128)) <= 4
