"""mlplab: build, train, compare and use multilayer perceptrons on MNIST-style image data.

The tutorial's flow in a notebook:

    >>> import mlplab
    >>> (x_train, y_train), (x_test, y_test) = mlplab.load_data("mnist")
    >>> config = mlplab.load_config("tutorial-512-512")
    >>> mlplab.summarize(config.model).print()
    >>> run = mlplab.train_run(config, out="runs/wide")          # fit, evaluate, save → RunResult
    >>> saved = mlplab.load_model("runs/wide")
    >>> mlplab.evaluate(saved.model, (mlplab.flatten_scale(x_test), y_test))

or step by step with `build_model`, `fit` (→ History) and `evaluate`; and `MLPClassifier` for
scikit-learn pipelines.
"""

from __future__ import annotations

__version__ = "0.1.0"

from mlplab._lazy import lazy_getattr
from mlplab.errors import ConfigError, DataError, InputError, MlplabError, ModelFileError, TrainingError

# The rest is imported on first use, so that `import mlplab.report` or `mlplab --help` does not
# pay for importing torch.
_LAZY = {
    "ExperimentConfig": "mlplab.config", "load_config": "mlplab.config", "shipped_configs": "mlplab.config",
    "Dataset": "mlplab.data", "list_datasets": "mlplab.data", "load_data": "mlplab.data", "load_dataset": "mlplab.data",
    "flatten_scale": "mlplab.data.preprocess", "one_hot": "mlplab.data.preprocess",
    "train_val_split": "mlplab.data.preprocess",
    "MLPClassifier": "mlplab.estimator",
    "evaluate_run": "mlplab.runs", "open_run": "mlplab.runs", "resume_run": "mlplab.runs", "train_run": "mlplab.runs",
    "RunPlan": "mlplab.runs", "start_run": "mlplab.runs", "StopCause": "mlplab.runs",
    "compare_runs": "mlplab.studies", "reproduce": "mlplab.studies",
    "ModelSpec": "mlplab.model", "build_model": "mlplab.model", "summarize": "mlplab.model",
    "training_flops": "mlplab.model",
    "load_model": "mlplab.runs", "save_model": "mlplab.runs",
    "History": "mlplab.training", "evaluate": "mlplab.training", "fit": "mlplab.training",
    "resolve_runtime": "mlplab.training", "standard_callbacks": "mlplab.training",
    "preprocess_image": "mlplab.use.preprocess",
}


__getattr__ = lazy_getattr(globals(), _LAZY, __name__)


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "ConfigError", "DataError", "Dataset", "ExperimentConfig", "History", "InputError", "MLPClassifier",
    "MlplabError", "ModelFileError", "ModelSpec", "RunPlan", "StopCause", "TrainingError", "__version__",
    "build_model", "compare_runs", "evaluate", "evaluate_run", "fit", "flatten_scale", "list_datasets",
    "load_config", "load_data", "load_dataset", "load_model", "one_hot", "open_run", "preprocess_image",
    "reproduce", "resolve_runtime", "resume_run", "save_model", "shipped_configs", "standard_callbacks",
    "start_run", "summarize", "train_run", "train_val_split", "training_flops",
]
