"""Package attributes imported on first use, so that importing a package (or `mlplab --help`)
does not pay for importing torch. Used by `mlplab`, `mlplab.model` and `mlplab.training`."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_getattr(namespace: dict[str, Any], table: dict[str, str], module: str) -> Callable[[str], object]:
    """A module `__getattr__` resolving `table`'s names (name → defining module), cached in `namespace`."""

    def __getattr__(name: str) -> object:
        if name in table:
            value = getattr(importlib.import_module(table[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
