"""The training section of a config: loss, optimizer, schedule, batching, early stopping.

Optimizer defaults are Keras's, so that numbers from Keras tutorials carry over.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Union

from pydantic import Field, field_validator, model_validator

from mlplab.validation import Strict, Tagged, non_negative, positive, positive_int, unit_interval


class OptimizerBase(Tagged):
    tag_field: ClassVar[str] = "name"


class RMSprop(OptimizerBase):
    name: Literal["rmsprop"] = "rmsprop"
    learning_rate: float = 1e-3
    rho: float = 0.9
    momentum: float = 0.0
    epsilon: float = 1e-7
    weight_decay: float = 0.0

    _lr = field_validator("learning_rate", "epsilon")(positive)
    _rho = field_validator("rho", "momentum")(unit_interval)


class _AdamFamily(OptimizerBase):
    name: str  # narrowed to its literal tag by each subclass (declared here to keep it first)
    learning_rate: float = 1e-3
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7
    weight_decay: float = 0.0

    _lr = field_validator("learning_rate", "epsilon")(positive)
    _betas = field_validator("beta_1", "beta_2")(unit_interval)


class Adam(_AdamFamily):
    name: Literal["adam"] = "adam"


class AdamW(_AdamFamily):
    """Adam with decoupled weight decay."""

    name: Literal["adamw"] = "adamw"
    weight_decay: float = 0.004  # Keras's AdamW default


class SGD(OptimizerBase):
    name: Literal["sgd"] = "sgd"
    learning_rate: float = 1e-2
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0

    _lr = field_validator("learning_rate")(positive)
    _momentum = field_validator("momentum")(unit_interval)

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> "SGD":
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov = true needs momentum > 0")
        return self


Optimizer = Annotated[Union[RMSprop, Adam, AdamW, SGD], Field(discriminator="name")]


class Schedule(Strict):
    """Learning rate over epochs: constant, step (×gamma every step_size epochs), cosine, one_cycle.

    `warmup_epochs` (constant, step, cosine) raises the rate linearly from base/warmup_steps to the
    base rate over that many epochs (fractions allowed: the rate changes every batch); the schedule
    proper then runs over the remaining steps. one_cycle has its own warm-up (`warmup_fraction`).
    """

    name: Literal["constant", "step", "cosine", "one_cycle"] = "constant"
    step_size: int = 10
    gamma: float = 0.1
    min_learning_rate: float = 0.0
    max_learning_rate: float | None = None  # one_cycle peak; defaults to 10x the optimizer's rate
    warmup_fraction: float = 0.3
    warmup_epochs: float = 0.0

    _step_size = field_validator("step_size")(positive_int)

    _gamma = field_validator("gamma")(positive)
    _warmup = field_validator("warmup_fraction")(unit_interval)
    _warmup_epochs = field_validator("warmup_epochs")(non_negative)

    @model_validator(mode="after")
    def _one_cycle_has_its_own_warmup(self) -> "Schedule":
        if self.name == "one_cycle" and self.warmup_epochs > 0:
            raise ValueError("one_cycle warms up by its own warmup_fraction; set warmup_epochs = 0")
        return self

    @property
    def varies(self) -> bool:
        """Whether the rate ever differs from the optimizer's (the loop then sets it every step)."""
        return self.name != "constant" or self.warmup_epochs > 0


# The metrics early stopping can watch (a history row's columns) and which way is better.
MONITOR_MODES: dict[str, Literal["min", "max"]] = {
    "loss": "min", "accuracy": "max", "val_loss": "min", "val_accuracy": "max",
}


class EarlyStopping(Strict):
    """Stop when `monitor` has not improved by `min_delta` for `patience` epochs.

    restore_best_weights defaults to true (unlike Keras): the kept model is then the one the
    validation data preferred, and the run records which epoch that was (the kept epoch).
    """

    monitor: Literal["loss", "accuracy", "val_loss", "val_accuracy"] = "val_loss"
    mode: Literal["auto", "min", "max"] = "auto"
    patience: int = 3
    min_delta: float = 0.0
    restore_best_weights: bool = True

    _non_negative = field_validator("patience", "min_delta")(non_negative)

    @property
    def resolved_mode(self) -> Literal["min", "max"]:
        return MONITOR_MODES[self.monitor] if self.mode == "auto" else self.mode

    @property
    def needs_validation(self) -> bool:
        """Whether the monitored metric is computed on validation data."""
        return self.monitor.startswith("val_")


class Augment(Strict):
    """Random distortions of the training images (never validation or test), each off at 0.

    Each image gets a rotation in [-rotate, rotate] degrees, a scale factor in [1 - scale, 1 + scale],
    a shear in [-shear, shear] degrees, a shift in [-shift, shift] pixels along each axis and, with
    elastic_alpha > 0, Simard's elastic distortion: a random field smoothed by a Gaussian of
    elastic_sigma pixels, scaled by elastic_alpha pixels.
    """

    shift: float = 0.0
    rotate: float = 0.0
    scale: float = 0.0
    shear: float = 0.0
    elastic_alpha: float = 0.0
    elastic_sigma: float = 5.0

    _non_negative = field_validator("shift", "elastic_alpha")(non_negative)
    _sigma = field_validator("elastic_sigma")(positive)
    _scale = field_validator("scale")(unit_interval)

    @field_validator("rotate")
    @classmethod
    def _rotate(cls, value: float) -> float:
        if not 0 <= value <= 180:
            raise ValueError(f"must be in [0, 180] degrees, got {value}")
        return value

    @field_validator("shear")
    @classmethod
    def _shear(cls, value: float) -> float:
        if not 0 <= value < 90:
            raise ValueError(f"must be in [0, 90) degrees, got {value}")
        return value

    @property
    def active(self) -> bool:
        return any(v > 0 for v in (self.shift, self.rotate, self.scale, self.shear, self.elastic_alpha))


class TrainingConfig(Strict):
    loss: Literal["categorical_crossentropy", "mean_squared_error"] = "categorical_crossentropy"
    optimizer: Optimizer = RMSprop()
    schedule: Schedule = Schedule()
    batch_size: int = 32
    epochs: int = 1
    shuffle: bool = True
    seed: int = 0
    validation_split: float = 0.1
    early_stopping: EarlyStopping | None = None
    # After training with the validation split, train a fresh model (same seed) on all the
    # training data for the number of epochs the validation run kept, and keep that model.
    # The test set still chooses nothing; the final model just sees 10 % more data.
    refit: bool = False
    # "auto": mlplab's hand-written step where it applies (see mlplab.training.gradients), else
    # autograd; "autograd" forces autograd (to compare, or to rule the hand-written step out).
    gradients: Literal["auto", "autograd"] = "auto"
    # Random distortions of the training batches (see Augment); None: off.
    augment: Augment | None = None
    # Cross-entropy against (1 - ε)·one-hot + ε/classes; the validation and test losses stay unsmoothed.
    label_smoothing: float = 0.0
    # After each optimizer step, each unit's incoming weight vector is scaled down to this L2 norm
    # if longer (Srivastava et al. 2014's max-norm constraint); None: off.
    max_norm: float | None = None
    # Evaluate and keep an exponential moving average of the weights with this decay (0.999: about
    # the last 1,000 steps); the training steps themselves are unchanged. None: off.
    ema: float | None = None

    _counts = field_validator("batch_size", "epochs")(positive_int)

    @field_validator("seed")
    @classmethod
    def _seed_non_negative(cls, value: int) -> int:
        if not 0 <= value < 2**63:
            raise ValueError(f"must be in [0, 2**63), got {value}")
        return value

    _split = field_validator("validation_split")(unit_interval)
    _smoothing = field_validator("label_smoothing")(unit_interval)

    @field_validator("max_norm")
    @classmethod
    def _max_norm_positive(cls, value: float | None) -> float | None:
        return None if value is None else positive(value)

    @field_validator("ema")
    @classmethod
    def _ema_decay(cls, value: float | None) -> float | None:
        if value is not None and not 0 < value < 1:
            raise ValueError(f"must be a decay in (0, 1), such as 0.999, got {value}")
        return value

    @model_validator(mode="after")
    def _smoothing_needs_cross_entropy(self) -> "TrainingConfig":
        if self.label_smoothing > 0 and self.loss != "categorical_crossentropy":
            raise ValueError(f"label_smoothing needs loss = 'categorical_crossentropy', got {self.loss!r}")
        return self

    @model_validator(mode="after")
    def _warmup_within_training(self) -> "TrainingConfig":
        warmup = self.schedule.warmup_epochs
        if warmup > 0 and not warmup < self.epochs:
            raise ValueError(f"schedule.warmup_epochs = {warmup} must be less than epochs = {self.epochs}")
        return self

    @model_validator(mode="after")
    def _monitor_needs_validation(self) -> "TrainingConfig":
        es = self.early_stopping
        if es is not None and es.needs_validation and self.validation_split == 0:
            raise ValueError(
                f"early_stopping.monitor = {es.monitor!r} needs validation data, but validation_split = 0"
            )
        return self
