"""A scikit-learn classifier over mlplab's model and training.

    >>> clf = MLPClassifier(hidden_units=(128, 64), dropout=0.15, epochs=5)
    >>> cross_val_score(make_pipeline(MinMaxScaler(), clf), X, y, cv=3)

It behaves as scikit-learn's own classifiers do (`check_estimator` passes; see
tests/test_estimator.py): parameters are plain values stored by `__init__` and checked by `fit`,
so `get_params`/`set_params`, `clone` and `GridSearchCV` work; `fit` accepts arrays, lists and
pandas DataFrames, image stacks (N×28×28, flattened for you; uint8 pixels scaled to [0, 1] as
the tutorial does) and any labels scikit-learn calls binary or multiclass (strings, integers);
fitted attributes end in `_` and carry scikit-learn's names (`classes_`, `n_features_in_`,
`n_iter_`, `loss_curve_`, `validation_scores_`).

Needs scikit-learn (`pip install "mlplab[sklearn]"`).
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from mlplab.model.build import MLP, build_model
from mlplab.model.spec import Dense, Dropout, ModelSpec
from mlplab.training import fit as fit_model
from mlplab.training import predict_outputs, resolve_runtime, standard_callbacks
from mlplab.training.config import TrainingConfig

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - exercised only without scikit-learn
    raise ImportError(
        "mlplab.MLPClassifier needs scikit-learn >= 1.6: pip install 'mlplab[sklearn]'"
    ) from exc


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """A multilayer perceptron classifier trained with mlplab (Keras's defaults, PyTorch compute).

    Parameters
    ----------
    hidden_units : int or sequence of int, default=(128, 64)
        Units of each hidden Dense layer, in order (scikit-learn's `hidden_layer_sizes`).
    activation : str, default="relu"
        Activation of the hidden layers: relu, sigmoid, tanh, gelu, silu, elu, leaky_relu, linear.
    dropout : float, default=0.0
        Dropout rate after each hidden layer, in [0, 1).
    optimizer : str, default="adam"
        rmsprop, adam, adamw or sgd, with Keras's defaults.
    learning_rate : float or None, default=None
        The optimizer's learning rate (None: the optimizer's default, 1e-3 for Adam).
    batch_size : int, default=128
    epochs : int, default=10
        Passes over the training data (an upper bound with early stopping).
    early_stopping : bool, default=False
        Hold out `validation_split` of the training data (stratified) and stop when its loss
        has not improved for `patience` epochs; the best epoch's weights are kept.
    patience : int, default=3
    validation_split : float, default=0.1
        Used only with early stopping (scikit-learn's `validation_fraction`).
    random_state : int, numpy Generator/RandomState or None, default=0
        Seeds initialisation, shuffling, dropout and the validation split. The default 0 makes
        every fit reproducible; None draws a fresh seed per fit, as scikit-learn's default does.
    device : str, default="cpu"
    precision : str, default="auto"
        "auto": bf16 where a short probe finds bf16 matrix products clearly faster than fp32 on
        this machine (CPUs with AMX), else fp32; "fp32"; "bf16". Predictions use the precision
        fit trained in.
    threads : int or "auto", default="auto"
        CPU threads for fit and predict (torch's setting is restored afterwards). "auto": one per
        core, less one for each core other programs keep busy (a thread on a busy core slows
        training 10-30×). The thread count changes the last bits of the weights: give a number
        for bit-identical refits whatever the load.
    verbose : int, default=0
        0 silent, 1 progress bar, 2 one line per epoch.

    Attributes
    ----------
    classes_ : ndarray of the labels seen in `fit`, sorted.
    n_features_in_ : int, features after flattening images.
    feature_names_in_ : column names when `fit` was given a DataFrame.
    n_iter_ : int, epochs run.
    loss_curve_ : list of float, the training loss per epoch.
    validation_scores_ : list of float or None, the validation accuracy per epoch (early stopping only).
    best_validation_score_ : float or None, the best of them (early stopping only).
    best_loss_ : float or None, the lowest training loss (without early stopping).
    history_ : mlplab History, every metric per epoch.
    threads_ : int, the CPU threads fit used (and predict uses).
    model_ : the trained torch module.
    """

    def __init__(
        self,
        hidden_units: int | Sequence[int] = (128, 64),
        activation: str = "relu",
        dropout: float = 0.0,
        optimizer: str = "adam",
        learning_rate: float | None = None,
        batch_size: int = 128,
        epochs: int = 10,
        early_stopping: bool = False,
        patience: int = 3,
        validation_split: float = 0.1,
        random_state: int | np.random.Generator | np.random.RandomState | None = 0,
        device: str = "cpu",
        precision: str = "auto",
        threads: int | str = "auto",
        verbose: int = 0,
    ) -> None:
        self.hidden_units = hidden_units
        self.activation = activation
        self.dropout = dropout
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.early_stopping = early_stopping
        self.patience = patience
        self.validation_split = validation_split
        self.random_state = random_state
        self.device = device
        self.precision = precision
        self.threads = threads
        self.verbose = verbose

    # -- parameters, checked at fit time (scikit-learn's rule: __init__ only stores them) -------

    def _hidden_units(self) -> list[int]:
        units = self.hidden_units
        units = [units] if isinstance(units, numbers.Number) or isinstance(units, str) else list(units)
        for value in units:
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
                raise ValueError(f"hidden_units must be whole numbers of units, got {value!r} in {self.hidden_units!r}")
            if value < 1:
                raise ValueError(f"hidden_units must be positive, got {value!r} in {self.hidden_units!r}")
        return [int(value) for value in units]

    def _spec(self) -> ModelSpec:
        layers: list[Any] = []
        for units in self._hidden_units():
            layers.append(Dense(units=units, activation=self.activation))
            if self.dropout:
                layers.append(Dropout(rate=self.dropout))
        return ModelSpec(layers=layers)

    def _seed(self) -> int:
        state = self.random_state
        if state is None:
            return int(np.random.default_rng().integers(2**63))
        if isinstance(state, np.random.RandomState):
            return int(state.randint(2**31 - 1))
        if isinstance(state, np.random.Generator):
            return int(state.integers(2**63))
        if isinstance(state, bool) or not isinstance(state, numbers.Integral) or not 0 <= state < 2**63:
            raise ValueError(f"random_state must be None, a non-negative integer or a numpy generator, got {state!r}")
        return int(state)

    def _training_config(self, seed: int) -> TrainingConfig:
        optimizer: dict[str, Any] = {"name": self.optimizer}
        if self.learning_rate is not None:
            optimizer["learning_rate"] = self.learning_rate
        return TrainingConfig.model_validate(
            {
                "optimizer": optimizer,
                "batch_size": self.batch_size,
                "epochs": self.epochs,
                "seed": seed,
                "validation_split": self.validation_split if self.early_stopping else 0.0,
                "early_stopping": {"patience": self.patience} if self.early_stopping else None,
            }
        )

    # -- scikit-learn API ---------------------------------------------------------------------

    def fit(self, X: Any, y: Any) -> "MLPClassifier":
        """Train a fresh network on X (n_samples × n_features, or images n_samples × H × W) and labels y."""
        spec = self._spec()  # parameter errors first, before any data work
        seed = self._seed()
        config = self._training_config(seed)
        _check_finite_labels(y)
        X, scaled = _flatten_images(X)
        X, y = validate_data(self, X, y, dtype=np.float32)
        X = _scale(X, scaled)
        check_classification_targets(y)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"need at least two classes, got {len(self.classes_)} class")
        train, validation = (X, encoded.astype(np.int64)), None
        if config.early_stopping is not None:
            from mlplab.data.preprocess import train_val_split

            x_tr, y_tr, x_val, y_val = train_val_split(X, encoded, val_fraction=config.validation_split, seed=seed)
            train, validation = (x_tr, y_tr.astype(np.int64)), (x_val, y_val.astype(np.int64))
        with _restoring_threads():
            runtime = resolve_runtime(self.device, self.precision, self.threads)
            self.threads_ = torch.get_num_threads()
            model: MLP = build_model(spec, X.shape[1], len(self.classes_), seed=seed)
            self.runtime_ = runtime.for_model(model, config.batch_size)  # predict in the precision fit trained in
            history = fit_model(model, config, train, validation,
                                callbacks=standard_callbacks(config, verbose=self.verbose), runtime=self.runtime_)
        self.model_, self.history_ = model, history
        self.n_iter_ = history.epochs_run
        self.loss_curve_ = [float(v) for v in history.column("loss")]
        if validation is not None:
            self.validation_scores_ = [float(v) for v in history.column("val_accuracy")]
            self.best_validation_score_ = max(self.validation_scores_)
            self.best_loss_ = None
        else:
            self.validation_scores_ = self.best_validation_score_ = None
            self.best_loss_ = min(self.loss_curve_)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, one column per entry of `classes_`."""
        check_is_fitted(self, "model_")
        X, scaled = _flatten_images(X)
        X = _scale(validate_data(self, X, dtype=np.float32, reset=False), scaled)
        x = torch.as_tensor(np.ascontiguousarray(X), device=self.runtime_.device)
        with _restoring_threads(self.threads_):
            outputs = predict_outputs(self.model_, x, self.runtime_)
            return self.model_.output_activation(outputs).double().cpu().numpy()

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each sample, as a label from `classes_`."""
        check_is_fitted(self, "model_")
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.classifier_tags.multi_label = False
        return tags


@contextlib.contextmanager
def _restoring_threads(threads: int | None = None) -> Iterator[None]:
    """Run on `threads` CPU threads (or whatever resolve_runtime sets inside), then restore torch's setting."""
    before = torch.get_num_threads()
    if threads is not None and threads != before:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _check_finite_labels(y: Any) -> None:
    """NaN or infinity is no class, in a float array or hidden among strings in an object array.

    Worded so that both scikit-learn's checks ("Input y contains NaN") and ours match.
    """
    if y is None:
        return  # validate_data says that y is required
    labels = np.asarray(y)
    if labels.dtype.kind in "fc":
        values = labels.ravel()
    elif labels.dtype == object:
        values = np.array([v for v in labels.ravel() if isinstance(v, (float, np.floating))], dtype=float)
    else:
        return
    if np.isnan(values).any():
        raise ValueError("Input y contains NaN (NaN or infinite labels cannot be classes)")
    if not np.isfinite(values).all():
        raise ValueError("Input y contains infinity (NaN or infinite labels cannot be classes)")


def _flatten_images(X: Any) -> tuple[Any, bool]:
    """Images (N×H×W or N×H×W×C) become rows of pixels; uint8 pixels are marked for scaling to [0, 1]."""
    if hasattr(X, "columns"):  # a DataFrame: validate_data keeps its column names
        return X, False
    if getattr(X, "ndim", None) is None and isinstance(X, (list, tuple)):
        X = np.asarray(X)
    ndim = getattr(X, "ndim", None)
    scaled = getattr(X, "dtype", None) == np.uint8
    if ndim is not None and ndim >= 3:
        X = np.asarray(X).reshape(len(X), -1)
    return X, scaled


def _scale(X: np.ndarray, scaled: bool) -> np.ndarray:
    return X / np.float32(255.0) if scaled else X
