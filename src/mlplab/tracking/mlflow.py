"""MLflow: params (the flattened config), per-epoch metrics, test metrics, tags and the model files.

Everything goes through an explicit `MlflowClient` for one tracking URI (no `mlflow.set_tracking_uri`,
no active-run stack), so several stores, studies and notebooks never see each other's state. Nested
runs are MLflow's own: a child run carries the `mlflow.parentRunId` tag.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlplab.errors import ConfigError
from mlplab.tracking._optional import require

DEFAULT_EXPERIMENT = "mlplab"
# The run directory's files a user wants next to the metrics: enough to rebuild and rerun the model.
ARTIFACTS = ("model.safetensors", "model.json", "config.toml", "history.csv")
# MLflow's run status for each way a run ends (mlplab's StopCause values).
STATUS = {"completed": "FINISHED", "early_stopped": "FINISHED", "interrupted": "KILLED",
          "non_finite": "FAILED", "failed": "FAILED"}


def check_available() -> None:
    require("mlflow", "mlflow")


def default_uri(folder: Path) -> str:
    return f"sqlite:///{Path(folder).resolve() / 'mlflow.db'}"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """MLflow and alembic announce every table they create on first use of a SQLite store at INFO."""
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


class MlflowStore:
    """One tracking URI and the experiment mlplab logs into (`$MLFLOW_EXPERIMENT_NAME`, else "mlplab")."""

    def __init__(self, uri: str, experiment: str | None = None) -> None:
        require("mlflow", "mlflow")
        from mlflow.tracking import MlflowClient

        self.uri = uri
        self.experiment_name = experiment or _env_experiment() or DEFAULT_EXPERIMENT
        try:
            with _quiet():
                self.client = MlflowClient(tracking_uri=uri)
                found = self.client.get_experiment_by_name(self.experiment_name)
                self.experiment_id = found.experiment_id if found is not None else self.client.create_experiment(
                    self.experiment_name, artifact_location=_artifact_root(uri))
        except Exception as exc:  # noqa: BLE001 - any store error (bad URI, server down) becomes one line
            raise ConfigError(f"--log-to mlflow:{uri}: cannot open the tracking store ({_first_line(exc)})") from None

    def find_run(self, run_id: str) -> bool:
        try:
            run = self.client.get_run(run_id)
        except Exception:  # noqa: BLE001 - a run deleted from the store (or another store): start a new one
            return False
        return run.info.lifecycle_stage == "active"

    def search_tag(self, key: str, value: str) -> str | None:
        """The id of the newest active run with tag `key` = `value` (a study's parent run)."""
        quoted = value.replace("'", "\\'")
        runs = self.client.search_runs([self.experiment_id], filter_string=f"tags.`{key}` = '{quoted}'",
                                       order_by=["attributes.start_time DESC"], max_results=1)
        return runs[0].info.run_id if runs else None

    def create_run(self, name: str, tags: dict[str, str], parent_id: str | None = None) -> str:
        if parent_id is not None:
            tags = {**tags, "mlflow.parentRunId": parent_id}
        return self.client.create_run(self.experiment_id, tags=tags, run_name=name).info.run_id


class MlflowRunLog:
    """One MLflow run: created, or reopened when a resumed mlplab run recorded its id."""

    def __init__(self, store: MlflowStore, run_id: str) -> None:
        self.store, self.client, self.run_id = store, store.client, run_id
        # Epochs already logged (a resumed run reopened): never log a step twice.
        self.logged_epochs = {m.step for m in self.client.get_metric_history(run_id, "loss")}

    @classmethod
    def open(cls, store: MlflowStore, *, run_id: str | None, name: str, tags: dict[str, str],
             params: dict[str, Any], parent_id: str | None = None) -> "MlflowRunLog":
        if run_id is not None and store.find_run(run_id):
            store.client.update_run(run_id, status="RUNNING")
            return cls(store, run_id)
        log = cls(store, store.create_run(name, tags, parent_id))
        log.log_params(params)
        return log

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, _param_value(v)) for k, v in params.items()]
        for start in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=items[start:start + 100])

    def log_rows(self, rows: list[dict[str, Any]]) -> None:
        """Per-epoch metrics, step = epoch; epochs this run already holds are skipped."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = []
        for row in rows:
            epoch = int(row["epoch"])
            if epoch in self.logged_epochs:
                continue
            metrics += [Metric(key, float(value), now, epoch) for key, value in row.items()
                        if key != "epoch" and _number(value)]
            self.logged_epochs.add(epoch)
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[start:start + 1000])

    def log_final(self, metrics: dict[str, Any], class_names: list[str] | None = None) -> None:
        from mlflow.entities import Metric

        now, step = int(time.time() * 1000), int(metrics.get("epochs_run") or 0)
        values = {k: metrics.get(k) for k in ("test_loss", "test_accuracy", "train_seconds", "train_flops",
                                              "epochs_run", "kept_epoch", "test_samples")}
        per_class = metrics.get("per_class_accuracy") or []
        names = class_names if class_names and len(class_names) == len(per_class) else [str(i) for i in range(len(per_class))]
        values.update({f"test_accuracy_{_key(n)}": a for n, a in zip(names, per_class)})
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in values.items() if _number(v)])

    def log_artifacts(self, run_dir: Path) -> None:
        for name in ARTIFACTS:
            path = Path(run_dir) / name
            if path.is_file():
                self.client.log_artifact(self.run_id, str(path))

    def set_tags(self, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, value)

    def end(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status=status)


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """`training.optimizer.learning_rate`, `model.layers.0.units`: MLflow keys allow no brackets."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(node, list) and node and all(isinstance(v, (dict, list)) for v in node):
        out = {}
        for index, value in enumerate(node):
            out.update(flatten(value, f"{prefix}.{index}"))
        return out
    return {prefix: node}


def _artifact_root(uri: str) -> str | None:
    """Artifacts of a SQLite store go next to the database (MLflow's default is ./mlruns of the cwd)."""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()
    return None  # a tracking server decides where its artifacts live


def _env_experiment() -> str | None:
    import os

    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or None


def _param_value(value: Any) -> str:
    text = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return text[:6000]  # MLflow's limit on a param's value


def _key(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in str(name))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
