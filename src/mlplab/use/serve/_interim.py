"""TEMPORARY stand-ins for mlplab.use.images / preprocess / predict until that branch is merged.

Deleted once `git merge wt-predict` brings the real functions (same names and signatures).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from PIL import Image


class InputError(ValueError):
    pass


def open_image(source, *, max_pixels=40_000_000):
    data = source if isinstance(source, bytes) else open(source, "rb").read()
    if not data:
        raise InputError("empty file")
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > max_pixels:
                raise InputError(f"{image.width * image.height} pixels, over the limit of {max_pixels}")
            if getattr(image, "n_frames", 1) > 1:
                raise InputError("animated or multi-page image")
            image.load()
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"not a readable image ({type(exc).__name__})") from None
    if image.width == 0 or image.height == 0:
        raise InputError("zero-size image")
    return image


def input_style_for(name):
    return "object" if "fashion" in name else "digit"


def preprocess_image(image, style="digit"):
    if isinstance(image, np.ndarray):
        array = image.astype(np.float32)
    else:
        if image.mode in ("RGBA", "LA", "P"):
            image = image.convert("RGBA")
            background = Image.new("RGBA", image.size, (0, 0, 0, 255))
            image = Image.alpha_composite(background, image)
        array = np.asarray(image.convert("L"), dtype=np.float32)
    border = np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]])
    if np.median(border) > 127:
        array = 255 - array
    ys, xs = np.nonzero(array > 30)
    if len(ys) == 0:
        raise InputError("blank image: no ink")
    crop = array[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
    h, w = crop.shape
    scale = 20 / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = np.asarray(Image.fromarray(crop.astype(np.uint8)).resize((nw, nh), Image.LANCZOS), dtype=np.float32)
    out = np.zeros((28, 28), np.float32)
    total = small.sum() or 1
    cy = (small.sum(1) * np.arange(nh)).sum() / total
    cx = (small.sum(0) * np.arange(nw)).sum() / total
    top = int(np.clip(round(14 - cy), 0, 28 - nh))
    left = int(np.clip(round(14 - cx), 0, 28 - nw))
    out[top: top + nh, left: left + nw] = small
    return out.clip(0, 255).astype(np.uint8)


def predict_images(saved, images, *, top_k=3, batch_size=1024):
    x = torch.from_numpy(np.stack([np.asarray(i, np.float32).reshape(784) / 255 for i in images]))
    probs = saved.model.predict_proba(x).numpy()
    names = saved.class_names
    out = []
    for p in probs:
        order = np.argsort(-p)[:top_k]
        top = [{"class_index": int(i), "class_name": names[i], "probability": float(p[i])} for i in order]
        out.append({**top[0], "top_k": top})
    return out
