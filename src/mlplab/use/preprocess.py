"""Turning any picture of a digit (or a garment) into the 28×28 image a model trained on MNIST expects.

A model trained on MNIST has only ever seen white ink on black, the digit's longer side 20 pixels,
centred by its centre of mass. Resizing a photo to 28×28 and inverting it gives a good model about
16 % accuracy on photographed digits; doing what MNIST itself did gives about 99 %. The steps, one
function each below:

* ``digit`` (MNIST, KMNIST): composite transparency onto the background, convert to grey, find
  the background from the border and invert when it is light, crop to the ink's bounding box,
  scale the longer side to 20 pixels keeping the aspect ratio (anti-aliased), and place the
  result in 28×28 centred on its centre of mass.
* ``object`` (Fashion-MNIST): invert when the background is light, fit the whole object into
  28×28 keeping the aspect ratio, centred.
* ``none``: grey and resized to 28×28, nothing else.

An image that is already 28×28 on a dark background is taken as it is, whatever the style.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mlplab.errors import InputError

SIZE = 28  # the side of every MNIST-family image
DIGIT_BOX = 20  # MNIST: the digit's longer side, before centring in 28×28
WORK_SIDE = 1024  # large photos are box-averaged down to this before anything else (speed, less noise)
OBJECT_EDGE = 12.0  # grey levels from the background where an object's faint edge still counts as the object
MIN_CONTRAST = 24.0  # grey levels (of 255) between background and ink below which the image is blank
INK_FLOOR = 0.2  # fraction of the ink's contrast below which a pixel counts as background (paper texture, JPEG noise)
PROFILE_FLOOR = 0.01  # rows/columns holding less than this fraction of the busiest one's ink count as empty
STROKE_SIDE = 100  # a crop is area-reduced to this longer side before its stroke width is judged
STROKE_LEVEL = 0.25  # ink above this (of full) counts as stroke when measuring stroke width
MNIST_STROKE = 0.13  # a typical MNIST stroke width / digit height, as stroke_width sees MNIST digits scaled to 100 px here (11-20 px)
THIN_STROKE = 0.07  # strokes thinner than this / digit height (below MNIST's thinnest) are thickened to MNIST_STROKE
SPECK_SHARE = 0.02  # a separate group of rows/columns holding less than this share of the ink is a speck

INPUT_STYLES: dict[str, str] = {
    "digit": "MNIST-style: invert if light, crop to the ink, longer side 20 px, centred by centre of mass in 28×28",
    "object": "Fashion-MNIST-style: invert if light, fit the whole object into 28×28 keeping the aspect ratio, centred",
    "none": "grey and resized to 28×28, nothing else",
}

_STYLE_OF_DATASET = {"mnist": "digit", "kmnist": "digit", "emnist": "digit", "qmnist": "digit",
                     "fashion-mnist": "object", "fashion_mnist": "object", "fmnist": "object"}


def input_style_for(dataset_name: str | None) -> str:
    """The input style of a dataset's images: "object" for Fashion-MNIST, "digit" otherwise."""
    return _STYLE_OF_DATASET.get((dataset_name or "").strip().lower(), "digit")


def preprocess_image(image: Image.Image | np.ndarray | str | Path, style: str = "digit") -> np.ndarray:
    """One image (PIL image, array or file path) → a 28×28 uint8 array, bright ink on a dark background.

    Raises `InputError` (one line) for an image with no ink and for anything `open_image` refuses.
    """
    if style not in INPUT_STYLES:
        raise ValueError(f"style must be one of {', '.join(INPUT_STYLES)}, got {style!r}")
    grey = to_grey(image)
    if style == "none":
        return _to_uint8(np.clip(_resize(grey / 255.0, SIZE, SIZE), 0.0, 1.0))
    if grey.shape == (SIZE, SIZE) and (background := border_level(grey)) < 128:
        if float(grey.max()) - background < MIN_CONTRAST:
            raise _blank(background)
        return _to_uint8(grey / 255.0)  # already MNIST-like: taken as it is
    grey = _box_reduce(grey, WORK_SIDE)
    return _fit_digit(grey) if style == "digit" else _fit_object(grey)


# --- grey levels ------------------------------------------------------------------------------


def to_grey(image: Image.Image | np.ndarray | str | Path) -> np.ndarray:
    """Grey levels 0-255 as float32 (H, W), transparency composited onto the background."""
    if isinstance(image, (str, Path)):
        from mlplab.use.images import open_image

        image = open_image(image)
    if isinstance(image, np.ndarray):
        return _array_to_grey(image)
    if not isinstance(image, Image.Image):
        raise TypeError(f"an image is a PIL image, a numpy array or a path, got {type(image).__name__}")
    if 0 in image.size:
        raise InputError(f"zero-size image ({image.size[0]}×{image.size[1]})")
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(image).astype(np.float32)
        return values / 257.0 if mode.startswith("I;16") or values.max() > 255 else values
    if mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0)
        return np.clip(values * 255.0 if values.max() <= 1.0 else values, 0, 255)
    if _has_alpha(image):
        rgba = image.convert("RGBA")
        grey = np.asarray(rgba.convert("L"), dtype=np.float32)
        alpha = np.asarray(rgba, dtype=np.float32)[..., 3] / 255.0
        return composite(grey, alpha)
    return np.asarray(image.convert("L"), dtype=np.float32)


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def composite(grey: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Lay a grey image with transparency onto a background that contrasts with its opaque part.

    A canvas export is typically black strokes on transparent *black*: composited onto black it
    would be blank. The visible strokes decide: dark strokes go onto white, light ones onto black.
    """
    weight = float(alpha.sum())
    if weight == 0.0:
        return np.zeros_like(grey)  # nothing visible: blank, reported as such later
    if alpha.min() >= 1.0:
        return grey
    stroke_level = float((grey * alpha).sum()) / weight
    background = 255.0 if stroke_level < 128 else 0.0
    return alpha * grey + (1.0 - alpha) * background


def _array_to_grey(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 3 and array.shape[-1] in (3, 4) and array.dtype == np.uint8:
        mode = "RGB" if array.shape[-1] == 3 else "RGBA"
        return to_grey(Image.fromarray(array, mode))
    if array.ndim == 1 and array.size == SIZE * SIZE:
        array = array.reshape(SIZE, SIZE)
    if array.ndim != 2:
        raise InputError(f"an image array has shape (H, W) or (H, W, 3|4), got {array.shape}")
    if 0 in array.shape:
        raise InputError(f"zero-size image (shape {array.shape})")
    if array.dtype == np.bool_:
        return array.astype(np.float32) * 255.0
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise InputError("image array holds NaN or infinite values")
        low, high = float(array.min()), float(array.max())
        if low < 0 or high > 255:
            raise InputError(f"float image values must lie in [0, 1] (or 0-255), found {low:g} to {high:g}")
        return array.astype(np.float32) * (255.0 if high <= 1.0 else 1.0)
    if array.dtype.kind in "iu":
        low, high = int(array.min()), int(array.max())
        if low < 0:
            raise InputError(f"integer image values must not be negative, found {low}")
        return array.astype(np.float32) / (257.0 if array.dtype.itemsize == 2 or high > 255 else 1.0)
    raise InputError(f"an image array holds numbers, got dtype {array.dtype}")


# --- shared steps -----------------------------------------------------------------------------


def border_level(grey: np.ndarray) -> float:
    """The background's grey level: the median of a thin ring along the image's edges."""
    h, w = grey.shape
    ring = max(1, min(h, w) // 50)
    edges = np.concatenate([grey[:ring].ravel(), grey[-ring:].ravel(), grey[:, :ring].ravel(), grey[:, -ring:].ravel()])
    return float(np.median(edges))


def _box_reduce(grey: np.ndarray, max_side: int) -> np.ndarray:
    """Average blocks of pixels so the longer side is at most about max_side (an area filter)."""
    factor = -(-max(grey.shape) // max_side)
    if factor <= 1:
        return grey
    h, w = (grey.shape[0] // factor) * factor, (grey.shape[1] // factor) * factor
    if h == 0 or w == 0:  # a sliver thinner than one block: plain resize instead
        return _resize(grey, max(1, grey.shape[0] // factor), max(1, grey.shape[1] // factor))
    return grey[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3), dtype=np.float32)


def _resize(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """Anti-aliased resize of a float image: area averaging to shrink, bicubic to enlarge.

    Area averaging is what anti-aliasing means for shrinking, and unlike Lanczos it does not ring
    (no grey halo beside a sharp edge); bicubic's slight overshoot when enlarging is clipped.
    """
    if values.shape == (height, width):
        return values.astype(np.float32)
    shrinking = height * width < values.shape[0] * values.shape[1]
    method = Image.Resampling.BOX if shrinking else Image.Resampling.BICUBIC
    image = Image.fromarray(values.astype(np.float32), "F")
    return np.asarray(image.resize((width, height), method), dtype=np.float32)


def _dark_background(grey: np.ndarray) -> tuple[np.ndarray, float]:
    """Invert when the background is light, so the subject is bright on dark; returns (grey, background)."""
    background = border_level(grey)
    if background > 127.5:
        return 255.0 - grey, 255.0 - background
    return grey, background


def _smoothed_peak(values: np.ndarray) -> float:
    """The brightest 3×3 neighbourhood's mean: a single hot pixel (JPEG noise, dust) is no peak."""
    if min(values.shape) < 3:
        return float(values.max())
    padded = np.pad(values, 1, mode="edge")
    h, w = values.shape
    total = sum(padded[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3))
    return float(total.max()) / 9.0


def _bounding_box(mass: np.ndarray) -> tuple[slice, slice] | None:
    """Rows and columns of the subject, leaving out specks (dust, noise) apart from it."""
    rows, cols = _subject_span(mass.sum(axis=1)), _subject_span(mass.sum(axis=0))
    if rows is None or cols is None:
        return None
    return rows, cols


def _subject_span(profile: np.ndarray) -> slice | None:
    """The span of a row (or column) profile that holds the subject.

    Rows with more than a speck's share of the busiest row's ink form runs separated by empty
    rows; a run holding less than SPECK_SHARE of all the ink, apart from the rest, is a speck (a
    dust mark, a stray dot of noise) and is left out; the span covers every other run.
    """
    if profile.max() <= 0:
        return None
    busy = profile > PROFILE_FLOOR * profile.max()
    edges = np.flatnonzero(np.diff(np.concatenate([[0], busy.astype(np.int8), [0]])))
    runs = list(zip(edges[::2], edges[1::2]))
    total = sum(profile[a:b].sum() for a, b in runs)
    kept = [(a, b) for a, b in runs if profile[a:b].sum() >= SPECK_SHARE * total] or runs
    return slice(int(kept[0][0]), int(kept[-1][1]))


def _fit_box(values: np.ndarray, box: int) -> np.ndarray:
    """Scale so the longer side is `box` pixels, keeping the aspect ratio."""
    h, w = values.shape
    scale = box / max(h, w)
    return np.clip(_resize(values, max(1, round(h * scale)), max(1, round(w * scale))), 0.0, 1.0)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values * 255.0), 0, 255).astype(np.uint8)


def _blank(background: float) -> InputError:
    return InputError(f"no ink found: the image is blank (uniform grey level {background:.0f})")


# --- the styles -------------------------------------------------------------------------------


def _fit_digit(grey: np.ndarray) -> np.ndarray:
    grey, background = _dark_background(grey)
    ink = np.maximum(grey - background, 0.0)
    peak = _smoothed_peak(ink)
    if peak < MIN_CONTRAST:
        raise _blank(background)
    floor = INK_FLOOR * peak
    ink = np.clip((ink - floor) / (peak - floor), 0.0, 1.0)
    box = _bounding_box(ink)
    if box is None:
        raise _blank(background)
    digit = _fit_box(_normalise_strokes(ink[box]), DIGIT_BOX)
    digit /= max(float(digit.max()), 1e-6)  # MNIST's brightest ink is full white (255); averaging dims it
    return _to_uint8(_place_by_centre_of_mass(digit))


def _normalise_strokes(digit: np.ndarray) -> np.ndarray:
    """Thicken strokes much thinner than MNIST's (a ballpoint on a large sheet), as a marker would.

    MNIST's strokes are about MNIST_STROKE of the digit's height; a pen line in a photo can be a
    fifth of that and all but vanishes at 20 pixels (measured: 96 % -> 70 % right). Strokes of
    at least THIN_STROKE of the height are left exactly as they are.
    """
    if max(digit.shape) > STROKE_SIDE:
        digit = _fit_box(digit, STROKE_SIDE)
    width = stroke_width(digit)
    grow = int(round(MNIST_STROKE * max(digit.shape) - width))
    if width >= THIN_STROKE * max(digit.shape) or grow < 1:
        return digit
    padded = np.pad(digit, grow)
    return _max_filter(padded, grow + 1)


def stroke_width(values: np.ndarray) -> float:
    """Mean stroke width in pixels: twice the ink's area over its outline (a w×L stroke: 2wL / 2L)."""
    mask = values > STROKE_LEVEL
    area = int(mask.sum())
    if area == 0:
        return 0.0
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    inner[0] = inner[-1] = False
    inner[:, 0] = inner[:, -1] = False
    outline = area - int(inner.sum())
    return 2.0 * area / max(outline, 1)


def _max_filter(values: np.ndarray, size: int) -> np.ndarray:
    """Grey dilation by a size×size square (separable: rows, then columns)."""
    out = values
    for axis in (0, 1):
        shifted = np.pad(out, [(size // 2, (size - 1) // 2) if a == axis else (0, 0) for a in (0, 1)])
        n = out.shape[axis]
        out = np.max([np.take(shifted, range(i, i + n), axis=axis) for i in range(size)], axis=0)
    return out


def _place_by_centre_of_mass(digit: np.ndarray) -> np.ndarray:
    """Paste into 28×28 so the ink's centre of mass lands on the centre (parts past the edge are cut)."""
    h, w = digit.shape
    mass = digit.sum()
    cy = float((digit.sum(axis=1) * np.arange(h)).sum() / mass)
    cx = float((digit.sum(axis=0) * np.arange(w)).sum() / mass)
    # MNIST's centre of mass sits at row and column index 14.0 (mean over the training set: 14.00
    # and 14.01), i.e. half a pixel right of and below the geometric centre: match it exactly.
    top, left = int(round(SIZE / 2 - cy)), int(round(SIZE / 2 - cx))
    out = np.zeros((SIZE, SIZE), dtype=np.float32)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + h, SIZE), min(left + w, SIZE)
    out[y0:y1, x0:x1] = digit[y0 - top : y1 - top, x0 - left : x1 - left]
    return out


def _fit_object(grey: np.ndarray) -> np.ndarray:
    grey, background = _dark_background(grey)
    span = max(255.0 - background, 1.0)
    values = np.clip((grey - background) / span, 0.0, 1.0)
    contrast = np.abs(grey - background)
    if _smoothed_peak(contrast) < MIN_CONTRAST:
        raise _blank(background)
    box = _bounding_box(np.where(contrast >= OBJECT_EDGE, contrast, 0.0))
    if box is None:
        raise _blank(background)
    obj = _fit_box(values[box], SIZE)
    out = np.zeros((SIZE, SIZE), dtype=np.float32)
    top, left = (SIZE - obj.shape[0]) // 2, (SIZE - obj.shape[1]) // 2
    out[top : top + obj.shape[0], left : left + obj.shape[1]] = obj
    return _to_uint8(out)
