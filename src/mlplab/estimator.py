"""A scikit-learn compatible classifier over mlplab's model and training.

    >>> clf = MLPClassifier(hidden_units=(128, 64), dropout=0.15, epochs=5)
    >>> cross_val_score(make_pipeline(MinMaxScaler(), clf), X, y, cv=3)

Parameters are plain values (so `get_params`/`set_params`, `clone` and `GridSearchCV` work);
the model description and training config are built from them at `fit` time.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mlplab.model.build import MLP, build_model
from mlplab.model.spec import Dense, Dropout, ModelSpec
from mlplab.training import fit as fit_model
from mlplab.training import predict_outputs, resolve_runtime, standard_callbacks
from mlplab.training.config import TrainingConfig

try:  # scikit-learn is optional: the estimator still works without it, outside sklearn's tools
    from sklearn.base import BaseEstimator, ClassifierMixin
except ImportError:  # pragma: no cover - exercised only without scikit-learn
    BaseEstimator, ClassifierMixin = object, object  # type: ignore[assignment,misc]


class MLPClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    def __init__(
        self,
        hidden_units: tuple[int, ...] = (128, 64),
        activation: str = "relu",
        dropout: float = 0.0,
        optimizer: str = "adam",
        learning_rate: float | None = None,
        batch_size: int = 128,
        epochs: int = 10,
        early_stopping: bool = False,
        patience: int = 3,
        validation_split: float = 0.1,
        seed: int = 0,
        device: str = "cpu",
        precision: str = "fp32",
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
        self.seed = seed
        self.device = device
        self.precision = precision
        self.verbose = verbose

    def _spec(self) -> ModelSpec:
        layers: list[Any] = []
        for units in self.hidden_units:
            if isinstance(units, (bool, np.bool_)) or not isinstance(units, (int, np.integer)):
                raise ValueError(f"hidden_units must be whole numbers of units, got {units!r} in {self.hidden_units!r}")
            layers.append(Dense(units=int(units), activation=self.activation))
            if self.dropout:
                layers.append(Dropout(rate=self.dropout))
        return ModelSpec(layers=layers)

    def _training_config(self) -> TrainingConfig:
        optimizer: dict[str, Any] = {"name": self.optimizer}
        if self.learning_rate is not None:
            optimizer["learning_rate"] = self.learning_rate
        return TrainingConfig.model_validate(
            {
                "optimizer": optimizer,
                "batch_size": self.batch_size,
                "epochs": self.epochs,
                "seed": self.seed,
                "validation_split": self.validation_split if self.early_stopping else 0.0,
                "early_stopping": {"patience": self.patience} if self.early_stopping else None,
            }
        )

    def fit(self, X: Any, y: Any) -> "MLPClassifier":
        X = _features(X)
        y = np.asarray(y)
        if len(X) != len(y):
            raise ValueError(f"X and y differ in length: {len(X)} vs {len(y)}")
        if y.dtype.kind in "fc" and not np.isfinite(y).all():
            raise ValueError("y holds NaN or infinite labels")
        if y.dtype == object and any(isinstance(v, (float, np.floating)) and not np.isfinite(v) for v in y.ravel()):
            raise ValueError("y holds NaN or infinite labels")
        self.classes_, encoded = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"need at least two classes, got {len(self.classes_)}")
        self.n_features_in_ = X.shape[1]
        config = self._training_config()
        self.runtime_ = resolve_runtime(self.device, self.precision)
        self.model_: MLP = build_model(self._spec(), X.shape[1], len(self.classes_), seed=self.seed)
        validation = None
        train = (X, encoded)
        if config.early_stopping is not None:
            from mlplab.data.preprocess import train_val_split

            x_tr, y_tr, x_val, y_val = train_val_split(X, encoded, val_fraction=config.validation_split, seed=self.seed)
            train, validation = (x_tr, y_tr), (x_val, y_val)
        self.history_ = fit_model(
            self.model_, config, train, validation,
            callbacks=standard_callbacks(config, verbose=self.verbose), runtime=self.runtime_,
        )
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        X = torch.as_tensor(_features(X), device=self.runtime_.device)
        outputs = predict_outputs(self.model_, X, self.runtime_)
        return self.model_.output_activation(outputs).cpu().numpy()

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def _features(X: Any) -> np.ndarray:
    X = np.asarray(X)
    if X.dtype == np.uint8:  # raw images: scale as the tutorial does
        X = X.astype(np.float32) / 255.0
    X = X.reshape(len(X), -1).astype(np.float32, copy=False)
    if not np.isfinite(X).all():
        raise ValueError("X holds NaN or infinite values")
    return X
