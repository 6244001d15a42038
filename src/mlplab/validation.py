"""Shared pieces of the validated config models: strictness and the checks their fields use.

Each check raises ValueError with the value in the message; `mlplab.config` prefixes the key, so
users read `model.layers[1].rate must be in [0, 1), got 1.5`.
"""

from __future__ import annotations

import math
from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    # Unknown keys are errors: a typo such as `unit = 64` must not be silently ignored. Types are
    # strict: `units = true` or `units = "32"` is an error, not 1 or 32 (an int still serves where
    # a float is asked for).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Tagged(Strict):
    """A member of a tagged union: its tag counts as set, so `exclude_unset` dumps re-validate."""

    tag_field: ClassVar[str] = "type"

    def model_post_init(self, context: object) -> None:
        self.__pydantic_fields_set__.add(type(self).tag_field)


# NaN compares false with everything, so each check is written as "not (what is allowed)": a NaN
# fails it instead of slipping through, and infinity is refused where a finite number is needed.


def positive(value: float) -> float:
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"must be a positive finite number, got {value}")
    return value


def positive_int(value: int) -> int:
    if value < 1:
        raise ValueError(f"must be a positive integer, got {value}")
    return value


def non_negative(value: float) -> float:
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"must be a finite number >= 0, got {value}")
    return value


def unit_interval(value: float) -> float:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"must be in [0, 1), got {value}")
    return value


def union_member_names() -> set[str]:
    """What pydantic puts in an error's location for a union's member: each tag and class name.

    `mlplab.config` leaves them out of the key path it shows (`model.layers[0].units`, not
    `model.layers[0].dense.units`). Derived from the classes, so a new layer kind or optimizer
    needs no list kept in step.
    """
    names: set[str] = set()
    pending = list(Strict.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        names.add(cls.__name__)
        if issubclass(cls, Tagged):
            tag = cls.model_fields.get(cls.tag_field)
            if tag is not None and isinstance(tag.default, str):
                names.add(tag.default)
    return names
