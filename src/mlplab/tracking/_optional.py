"""The `track` extra: tensorboard and mlflow are imported only when a run logs to them."""

from __future__ import annotations

import importlib
from types import ModuleType

from mlplab.errors import ConfigError


def require(module: str, target: str) -> ModuleType:
    """Import `module` or fail with one line that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"--log-to {target} needs the {module.split('.')[0]} package ({exc}); install it with: pip install 'mlplab[track]'"
        ) from None
