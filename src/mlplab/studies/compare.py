"""`compare`: the comparison report of finished runs, whatever trained them.

Runs are read and scored through the run layer (`mlplab.runs.open_run`, `predict_probabilities`);
this module only gathers what the report needs and writes it.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlplab.data import Dataset
from mlplab.errors import ConfigError
from mlplab.model.summary import summarize
from mlplab.report import DataFacts
from mlplab.report import RunResult as ReportEntry
from mlplab.report import write_report
from mlplab.runs import RunRecord, open_run, predict_probabilities, run_dataset
from mlplab.runs.model_file import library_versions
from mlplab.training import Runtime, resolve_runtime

Printer = Callable[[str], object]
DatasetCache = dict[tuple[str, int | None], Dataset]

# The tutorial's published test accuracies, on MNIST (its third model's figure is really the second model's).
PUBLISHED = {"mnist": {"tutorial-50-25": 0.9655, "tutorial-512-512": 0.9805}}
PUBLISHED_SOURCE = "the Keras tutorial 'MLP Deep Learning on the MNIST Dataset'"


def compare_runs(
    run_dirs: list[Path],
    out: Path,
    *,
    runtime: Runtime | None = None,
    data_dir: str | Path | None = None,
    print_fn: Printer = print,
    title: str = "Comparison of runs",
    commands: list[str] | None = None,
    notes: list[str] | None = None,
    datasets: DatasetCache | None = None,
    allow_mixed_datasets: bool = False,
) -> dict[str, Path]:
    """Write the comparison report of finished runs (from `train`, `reproduce` or elsewhere) into `out`.

    Runs on different datasets are refused unless `allow_mixed_datasets`."""
    if not run_dirs:
        raise ConfigError("give at least one run directory to compare")
    runtime = runtime or resolve_runtime()
    cache: DatasetCache = dict(datasets or {})
    entries = [report_entry(open_run(Path(d)), runtime, data_dir, cache) for d in run_dirs]
    artefacts = write_report(
        entries, Path(out), title=title, commands=commands or [], notes=list(notes or []),
        environment=environment(runtime), published=PUBLISHED, published_source=PUBLISHED_SOURCE,
        allow_mixed_datasets=allow_mixed_datasets, print_fn=print_fn,
    )
    print_fn(f"\nReport: {artefacts['report_html']}")
    return artefacts


def report_entry(record: RunRecord, runtime: Runtime, data_dir: str | Path | None, cache: DatasetCache) -> ReportEntry:
    """What the report needs from one finished run (its test set scored again by the run layer)."""
    dataset = run_dataset(record, data_dir=data_dir, cache=cache)
    model = record.saved.model
    probs = predict_probabilities(model, dataset.x_test, runtime)
    first = next(m for m in model.layers if isinstance(m, torch.nn.Linear))
    metrics = record.metrics
    kept = metrics.get("kept_epoch", metrics.get("best_epoch"))
    return ReportEntry(
        name=record.name,
        seed=record.seed,
        history=record.history,
        params=summarize(model.spec, model.num_features, model.num_classes).total_params,
        train_flops=int(metrics.get("train_flops", 0)),
        epochs_run=int(metrics.get("epochs_run", len(record.history))),
        best_epoch=int(kept) if kept is not None else None,
        wall_seconds=float(metrics.get("train_seconds", 0.0)),
        test_loss=float(metrics.get("test_loss", float("nan"))),
        test_accuracy=float(metrics.get("test_accuracy", float("nan"))),
        y_true=dataset.y_test.astype(np.int64),
        probs=probs,
        test_images=dataset.x_test,
        class_names=tuple(dataset.class_names),
        first_layer_weights=first.weight.detach().cpu().numpy(),
        run_dir=str(record.path),
        config_text=record.config_text,
        validated_on="test" if metrics.get("validate_on") == "test" else "val",
        dataset=DataFacts.from_dataset(dataset, limit=record.limit, fit_images=metrics.get("train_samples"),
                                       validation_images=metrics.get("validation_samples")),
    )


def environment(runtime: Runtime) -> dict[str, Any]:
    return {
        "versions": library_versions(),
        "machine": {
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "device": runtime.device.type,
            "precision": runtime.precision,
            "platform": platform.platform(),
        },
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
