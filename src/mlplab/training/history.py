"""One history object: a row per epoch, `val_` prefix for validation metrics (as Keras and skorch)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from typing import Any

COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds", "samples_per_s")


class History:
    """Rows of per-epoch metrics. `history.history["val_accuracy"]` gives a column, as in Keras."""

    def __init__(self, rows: list[dict[str, Any]] | None = None) -> None:
        self.rows: list[dict[str, Any]] = [dict(r) for r in rows or []]
        # How training ended, filled in by fit and its callbacks.
        self._kept_epoch: int | None = None  # set when earlier weights were put back
        self.stop_reason: str | None = None
        self.stopped_by: str | None = None  # "early_stopping" or "non_finite" (None: ran all its epochs)
        self.interrupted: str | None = None

    @property
    def epochs_run(self) -> int:
        return len(self.rows)

    @property
    def kept_epoch(self) -> int:
        """The epoch whose weights the trained model holds: the last one unless earlier weights were restored."""
        return self._kept_epoch if self._kept_epoch is not None else self.epochs_run

    @kept_epoch.setter
    def kept_epoch(self, epoch: int) -> None:
        self._kept_epoch = epoch

    @property
    def restored(self) -> bool:
        """Whether the model holds an earlier epoch's weights (early stopping's restore)."""
        return self._kept_epoch is not None

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(dict(row))

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.rows[index]

    @property
    def columns(self) -> list[str]:
        seen = [c for c in COLUMNS if any(c in r for r in self.rows)]
        extra = sorted({k for r in self.rows for k in r} - set(seen))
        return seen + extra

    @property
    def history(self) -> dict[str, list[Any]]:
        return {c: [r.get(c) for r in self.rows] for c in self.columns}

    def column(self, name: str) -> list[Any]:
        return [r.get(name) for r in self.rows]

    def best_epoch(self, monitor: str, mode: str) -> int | None:
        """1-based epoch with the best finite value of `monitor` (first one on ties)."""
        values = [(r[monitor], r["epoch"]) for r in self.rows if _finite(r.get(monitor))]
        if not values:
            return None
        pick = min if mode == "min" else max
        best = pick(v for v, _ in values)
        return next(epoch for v, epoch in values if v == best)

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: _csv_value(row.get(k)) for k in self.columns})
        return out.getvalue()

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": [{k: (v if _json_safe(v) else str(v)) for k, v in r.items()} for r in self.rows],
            "epochs_run": self.epochs_run,
            "kept_epoch": self.kept_epoch,
            "restored": self.restored,
            "stop_reason": self.stop_reason,
            "stopped_by": self.stopped_by,
            "interrupted": self.interrupted,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "History":
        history = cls([{k: (float(v) if v in ("nan", "inf", "-inf") else v) for k, v in r.items()} for r in data["rows"]])
        if data.get("restored") or data.get("best_epoch") is not None:  # "best_epoch": files before 0.2
            history.kept_epoch = data.get("kept_epoch") or data["best_epoch"]
        history.stop_reason = data.get("stop_reason")
        history.stopped_by = data.get("stopped_by")
        history.interrupted = data.get("interrupted")
        return history

    def __repr__(self) -> str:
        return f"History({len(self.rows)} epochs, columns={self.columns})"


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _json_safe(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def _csv_value(value: Any) -> Any:
    return "" if value is None else (repr(value) if isinstance(value, float) else value)
