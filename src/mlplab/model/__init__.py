"""The model: its layer kinds and description, the torch module built from it, its summary and its cost."""

from mlplab.model.build import MLP, build_model
from mlplab.model.flops import forward_flops, training_flops, training_flops_per_sample
from mlplab.model.layers import HIDDEN_KINDS, MAX_PARAMETERS, MAX_WIDTH, LayerKind
from mlplab.model.spec import BatchNorm, Dense, Dropout, ModelSpec, Output
from mlplab.model.summary import ModelSummary, summarize

__all__ = [
    "HIDDEN_KINDS", "MAX_PARAMETERS", "MAX_WIDTH", "MLP", "BatchNorm", "Dense", "Dropout", "LayerKind", "ModelSpec",
    "ModelSummary", "Output", "build_model", "forward_flops", "summarize", "training_flops", "training_flops_per_sample",
]
