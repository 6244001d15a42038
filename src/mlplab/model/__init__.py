"""The model: its layer kinds and description, the torch module built from it, its summary and its cost.

`spec`, `summary` and `flops` need no torch, so `mlplab.model.spec` (what configs import) and
`mlplab summary` start fast; `build` (the torch module) is imported on first use of its names.
"""

from __future__ import annotations

from mlplab._lazy import lazy_getattr

_LAZY = {
    "MLP": "mlplab.model.build", "build_model": "mlplab.model.build",
    "forward_flops": "mlplab.model.flops", "training_flops": "mlplab.model.flops",
    "training_flops_per_sample": "mlplab.model.flops",
    "BatchNorm": "mlplab.model.spec", "Dense": "mlplab.model.spec", "Dropout": "mlplab.model.spec",
    "ModelSpec": "mlplab.model.spec", "Output": "mlplab.model.spec",
    "ModelSummary": "mlplab.model.summary", "summarize": "mlplab.model.summary",
    "HIDDEN_KINDS": "mlplab.model.layers", "MAX_PARAMETERS": "mlplab.model.layers", "MAX_WIDTH": "mlplab.model.layers",
    "LayerKind": "mlplab.model.layers",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(globals(), _LAZY, __name__)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
