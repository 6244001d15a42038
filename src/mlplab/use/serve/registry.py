"""The models a service serves: loaded once, named for URLs, warmed up before the service is ready."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from mlplab.runs import SavedModel, load_model
from mlplab.runs.model_file import resolve_model_path
from mlplab.use.serve import engine

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class ServedModel:
    """One saved model under the name used in `/v1/models/{name}/predict`."""

    name: str
    saved: SavedModel
    input_style: str
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_saved(cls, name: str, saved: SavedModel) -> ServedModel:
        description = saved.description
        metrics = saved.metrics
        accuracy = metrics.get("test_accuracy")
        style = engine.input_style(saved)
        info = {
            "name": name,
            "dataset": str(description.get("dataset", {}).get("name", "unknown")),
            "class_names": saved.class_names,
            "parameters": int(sum(p.numel() for p in saved.model.parameters())),
            "test_accuracy": float(accuracy) if isinstance(accuracy, (int, float)) else None,
            "input_style": style,
        }
        return cls(name=name, saved=saved, input_style=style, info=info)


def url_name(text: str) -> str:
    """A name that is safe in a URL path segment: letters, digits, '.', '_', '-'."""
    name = _UNSAFE.sub("-", text).strip("-.") or "model"
    return name[:80]


def unique_names(candidates: list[str]) -> list[str]:
    """The same names, with -2, -3, ... appended where one repeats."""
    seen: set[str] = set()
    names = []
    for candidate in candidates:
        name, n = candidate, 1
        while name in seen:
            n += 1
            name = f"{candidate}-{n}"
        seen.add(name)
        names.append(name)
    return names


def load_served_models(sources: list[str | Path]) -> list[ServedModel]:
    """Load every run directory or model file (one-line ModelFileError when one is unusable).

    Each is named after its run directory (`runs/wide` → `wide`); repeats get -2, -3.
    """
    if not sources:
        raise ValueError("give at least one run directory or model file to serve")
    directories = [resolve_model_path(source) for source in sources]
    names = unique_names([url_name(directory.resolve().name) for directory in directories])
    return [ServedModel.from_saved(name, load_model(directory)) for name, directory in zip(names, directories)]


def warm_up_image(style: str) -> bytes:
    """A PNG of a drawn stroke: one request's worth of decode, preprocess and predict."""
    image = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    if style == "digit":
        draw.line([(140, 40), (140, 240)], fill=(255, 255, 255, 255), width=20)
    else:
        draw.rectangle([(60, 60), (220, 220)], fill=(255, 255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def warm_up(model: ServedModel, max_pixels: int) -> None:
    """Run the whole path once (first calls pay for lazy initialisation in Pillow and torch)."""
    image = engine.decode(warm_up_image(model.input_style), max_pixels=max_pixels)
    pixels = engine.model_input(image, model.input_style)
    results = engine.predict(model.saved, [pixels], top_k=1)
    engine.png_base64(pixels)
    if len(results) != 1 or not np.isfinite(results[0]["probability"]):
        raise RuntimeError(f"warm-up prediction of model {model.name} failed: {results!r}")
