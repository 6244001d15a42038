"""A saved model: safetensors weights plus a JSON description that alone rebuilds the model.

Loading never unpickles anything. The tensors' names, shapes and dtypes are checked against the
architecture in the description, and non-finite values are refused, each with a one-line error.
"""

from __future__ import annotations

import datetime as dt
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

import mlplab
from mlplab.config import format_validation_error
from mlplab.errors import ModelFileError
from mlplab.model.build import MLP
from mlplab.model.spec import ModelSpec
from mlplab.safeio import load_tensors, read_json, refuse_pickle, save_tensors, write_json

FORMAT = "mlplab.model/1"
WEIGHTS = "model.safetensors"
DESCRIPTION = "model.json"


def library_versions() -> dict[str, str]:
    return {
        "mlplab": mlplab.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


@dataclass
class SavedModel:
    """A model loaded from disk with its description (architecture, classes, metrics, ...)."""

    model: MLP
    description: dict[str, Any]
    path: Path

    @property
    def class_names(self) -> list[str]:
        return list(self.description["class_names"])

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.description.get("metrics", {}))

    @property
    def input_style(self) -> str:
        """How images are prepared for this model ("digit", "object" or "none"; see mlplab.use.preprocess)."""
        from mlplab.use.predict import model_input_style

        return model_input_style(self)

    def predict_proba(self, images: Any, *, preprocess: bool = True, batch_size: int = 1024) -> np.ndarray:
        """Class probabilities (N, C) of images: arrays (N×28×28 uint8, N×784 float), PIL images or paths."""
        from mlplab.use.predict import predict_proba

        return predict_proba(self, images, preprocess=preprocess, batch_size=batch_size)

    def predict(self, images: Any, *, preprocess: bool = True, batch_size: int = 1024) -> np.ndarray:
        """The most probable class index (N,) of each image; see `predict_proba` for what images may be."""
        return np.argmax(self.predict_proba(images, preprocess=preprocess, batch_size=batch_size), axis=1)


def save_model(directory: Path, model: MLP, *, name: str, class_names: list[str], image_shape: tuple[int, ...],
               input_style: str | None = None, extra: dict[str, Any] | None = None) -> Path:
    """Write `model.safetensors` and `model.json` into `directory`; returns the description's path.

    `input_style` says how images must be prepared for the model (one of
    mlplab.use.preprocess.INPUT_STYLES); by default it follows the dataset named in
    ``extra["dataset"]["name"]`` ("object" for Fashion-MNIST, else "digit").
    """
    from mlplab.use.preprocess import INPUT_STYLES, input_style_for

    if input_style is None:
        dataset = (extra or {}).get("dataset")
        input_style = input_style_for(dataset.get("name") if isinstance(dataset, dict) else None)
    if input_style not in INPUT_STYLES:
        raise ValueError(f"input_style must be one of {', '.join(INPUT_STYLES)}, got {input_style!r}")
    directory = Path(directory)
    tensors = {k: v for k, v in model.state_dict().items()}
    description = {
        "format": FORMAT,
        "name": name,
        "architecture": model.spec.model_dump(mode="json"),
        "num_features": model.num_features,
        "num_classes": model.num_classes,
        "image_shape": list(image_shape),
        "preprocessing": {"flatten": True, "dtype": "float32", "scale": 1 / 255, "input": "uint8 pixels 0-255"},
        "input_style": input_style,
        "class_names": list(class_names),
        "tensors": {k: {"shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")} for k, v in tensors.items()},
        "versions": library_versions(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    save_tensors(directory / WEIGHTS, tensors, metadata={"format": FORMAT})
    write_json(directory / DESCRIPTION, description)
    return directory / DESCRIPTION


def resolve_model_path(path: str | Path) -> Path:
    """A run directory, its model.json or its model.safetensors → the directory holding both."""
    path = Path(path)
    refuse_pickle(path)
    if path.is_dir():
        if not (path / DESCRIPTION).is_file():
            raise ModelFileError(f"{path}: no {DESCRIPTION} here (not an mlplab run directory, or training did not finish)")
        return path
    if path.name in (WEIGHTS, DESCRIPTION):
        return path.parent
    if not path.exists():
        raise ModelFileError(f"{path}: no such file or directory")
    raise ModelFileError(f"{path}: not an mlplab model (expected a run directory, {DESCRIPTION} or {WEIGHTS})")


def load_model(path: str | Path, *, device: str | torch.device = "cpu") -> SavedModel:
    """Rebuild a model from its description and load its checked weights."""
    directory = resolve_model_path(path)
    description = read_json(directory / DESCRIPTION)
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        raise ModelFileError(f"{directory / DESCRIPTION}: not an mlplab model description (format {FORMAT} expected)")
    model = build_from_description(directory / DESCRIPTION, description)
    tensors, _ = load_tensors(directory / WEIGHTS)
    check_tensors(directory / WEIGHTS, tensors, model.state_dict())
    model.load_state_dict(tensors)
    model.eval()
    return SavedModel(model.to(device), description, directory)


def build_from_description(path: Path, description: dict[str, Any]) -> MLP:
    """The (uninitialised) model a description declares, checked before anything is allocated.

    Types are strict and sizes within `mlplab.model.layers`' limits; every problem is one line.
    """
    missing = [key for key in ("architecture", "num_features", "num_classes") if key not in description]
    if missing:
        raise ModelFileError(f"{path}: invalid architecture (missing {', '.join(missing)})")
    try:
        spec = ModelSpec.model_validate(description["architecture"])
    except ValidationError as exc:
        raise ModelFileError(f"{path}: invalid architecture: {format_validation_error(exc)}") from None
    try:
        return MLP(spec, description["num_features"], description["num_classes"])
    except ValueError as exc:
        raise ModelFileError(f"{path}: invalid architecture: {exc}") from None


def check_tensors(path: Path, tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ModelFileError(f"{path}: tensors do not match the architecture (missing {missing}, unexpected {unexpected})")
    for name, want in expected.items():
        got = tensors[name]
        if got.shape != want.shape or got.dtype != want.dtype:
            raise ModelFileError(
                f"{path}: tensor {name} is {got.dtype} {tuple(got.shape)}, the architecture needs {want.dtype} {tuple(want.shape)}"
            )
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise ModelFileError(f"{path}: tensor {name} holds non-finite values (NaN or infinity)")
