"""What a run is asked to do, checked in full before anything is created on disk."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from mlplab.config import ExperimentConfig, load_config
from mlplab.errors import ConfigError

if TYPE_CHECKING:
    from mlplab.training.device import Runtime

ValidateOn = Literal["val", "test"]
VALIDATE_ON = ("val", "test")


@dataclass(frozen=True)
class RunPlan:
    """One training run: config, data, seed, where it goes and how it runs.

    `dataset` and `seed`, when given, override the config's (the plan's config then holds them,
    so `plan.config` is the whole truth that config.toml and the checkpoint record).
    validate_on="test" reproduces the tutorial literally: the test set serves as validation data,
    so anything chosen with it (the early-stopping epoch) makes the test figures optimistic.
    """

    config: ExperimentConfig
    out: Path
    dataset: str | None = None
    seed: int | None = None
    validate_on: ValidateOn = "val"
    limit: int | None = None  # use only the first N training and N test images
    data_dir: Path | None = None
    runtime: "Runtime | None" = field(default=None, compare=False)
    overwrite: bool = False  # replace a finished or broken run already in `out`
    command: tuple[str, ...] = ()  # recorded in run.json

    def __post_init__(self) -> None:
        config = self.config if isinstance(self.config, ExperimentConfig) else load_config(self.config)
        overrides: dict[str, object] = {}
        if self.dataset is not None and self.dataset != config.dataset:
            overrides["dataset"] = self.dataset
        if self.seed is not None and self.seed != config.training.seed:
            overrides["training.seed"] = self.seed
        if overrides:
            config = config.with_overrides(overrides)
        object.__setattr__(self, "config", config)
        object.__setattr__(self, "dataset", config.dataset)
        object.__setattr__(self, "seed", config.training.seed)
        object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "command", tuple(self.command))
        if self.data_dir is not None:
            object.__setattr__(self, "data_dir", Path(self.data_dir))
        if self.validate_on not in VALIDATE_ON:
            raise ConfigError(f"validate_on must be val or test, got {self.validate_on!r}")
        if self.limit is not None and (isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1):
            raise ConfigError(f"limit must be a positive number of images, got {self.limit!r}")
        check_out_path(self.out)


def check_out_path(out: Path) -> None:
    """`out` must be a folder, or a place where one can be made (not a file, nor below one)."""
    for place in (out, *out.parents):
        if place.exists() or place.is_symlink():
            if place.is_dir():
                return
            what = "is a file" if place.is_file() else "exists and is not a folder"
            where = f"{out}: {place} {what}" if place != out else f"{out} {what}"
            raise ConfigError(f"{where}; choose a folder for the run (--out)")
