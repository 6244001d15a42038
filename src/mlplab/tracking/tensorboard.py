"""TensorBoard: per-epoch scalars (the history's columns) and the config as text, in event files."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mlplab.tracking._optional import require


def check_available() -> None:
    require("torch.utils.tensorboard", "tensorboard")


class TensorBoardLog:
    """One run's event files in `log_dir`. Step = epoch (1-based), as in history.csv.

    `first_epoch` is the first epoch this process logs: TensorBoard's purge step hides anything an
    earlier process logged from that epoch on (so an epoch logged again after an interruption is
    never shown twice). A run trained afresh (`--overwrite`) purges from epoch 1.
    """

    def __init__(self, log_dir: Path, *, first_epoch: int, config_text: str | None) -> None:
        tb = require("torch.utils.tensorboard", "tensorboard")
        self.log_dir = Path(log_dir)
        self.writer = tb.SummaryWriter(log_dir=str(self.log_dir), purge_step=first_epoch)
        if config_text is not None:
            # Indented by four spaces: TensorBoard renders text as Markdown, this keeps it verbatim.
            self.writer.add_text("config", "\n".join("    " + line for line in config_text.splitlines()), 0)

    def log_epoch(self, row: dict[str, Any]) -> None:
        step = int(row["epoch"])
        for key, value in row.items():
            if key != "epoch" and _number(value):
                self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def log_test(self, metrics: dict[str, Any], step: int) -> None:
        for key in ("test_loss", "test_accuracy"):
            if _number(metrics.get(key)):
                self.writer.add_scalar(key, metrics[key], step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)
