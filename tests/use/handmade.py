"""Digit pictures made the way people make them, from real MNIST test digits.

Each style takes one 28×28 MNIST digit (white ink on black) and renders it as a person would hand
it to `mlplab predict`: photographed on paper (big, off-centre, dark ink on light, uneven light,
noise, JPEG), exported from a drawing canvas (RGBA with a transparent background), drawn white
on a black canvas, written with a thick marker, small in a corner of a large photo, and in the
less common file formats and modes (GIF palette, WebP, 16-bit grey, grey + alpha).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter


def _crop(digit: np.ndarray) -> Image.Image:
    """The digit's ink, cropped to its bounding box with a 2-pixel margin, as an L image (white ink)."""
    rows, cols = np.flatnonzero(digit.max(axis=1)), np.flatnonzero(digit.max(axis=0))
    r0, r1 = max(rows[0] - 2, 0), min(rows[-1] + 3, 28)
    c0, c1 = max(cols[0] - 2, 0), min(cols[-1] + 3, 28)
    return Image.fromarray(digit[r0:r1, c0:c1])


def _scaled(digit: np.ndarray, height: int) -> Image.Image:
    ink = _crop(digit)
    width = max(1, round(ink.width * height / ink.height))
    return ink.resize((width, height), Image.Resampling.BICUBIC)


def _paper(size: tuple[int, int], rng: np.random.Generator, level: float = 225.0, shade: float = 30.0) -> np.ndarray:
    """Light paper with a lighting gradient across it and grain."""
    w, h = size
    gradient = np.linspace(0, 1, w, dtype=np.float32)[None, :] * np.linspace(0.3, 1, h, dtype=np.float32)[:, None]
    return level - shade * gradient + rng.standard_normal((h, w), dtype=np.float32) * 3


def paper_photo(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Dark blue ink on a sheet, photographed: 1200×900, digit 320 px high and off-centre, JPEG later."""
    ink = np.asarray(_scaled(digit, 320), dtype=np.float32) / 255.0
    paper = _paper((1200, 900), rng)
    top, left = 90 + int(rng.integers(0, 300)), 600 + int(rng.integers(0, 300))
    h, w = ink.shape
    channels = []
    for ink_level in (30.0, 40.0, 110.0):  # a blue ballpoint
        channel = paper.copy()
        channel[top : top + h, left : left + w] = channel[top : top + h, left : left + w] * (1 - ink) + ink_level * ink
        channels.append(Image.fromarray(np.clip(channel, 0, 255).astype(np.uint8)))
    return Image.merge("RGB", channels).filter(ImageFilter.GaussianBlur(1.5))


def small_in_corner(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A small digit (70 px) near a corner of a large 1600×1200 grey photo."""
    ink = np.asarray(_scaled(digit, 70), dtype=np.float32) / 255.0
    paper = _paper((1600, 1200), rng, level=200.0, shade=20.0)
    top, left = 80 + int(rng.integers(0, 60)), 1350 + int(rng.integers(0, 100))
    h, w = ink.shape
    paper[top : top + h, left : left + w] = paper[top : top + h, left : left + w] * (1 - ink) + 20.0 * ink
    return Image.fromarray(np.clip(paper, 0, 255).astype(np.uint8), "L")


def canvas_rgba(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A drawing-app export: 280×280 RGBA, black strokes on a fully transparent (black) background."""
    ink = _scaled(digit, 190)
    alpha = Image.new("L", (280, 280), 0)
    alpha.paste(ink, (int(rng.integers(20, 280 - ink.width - 20 + 1)), int(rng.integers(20, 70))))
    black = Image.new("RGB", (280, 280), (0, 0, 0))
    return Image.merge("RGBA", (*black.split(), alpha))


def white_on_black(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """White chalk on a blackboard-like canvas, 500×400, off-centre."""
    canvas = Image.new("L", (500, 400), 15)
    ink = _scaled(digit, 200)
    canvas.paste(ink, (40 + int(rng.integers(0, 150)), 30 + int(rng.integers(0, 120))), ink)
    return canvas


def thick_marker(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A thick black marker on white: strokes fattened, then scaled up, saved as a palette PNG."""
    fat = Image.fromarray(digit).filter(ImageFilter.MaxFilter(3))
    ink = np.asarray(_scaled(np.asarray(fat), 260), dtype=np.float32) / 255.0
    page = np.full((400, 600), 250.0, dtype=np.float32)
    top, left = 70, 60 + int(rng.integers(0, 200))
    h, w = ink.shape
    page[top : top + h, left : left + w] = 250.0 * (1 - ink)
    return Image.fromarray(page.astype(np.uint8), "L").convert("P")


def grey_alpha(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """LA: dark grey strokes whose alpha carries the shape, transparent elsewhere."""
    ink = _scaled(digit, 150)
    alpha = Image.new("L", (300, 220), 0)
    alpha.paste(ink, (60 + int(rng.integers(0, 60)), 30))
    return Image.merge("LA", (Image.new("L", (300, 220), 60), alpha))


def sixteen_bit(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A 16-bit grey scan (I;16): dark ink on light paper, values 0-65535."""
    ink = np.asarray(_scaled(digit, 120), dtype=np.float32) / 255.0
    paper = _paper((240, 200), rng) * 257.0
    h, w = ink.shape
    paper[40 : 40 + h, 60 : 60 + w] = paper[40 : 40 + h, 60 : 60 + w] * (1 - ink) + 5000.0 * ink
    return Image.fromarray(np.clip(paper, 0, 65535).astype(np.uint16))


# style name -> (render, file suffix, save options)
STYLES: dict[str, tuple[Callable[[np.ndarray, np.random.Generator], Image.Image], str, dict]] = {
    "photo": (paper_photo, ".jpg", {"quality": 80}),
    "corner": (small_in_corner, ".jpg", {"quality": 85}),
    "canvas": (canvas_rgba, ".png", {}),
    "chalk": (white_on_black, ".webp", {"quality": 90}),
    "marker": (thick_marker, ".gif", {}),
    "alpha": (grey_alpha, ".png", {}),
    "scan16": (sixteen_bit, ".png", {}),
    "bitmap": (paper_photo, ".bmp", {}),
}


def write_set(folder: Path, digits: np.ndarray, labels: np.ndarray, styles: list[str] | None = None,
              seed: int = 0) -> list[tuple[Path, int]]:
    """Render every digit in every style into `folder`; returns (file, true label) pairs."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i, (digit, label) in enumerate(zip(digits, labels)):
        for style in styles or list(STYLES):
            render, suffix, options = STYLES[style]
            path = folder / f"{i:03d}-{style}-label{int(label)}{suffix}"
            render(digit, rng).save(path, **options)
            written.append((path, int(label)))
    return written
