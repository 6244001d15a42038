"""Run directories and saved models (safetensors + JSON, never pickle)."""

from mlplab.runs.model_file import SavedModel, load_model, save_model
from mlplab.runs.run_dir import HistoryWriter, RunDir

__all__ = ["HistoryWriter", "RunDir", "SavedModel", "load_model", "save_model"]
