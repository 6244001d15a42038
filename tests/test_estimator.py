"""MLPClassifier behaves as a scikit-learn estimator and learns real digits."""

from __future__ import annotations

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is in the test extras")
from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer  # noqa: E402

from mlplab import MLPClassifier  # noqa: E402


@pytest.fixture(scope="module")
def digits(mnist):
    x = mnist.x_train[:3000].reshape(3000, -1)
    y = mnist.y_train[:3000]
    return x, y


def test_params_round_trip_and_clone():
    clf = MLPClassifier(hidden_units=(32,), epochs=2, dropout=0.1)
    params = clf.get_params()
    assert params["hidden_units"] == (32,) and params["epochs"] == 2 and params["dropout"] == 0.1
    other = clone(clf).set_params(epochs=5)
    assert other.epochs == 5 and clf.epochs == 2


def test_learns_digits_with_string_labels(digits):
    x, y = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    clf = MLPClassifier(hidden_units=(64,), epochs=3, seed=1).fit(x[:2500], names[y[:2500]])
    proba = clf.predict_proba(x[2500:])
    assert proba.shape == (500, 10) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert set(clf.predict(x[2500:])) <= set(names)
    assert clf.score(x[2500:], names[y[2500:]]) > 0.85
    assert list(clf.classes_) == sorted(names)


def test_works_in_pipeline_cross_val_and_grid_search(digits):
    x, y = digits
    pipe = make_pipeline(FunctionTransformer(lambda a: a.astype(np.float32) / 255.0), MLPClassifier(hidden_units=(32,), epochs=6))
    scores = cross_val_score(pipe, x[:1500], y[:1500], cv=3)
    assert scores.shape == (3,) and scores.min() > 0.75
    grid = GridSearchCV(MLPClassifier(epochs=2), {"hidden_units": [(16,), (64,)]}, cv=2).fit(x[:1000], y[:1000])
    # Each candidate really trains with its own width (set_params reaches fit): same seed and data,
    # so equal scores would mean the grid's value was ignored.
    scores = grid.cv_results_["mean_test_score"]
    assert scores[0] != scores[1]
    assert grid.best_score_ == scores.max()
    units = grid.best_params_["hidden_units"][0]
    assert grid.best_estimator_.model_.state_dict()["layers.0.weight"].shape == (units, 784)


def test_early_stopping_uses_a_validation_split(digits):
    x, y = digits
    clf = MLPClassifier(hidden_units=(32,), epochs=30, early_stopping=True, patience=1, learning_rate=0.01).fit(x, y)
    assert len(clf.history_) < 30 and clf.history_.restored and clf.history_.kept_epoch < len(clf.history_)


def test_bad_input_is_a_value_error():
    with pytest.raises(ValueError, match="NaN"):
        MLPClassifier().fit(np.array([[np.nan, 1.0], [0.0, 1.0]]), [0, 1])
    with pytest.raises(ValueError, match="two classes"):
        MLPClassifier().fit(np.zeros((4, 2)), [1, 1, 1, 1])
