"""`--log-to` specs: `tensorboard[:DIR]` and `mlflow[:URI]`, checked before anything runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mlplab.errors import ConfigError

Kind = Literal["tensorboard", "mlflow"]
KINDS: tuple[Kind, ...] = ("tensorboard", "mlflow")


@dataclass(frozen=True)
class LogTarget:
    """Where to log: TensorBoard event files under a folder, or an MLflow tracking URI.

    `location` None means the default next to the run (or study): `<out>/tensorboard`, or
    `sqlite:///<out>/mlflow.db`.
    """

    kind: Kind
    location: str | None = None

    def __str__(self) -> str:
        return self.kind if self.location is None else f"{self.kind}:{self.location}"


def parse_log_to(value: str) -> LogTarget:
    """`tensorboard`, `tensorboard:runs/tb`, `mlflow`, `mlflow:sqlite:///m.db`, `mlflow:http://host:5000`."""
    if not isinstance(value, str):
        raise ConfigError(f"--log-to must be tensorboard[:DIR] or mlflow[:URI], got {value!r}")
    kind, sep, location = value.strip().partition(":")
    if kind not in KINDS:
        raise ConfigError(f"--log-to {value!r}: unknown target {kind!r}; use tensorboard[:DIR] or mlflow[:URI]")
    if sep and not location.strip():
        raise ConfigError(f"--log-to {value!r}: nothing after the colon; give a {'folder' if kind == 'tensorboard' else 'tracking URI'} or leave out the colon")
    location = location.strip() or None
    if kind == "mlflow" and location is not None and "://" not in location and not location.startswith("databricks"):
        # A bare path is what users type most; MLflow would treat it as the deprecated file store.
        if location.endswith(".db"):
            location = f"sqlite:///{Path(location).expanduser().resolve()}"
        else:
            raise ConfigError(
                f"--log-to {value!r}: {location!r} is not a tracking URI; use sqlite:///PATH.db, http(s)://HOST:PORT, "
                "or a path ending in .db"
            )
    return LogTarget(kind, location)


def parse_log_to_all(values: list[str] | tuple[str, ...] | None) -> tuple[LogTarget, ...]:
    """Every `--log-to` value, one target per kind (the same kind twice is a mistake worth naming)."""
    targets = tuple(parse_log_to(v) for v in values or ())
    kinds = [t.kind for t in targets]
    for kind in KINDS:
        if kinds.count(kind) > 1:
            twice = ", ".join(repr(str(t)) for t in targets if t.kind == kind)
            raise ConfigError(f"--log-to names {kind} more than once ({twice}); give it once")
    return targets
