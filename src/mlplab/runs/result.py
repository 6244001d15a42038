"""How a run ended: a stop cause, the one table from stop cause to exit status, and the result."""

from __future__ import annotations

import enum
import signal
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlplab.model.build import MLP
    from mlplab.runs.run_dir import RunDir
    from mlplab.training.history import History


class StopCause(str, enum.Enum):
    COMPLETED = "completed"  # ran all its epochs
    EARLY_STOPPED = "early_stopped"  # early stopping ended it; a model was saved
    INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM; resumable
    NON_FINITE = "non_finite"  # the loss or the outputs went NaN/inf; the last good weights were saved
    FAILED = "failed"  # could not go on (a full disk, say); resumable once the cause is fixed

    @property
    def saved_model(self) -> bool:
        return self in (StopCause.COMPLETED, StopCause.EARLY_STOPPED, StopCause.NON_FINITE)


# The exit status of `mlplab train` (and `reproduce`) for each way a run can end. An interruption
# exits as the shell would for the signal: 128 + its number (130 for Ctrl-C, 143 for SIGTERM).
EXIT_STATUS: dict[StopCause, int] = {
    StopCause.COMPLETED: 0,
    StopCause.EARLY_STOPPED: 0,
    StopCause.INTERRUPTED: 128 + signal.SIGINT,
    StopCause.NON_FINITE: 3,
    StopCause.FAILED: 2,
}

# run.json's `status` for each cause (`finished` covers both normal ends, as before).
RUN_STATUS: dict[StopCause, str] = {
    StopCause.COMPLETED: "finished",
    StopCause.EARLY_STOPPED: "finished",
    StopCause.INTERRUPTED: "interrupted",
    StopCause.NON_FINITE: "non_finite",
    StopCause.FAILED: "failed",
}


def exit_status(cause: StopCause, signal_name: str | None = None) -> int:
    if cause is StopCause.INTERRUPTED and signal_name in signal.Signals.__members__:
        return 128 + signal.Signals[signal_name]
    return EXIT_STATUS[cause]


@dataclass
class RunResult:
    """A run's end: its directory, the trained model (when one was saved), history and test metrics."""

    run: "RunDir"
    cause: StopCause
    history: "History"
    model: "MLP | None" = None
    metrics: dict[str, Any] = field(default_factory=dict)
    message: str = ""  # one line for the user when the run did not end normally
    signal: str | None = None  # which signal interrupted it

    @property
    def exit_status(self) -> int:
        return exit_status(self.cause, self.signal)

    @property
    def ok(self) -> bool:
        return EXIT_STATUS[self.cause] == 0

    @property
    def status(self) -> str:
        return RUN_STATUS[self.cause]
