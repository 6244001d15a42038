"""A saved model's predictions on images: probabilities, the top classes, and the inputs' preprocessing.

`predict_images` takes images that are ready (28×28 uint8 as the model saw them, or N×784 floats
in [0, 1]) and gives one dict per image, the same objects `mlplab predict --json` prints and the
HTTP service returns. `predict_proba` also accepts PIL images and paths, and applies the model's
input style first (see `use.preprocess`).

"Probability" is the model's output activation: softmax for every shipped config. A model whose
output is linear gets a softmax over its outputs, so that its scores still read as probabilities;
a sigmoid output gives its per-class sigmoids, as the model was trained to produce them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from mlplab.errors import InputError
from mlplab.use.preprocess import INPUT_STYLES, SIZE, input_style_for, preprocess_image, to_grey

if TYPE_CHECKING:
    from mlplab.runs.model_file import SavedModel

ImageLike = Image.Image | np.ndarray | str | Path


def model_input_style(saved: SavedModel) -> str:
    """The input style recorded in model.json; older files: derived from the dataset's name."""
    style = saved.description.get("input_style")
    if isinstance(style, str) and style in INPUT_STYLES:
        return style
    dataset = saved.description.get("dataset") or {}
    return input_style_for(dataset.get("name") if isinstance(dataset, dict) else None)


def as_model_input(images: np.ndarray, num_features: int) -> np.ndarray:
    """N×28×28 uint8 (pixels 0-255) or N×F floats in [0, 1] → float32 N×F, checked."""
    array = np.asarray(images)
    if array.ndim >= 2 and array.shape[0] > 0:
        flat = array.reshape(len(array), -1)
    else:
        raise InputError(f"images must be an array of shape (N, 28, 28) or (N, {num_features}), got {array.shape}")
    if flat.shape[1] != num_features:
        raise InputError(f"each image must have {num_features} pixels for this model, got shape {array.shape}")
    if array.dtype == np.uint8:
        return np.divide(flat, np.float32(255.0), dtype=np.float32)
    if array.dtype.kind == "f":
        if not np.isfinite(flat).all():
            raise InputError("images hold NaN or infinite values")
        low, high = float(flat.min()), float(flat.max())
        if low < 0.0 or high > 1.0:
            raise InputError(f"float images must hold values in [0, 1] (pixel / 255), found {low:g} to {high:g}")
        return np.ascontiguousarray(flat, dtype=np.float32)
    raise InputError(f"images must be uint8 pixels or floats in [0, 1], got dtype {array.dtype}")


def probabilities(saved: SavedModel, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Class probabilities (N, C) float32 of ready model input x (float32 N×F in [0, 1])."""
    import torch

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    model = saved.model
    device = next(model.parameters()).device
    with torch.inference_mode():
        logits = model.predict_logits(torch.from_numpy(np.ascontiguousarray(x)).to(device), batch_size)
        if model.spec.output.activation == "linear":
            out = torch.softmax(logits, dim=1)
        else:
            out = model.output_activation(logits)
    return out.float().cpu().numpy()


def top_classes(probs: np.ndarray, class_names: Sequence[str], top_k: int) -> list[dict[str, Any]]:
    """One dict per row: the most probable class and the `top_k` best, most probable first."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    k = min(top_k, probs.shape[1])
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    results = []
    for row, best in zip(probs, order):
        ranked = [
            {"class_index": int(i), "class_name": str(class_names[i]), "probability": float(row[i])} for i in best
        ]
        results.append({**ranked[0], "top_k": ranked})
    return results


def predict_images(
    saved_model: SavedModel, images: np.ndarray, *, top_k: int = 3, batch_size: int = 1024
) -> list[dict[str, Any]]:
    """Predictions for ready images (N×28×28 uint8 or N×784 float in [0, 1]); no preprocessing here.

    Each result: ``{"class_index", "class_name", "probability", "top_k": [{...}, ...]}``.
    """
    x = as_model_input(images, saved_model.model.num_features)
    probs = probabilities(saved_model, x, batch_size)
    return top_classes(probs, saved_model.class_names, top_k)


def prepare_images(images: Any, style: str, *, preprocess: bool = True) -> np.ndarray:
    """Whatever a user hands `SavedModel.predict` → the 28×28 uint8 images (N, 28, 28) the model sees.

    Accepted: one PIL image or path, a 2-D array (one image), an N×H×W array, or a list of those.
    With ``preprocess=False`` images are only made grey (and resized to 28×28 if they are not).
    """
    if isinstance(images, (Image.Image, str, Path)):
        images = [images]
    elif isinstance(images, np.ndarray):
        if images.ndim == 2 or (images.ndim == 3 and images.shape[-1] in (3, 4)):  # one grey or colour image
            images = [images]
        elif images.ndim == 3 and not preprocess and images.dtype == np.uint8 and images.shape[1:] == (SIZE, SIZE):
            return images
    if not isinstance(images, Iterable):
        raise TypeError(f"images are PIL images, paths or numpy arrays, got {type(images).__name__}")
    prepared = [preprocess_image(one, style) if preprocess else raw_image(one) for one in images]
    if not prepared:
        raise InputError("no images given")
    return np.stack(prepared)


def raw_image(image: ImageLike) -> np.ndarray:
    """No preprocessing: grey levels, resized to 28×28 only when the image has another size."""
    return preprocess_image(image, "none") if not _is_ready(image) else np.asarray(image, dtype=np.uint8)


def _is_ready(image: Any) -> bool:
    return isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.shape == (SIZE, SIZE)


def predict_proba(
    saved: SavedModel, images: Any, *, preprocess: bool = True, batch_size: int = 1024
) -> np.ndarray:
    """Class probabilities (N, C) for images in any accepted form (see `prepare_images`).

    A float array of shape (N, F) matching the model's input is taken as ready model input.
    """
    num_features = saved.model.num_features
    if isinstance(images, np.ndarray) and images.ndim == 2 and images.shape[1] == num_features != SIZE:
        x = as_model_input(images, num_features)
    else:
        x = as_model_input(prepare_images(images, model_input_style(saved), preprocess=preprocess), num_features)
    return probabilities(saved, x, batch_size)


__all__ = [
    "as_model_input", "model_input_style", "predict_images", "predict_proba", "prepare_images", "probabilities",
    "raw_image", "to_grey", "top_classes",
]
