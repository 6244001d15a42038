"""Tracking a run (or a study of runs) to TensorBoard and MLflow, as training callbacks.

    tracking = Tracking.from_specs(["tensorboard", "mlflow"])      # checked: specs, packages
    with tracking.run(plan.out) as tracked:
        result = start_run(plan, callbacks=tracked.callbacks)
        tracked.finish(result)                                     # test metrics, artifacts, status

A study opens a parent MLflow run and tracks each of its runs as a nested run:

    with tracking.study(out, name="reproduce") as study:
        with study.run(plan.out) as tracked: ...

Nothing is created before training begins (the run directory must be new or empty when
`start_run` makes it); the MLflow store is opened, and so checked, when the run or study opens.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlplab.tracking import mlflow as mlflow_log
from mlplab.tracking import tensorboard as tb_log
from mlplab.tracking.spec import LogTarget, parse_log_to_all
from mlplab.training.callbacks import Callback

if TYPE_CHECKING:
    from mlplab.runs import RunResult
    from mlplab.training.state import TrainingState

TB_FOLDER = "tensorboard"


class Tracking:
    """The `--log-to` targets of one command. Default places are relative to `out` (the run or study)."""

    def __init__(self, targets: tuple[LogTarget, ...]) -> None:
        self.targets = targets
        for target in targets:  # fail before training when the extra is missing
            (tb_log if target.kind == "tensorboard" else mlflow_log).check_available()

    @classmethod
    def from_specs(cls, specs: list[str] | tuple[str, ...] | None) -> "Tracking":
        return cls(parse_log_to_all(specs))

    def __bool__(self) -> bool:
        return bool(self.targets)

    def target(self, kind: str) -> LogTarget | None:
        return next((t for t in self.targets if t.kind == kind), None)

    def mlflow_uri(self, out: Path) -> str | None:
        target = self.target("mlflow")
        return None if target is None else target.location or mlflow_log.default_uri(out)

    def prepare(self, out: Path) -> None:
        """Open the MLflow store once, creating its database and experiment, before several processes
        share it: two workers creating a fresh sqlite store at the same moment can read each other's
        half-made schema ("out-of-date database schema") or both create the experiment."""
        uri = self.mlflow_uri(Path(out))
        if uri:
            mlflow_log.MlflowStore(uri)

    def tensorboard_dir(self, out: Path, run_name: str | None) -> Path | None:
        """`<out>/tensorboard` for a lone run; DIR/<run name> for a given DIR or a study's runs."""
        target = self.target("tensorboard")
        if target is None:
            return None
        root = Path(target.location) if target.location else Path(out) / TB_FOLDER
        return root / run_name if run_name else root

    @classmethod
    def recorded(cls, run_dir: str | Path) -> "Tracking":
        """The targets a run logged to (its run.json): `train --resume` goes on logging there."""
        recorded = _recorded(Path(run_dir))
        return cls(tuple(LogTarget(kind) for kind in ("tensorboard", "mlflow") if kind in recorded))  # type: ignore[arg-type]

    @contextlib.contextmanager
    def run(self, run_dir: str | Path, *, name: str | None = None) -> Iterator["RunTracking"]:
        """Track the run trained into `run_dir` (see the module's example).

        A run that logged before (resumed) keeps its places unless the spec names new ones.
        """
        run_dir = Path(run_dir)
        recorded = _recorded(run_dir)
        tb_target, ml_target = self.target("tensorboard"), self.target("mlflow")
        uri = None
        if ml_target is not None:
            uri = ml_target.location or recorded.get("mlflow", {}).get("uri") or mlflow_log.default_uri(run_dir)
        tb_dir = None
        if tb_target is not None:
            # A folder of its own (`<run>/tensorboard`), or one sub-folder per run in a given DIR.
            before = recorded.get("tensorboard", {}).get("dir")
            tb_dir = (Path(tb_target.location) / run_dir.name if tb_target.location
                      else Path(before) if before else run_dir / TB_FOLDER)
        store = mlflow_log.MlflowStore(uri) if uri else None
        tracked = RunTracking(run_dir, name=name or run_dir.name, store=store, tb_dir=tb_dir)
        with tracked.closing():
            yield tracked

    @contextlib.contextmanager
    def study(self, out: str | Path, *, name: str, tags: dict[str, str] | None = None, key: str | None = None,
              owner: bool = True) -> Iterator["StudyTracking"]:
        """A parent MLflow run for a study in `out` (the same one when the study continues).

        The parent is found again by its `mlplab.study_dir` tag: `key`, else `out`'s absolute path
        (a search whose workers run on several machines passes its storage URL + study name). Only
        an `owner` ends the parent run; workers joining someone else's study leave it running.
        """
        out = Path(out)
        uri = self.mlflow_uri(out)
        store = mlflow_log.MlflowStore(uri) if uri else None
        study = StudyTracking(self, out, name, store, tags or {}, key=key)
        try:
            yield study
        except BaseException as exc:
            if owner:
                study.end("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            raise
        if owner:
            study.end("FINISHED")


class StudyTracking:
    """A study's parent run; `run()` tracks one of its runs nested under it."""

    def __init__(self, tracking: Tracking, out: Path, name: str, store: mlflow_log.MlflowStore | None,
                 tags: dict[str, str], key: str | None = None) -> None:
        self.tracking, self.out, self.store = tracking, out, store
        self.parent_id: str | None = None
        if store is not None:
            study_tags = {"mlplab.study_dir": key or str(out.resolve()), "mlplab.study": name, "mlplab.version": _version(), **tags}
            self.parent_id = store.search_tag("mlplab.study_dir", study_tags["mlplab.study_dir"])
            if self.parent_id is None:
                self.parent_id = store.create_run(name, study_tags)
            else:
                store.client.update_run(self.parent_id, status="RUNNING")

    @contextlib.contextmanager
    def run(self, run_dir: str | Path, *, name: str | None = None) -> Iterator["RunTracking"]:
        run_dir = Path(run_dir)
        tracked = RunTracking(run_dir, name=name or run_dir.name, store=self.store, parent_id=self.parent_id,
                              tb_dir=self.tracking.tensorboard_dir(self.out, run_dir.name))
        with tracked.closing():
            yield tracked

    def holds(self, run_dir: str | Path) -> bool:
        """Whether a run (one the study reuses) was already logged where this study logs."""
        recorded = _recorded(Path(run_dir))
        mlflow_done = self.store is None or recorded.get("mlflow", {}).get("uri") == self.store.uri
        tb_done = self.tracking.target("tensorboard") is None or "tensorboard" in recorded
        return mlflow_done and tb_done

    def log_artifacts(self, paths: list[Path]) -> None:
        """Files of the whole study (its report) on the parent run."""
        if self.store is not None and self.parent_id is not None:
            for path in paths:
                if Path(path).is_file():
                    self.store.client.log_artifact(self.parent_id, str(path))

    def end(self, status: str) -> None:
        if self.store is not None and self.parent_id is not None:
            self.store.client.set_terminated(self.parent_id, status=status)


class RunTracking:
    """One run's loggers. `callbacks` go to `start_run`/`resume_run`; `finish` takes their result."""

    def __init__(self, run_dir: Path, *, name: str, store: mlflow_log.MlflowStore | None,
                 tb_dir: Path | None, parent_id: str | None = None) -> None:
        self.run_dir, self.name, self.store, self.tb_dir, self.parent_id = run_dir, name, store, tb_dir, parent_id
        self.mlflow: mlflow_log.MlflowRunLog | None = None
        self.tensorboard: tb_log.TensorBoardLog | None = None
        self.callbacks: tuple[Callback, ...] = (_TrackingCallback(self),)
        self._done = False

    # -- opened when training begins: the run directory and its run.json exist then ------------
    def begin(self, restored_rows: list[dict[str, Any]]) -> None:
        from mlplab.runs import RunDir

        run = RunDir(self.run_dir)
        info = run.read_info()
        recorded = info.get("tracking") if isinstance(info.get("tracking"), dict) else {}
        resumed = bool(restored_rows)
        if self.tb_dir is not None and self.tensorboard is None:
            config_text = None if resumed else (run.config.read_text(encoding="utf-8") if run.config.is_file() else "")
            # A resumed run logs again from the last epoch its checkpoint holds: a process killed
            # between saving that checkpoint and logging the epoch left it out; the purge step hides
            # the copy an earlier process did log, so each epoch shows once.
            self.tensorboard = tb_log.TensorBoardLog(self.tb_dir, first_epoch=max(len(restored_rows), 1),
                                                     config_text=config_text)
            if restored_rows:
                self.tensorboard.log_epoch(restored_rows[-1])
        if self.store is not None and self.mlflow is None:
            previous = recorded.get("mlflow") if isinstance(recorded.get("mlflow"), dict) else {}
            run_id = previous.get("run_id") if previous.get("uri") == self.store.uri else None
            self.mlflow = mlflow_log.MlflowRunLog.open(
                self.store, run_id=run_id, name=self.name, parent_id=self.parent_id,
                tags=_tags(info, self.run_dir), params=mlflow_log.flatten(info.get("config") or {}),
            )
            # Epochs the checkpoint holds that an interrupted process did not log (it died between
            # saving the checkpoint and logging): logged now, each once.
            self.mlflow.log_rows(restored_rows)
        entry: dict[str, Any] = {}
        if self.tb_dir is not None:
            entry["tensorboard"] = {"dir": str(self.tb_dir.resolve())}
        if self.mlflow is not None:
            entry["mlflow"] = {"uri": self.store.uri, "run_id": self.mlflow.run_id,  # type: ignore[union-attr]
                               "experiment": self.store.experiment_name}  # type: ignore[union-attr]
        run.update_info(tracking={**recorded, **entry})

    def log_epoch(self, row: dict[str, Any]) -> None:
        if self.tensorboard is not None:
            self.tensorboard.log_epoch(row)
        if self.mlflow is not None:
            self.mlflow.log_rows([row])

    # -- after start_run / resume_run returned --------------------------------------------------
    def finish(self, result: "RunResult") -> None:
        """Final test metrics and the model files (when a model was saved), then the run's status."""
        self._complete(result.metrics if result.cause.saved_model else {}, mlflow_log.STATUS[result.cause.value])

    def log_finished(self) -> None:
        """Log a run that finished earlier without tracking (a study reusing it): all of it, once."""
        from mlplab.runs import open_run

        record = open_run(self.run_dir)
        self.begin([])
        for row in record.history:
            self.log_epoch({k: (float(v) if v in ("nan", "inf", "-inf") else v) for k, v in row.items()})
        cause = record.metrics.get("stop_cause", "completed")
        self._complete(record.metrics, mlflow_log.STATUS.get(cause, "FINISHED"))

    def _complete(self, metrics: dict[str, Any], status: str) -> None:
        if self.tensorboard is not None:
            if metrics:
                self.tensorboard.log_test(metrics, int(metrics.get("epochs_run") or 0))
        if self.mlflow is not None:
            if metrics:
                self.mlflow.log_final(metrics, _class_names(self.run_dir))
                self.mlflow.log_artifacts(self.run_dir)
            self.mlflow.end(status)
        self._done = True
        self.close()

    def close(self, status: str = "FAILED") -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
            self.tensorboard = None
        if self.mlflow is not None and not self._done:
            self.mlflow.end(status)
        self.mlflow = None

    @contextlib.contextmanager
    def closing(self) -> Iterator[None]:
        try:
            yield
        except BaseException as exc:
            self.close("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            raise
        self.close("FAILED")  # finish() was not called: the run's end is unknown to the tracker


class _TrackingCallback(Callback):
    """Logs each epoch as it ends; opens the loggers when training begins (the run dir exists then)."""

    def __init__(self, tracked: RunTracking) -> None:
        self.tracked = tracked

    def on_train_begin(self, state: "TrainingState") -> None:
        self.tracked.begin(list(state.history.rows))

    def on_epoch_end(self, state: "TrainingState", row: dict[str, Any]) -> None:
        self.tracked.log_epoch(row)


def _recorded(run_dir: Path) -> dict[str, dict[str, Any]]:
    from mlplab.safeio import read_json

    path = run_dir / "run.json"
    try:
        tracking = read_json(path).get("tracking") if path.is_file() else None
    except Exception:  # noqa: BLE001 - resume_run itself reports a broken run.json
        return {}
    return {k: v for k, v in tracking.items() if isinstance(v, dict)} if isinstance(tracking, dict) else {}


def track(tracking: "Tracking | None", run_dir: Path, train: "Callable[[tuple[Callback, ...]], RunResult]") -> "RunResult":
    """`train(callbacks)` (a start_run or resume_run call), tracked when `tracking` has targets."""
    if not tracking:
        return train(())
    with tracking.run(run_dir) as tracked:
        result = train(tracked.callbacks)
        tracked.finish(result)
    return result


def _tags(info: dict[str, Any], run_dir: Path) -> dict[str, str]:
    config = info.get("config") or {}
    dataset = info.get("dataset") or {}
    tags = {
        "mlplab.version": _version(),
        "mlplab.dataset": str(dataset.get("name") or config.get("dataset", "")),
        "mlplab.seed": str((config.get("training") or {}).get("seed", "")),
        "mlplab.config": str(info.get("name") or config.get("name", "")),
        "mlplab.run_dir": str(run_dir.resolve()),
        "mlplab.validate_on": str(info.get("validate_on", "")),
    }
    if dataset.get("limit"):
        tags["mlplab.limit"] = str(dataset["limit"])
    return tags


def _class_names(run_dir: Path) -> list[str] | None:
    from mlplab.safeio import read_json

    path = run_dir / "model.json"
    try:
        names = read_json(path).get("class_names") if path.is_file() else None
    except Exception:  # noqa: BLE001 - names are a nicety for metric keys
        return None
    return [str(n) for n in names] if isinstance(names, list) else None


def _version() -> str:
    from mlplab import __version__

    return __version__
