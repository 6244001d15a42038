"""mlplab: build, train, compare and use multilayer perceptrons on MNIST-style image data.

The tutorial's flow in a notebook:

    >>> import mlplab
    >>> (x_train, y_train), (x_test, y_test) = mlplab.load_data("mnist")
    >>> config = mlplab.load_config("tutorial-512-512")
    >>> mlplab.summarize(config.model).print()
    >>> run = mlplab.train_run(config, out="runs/wide")          # fit, evaluate, save
    >>> saved = mlplab.load_model("runs/wide")
    >>> mlplab.evaluate(saved.model, (mlplab.flatten_scale(x_test), y_test))

or step by step with `build_model`, `fit` (→ History) and `evaluate`; and `MLPClassifier` for
scikit-learn pipelines.
"""

from __future__ import annotations

__version__ = "0.1.0"

from mlplab.config import ExperimentConfig, load_config, shipped_configs
from mlplab.data import Dataset, list_datasets, load_data, load_dataset
from mlplab.data.preprocess import flatten_scale, one_hot, train_val_split
from mlplab.errors import ConfigError, DataError, MlplabError, ModelFileError, TrainingError
from mlplab.estimator import MLPClassifier
from mlplab.experiment import evaluate_run, resume_run, train_run
from mlplab.model import ModelSpec, build_model, summarize, training_flops
from mlplab.runs import load_model, save_model
from mlplab.training import History, evaluate, fit, resolve_runtime, standard_callbacks

__all__ = [
    "ConfigError", "DataError", "Dataset", "ExperimentConfig", "History", "MLPClassifier", "MlplabError",
    "ModelFileError", "ModelSpec", "TrainingError", "__version__", "build_model", "evaluate", "evaluate_run",
    "fit", "flatten_scale", "list_datasets", "load_config", "load_data", "load_dataset", "load_model",
    "one_hot", "resolve_runtime", "resume_run", "save_model", "shipped_configs", "standard_callbacks",
    "summarize", "train_run", "train_val_split", "training_flops",
]
