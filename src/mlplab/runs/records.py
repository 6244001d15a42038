"""Reading finished runs back: open one, score it on its test set or another dataset's, predict.

Studies (compare, reproduce, search) and users of saved models (predict, serve) go through these,
never through the files directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlplab.data import Dataset
from mlplab.data.preprocess import flatten_scale
from mlplab.errors import ConfigError, ModelFileError
from mlplab.runs.lifecycle import load_run_dataset
from mlplab.runs.model_file import SavedModel, load_model
from mlplab.runs.run_dir import RunDir
from mlplab.safeio import read_json
from mlplab.training import Runtime, evaluate, predict_outputs, resolve_runtime

FINISHED = ("finished", "non_finite")


@dataclass
class RunRecord:
    """A finished run as read from its directory: the model, what it was trained on, its history and metrics.

    Only model.json and model.safetensors are required (a model saved by `save_model` alone
    opens too); what a run directory adds (run.json, history, metrics) is empty when absent.
    """

    saved: SavedModel
    info: dict[str, Any]
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    config_text: str

    @property
    def path(self) -> Path:
        return self.saved.path

    @property
    def name(self) -> str:
        return str(self.saved.description.get("name") or self.info.get("name") or self.path.name)

    @property
    def config(self) -> dict[str, Any]:
        config = self.saved.description.get("config")
        return config if isinstance(config, dict) else {}

    @property
    def seed(self) -> int:
        training = self.config.get("training")
        seed = training.get("seed", 0) if isinstance(training, dict) else 0
        return seed if isinstance(seed, int) and not isinstance(seed, bool) else 0

    @property
    def loss(self) -> str:
        training = self.config.get("training")
        return training.get("loss", "categorical_crossentropy") if isinstance(training, dict) else "categorical_crossentropy"

    @property
    def dataset_name(self) -> str:
        recorded = self.info.get("dataset") or self.saved.description.get("dataset") or {}
        return str(recorded.get("name") or "mnist") if isinstance(recorded, dict) else "mnist"

    @property
    def limit(self) -> int | None:
        recorded = self.info.get("dataset")
        return recorded.get("limit") if isinstance(recorded, dict) else None


def open_run(path: str | Path, *, require_finished: bool = True) -> RunRecord:
    """Open a run directory (or its model.json) whose training ended with a saved model."""
    saved = load_model(path)
    run = RunDir(saved.path)
    info = run.read_info() if run.run_json.is_file() else {}
    if not isinstance(info, dict):
        raise ModelFileError(f"{run.run_json}: not an mlplab run description")
    if require_finished and info and info.get("status") not in FINISHED:
        raise ModelFileError(f"{run.path}: the run has not finished (status {info.get('status')!r})")
    metrics = read_json(run.metrics) if run.metrics.is_file() else dict(saved.metrics)
    history = read_json(run.history_json).get("rows", []) if run.history_json.is_file() else []
    config_text = run.config.read_text(encoding="utf-8", errors="replace") if run.config.is_file() else ""
    return RunRecord(saved, info, metrics if isinstance(metrics, dict) else {}, history, config_text)


def predict_probabilities(model: torch.nn.Module, images: np.ndarray, runtime: Runtime | None = None) -> np.ndarray:
    """Class probabilities (after the output activation) for uint8 images or scaled features."""
    runtime = runtime or resolve_runtime()
    x = flatten_scale(images) if images.dtype == np.uint8 else np.asarray(images, dtype=np.float32).reshape(len(images), -1)
    model = model.to(runtime.device)
    outputs = predict_outputs(model, torch.as_tensor(x, device=runtime.device), runtime)
    return model.output_activation(outputs).cpu().numpy().astype(np.float32)


def run_dataset(record: RunRecord, *, data_dir: str | Path | None = None,
                cache: dict[tuple[str, int | None], Dataset] | None = None) -> Dataset:
    """The dataset (and slice) the run was trained and tested on; `cache` shares loads across runs."""
    key = (record.dataset_name, record.limit)
    if cache is not None and key in cache:
        return cache[key]
    dataset = load_run_dataset(key[0], data_dir=data_dir, limit=key[1])
    if cache is not None:
        cache[key] = dataset
    return dataset


def evaluate_run(
    run_path: str | Path,
    *,
    dataset_name: str | None = None,
    data_dir: str | Path | None = None,
    runtime: Runtime | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Test loss and accuracy (and per class) of a saved run, on its own dataset or another one.

    Another dataset must have the model's classes (same names, same order): scoring digits against
    clothes would report a meaningless accuracy. `force=True` scores it anyway.
    """
    record = open_run(run_path, require_finished=False)
    saved = record.saved
    if dataset_name is None:
        dataset = run_dataset(record, data_dir=data_dir)
        name = record.dataset_name
    else:
        name = dataset_name
        dataset = load_run_dataset(name, data_dir=data_dir, limit=None)
    if dataset.num_features != saved.model.num_features or dataset.num_classes != saved.model.num_classes:
        raise ConfigError(
            f"dataset {name} has {dataset.num_features} features and {dataset.num_classes} classes; the model "
            f"expects {saved.model.num_features} and {saved.model.num_classes}"
        )
    model_classes = [str(c) for c in saved.description.get("class_names", [])]
    if dataset_name is not None and model_classes and model_classes != list(dataset.class_names) and not force:
        raise ConfigError(
            f"dataset {name}'s classes ({_short(dataset.class_names)}) are not the model's ({_short(model_classes)}); "
            "the accuracy would be meaningless. Pass --force to score it anyway"
        )
    x_test, y_test = flatten_scale(dataset.x_test), dataset.y_test.astype(np.int64)
    if runtime is None:  # the precision the run was scored in at training time, so the figures can match
        trained = (record.info.get("runtime") or {}).get("precision")
        runtime = resolve_runtime(precision=trained if trained in ("fp32", "bf16") else "fp32")
    scores = evaluate(saved.model, (x_test, y_test), loss=record.loss, runtime=runtime, per_class=True)
    return {
        "run": str(saved.path),
        "dataset": name,
        "test_samples": len(y_test),
        "test_loss": scores["loss"],
        "test_accuracy": scores["accuracy"],
        "per_class_accuracy": scores["per_class_accuracy"],
        "class_names": list(dataset.class_names),
        "recorded": saved.metrics if dataset_name is None else {},
    }


def _short(names: Any) -> str:
    names = [str(n) for n in names]
    return ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
