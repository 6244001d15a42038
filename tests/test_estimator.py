"""MLPClassifier behaves as a scikit-learn estimator (check_estimator) and learns real digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is in the test extras")
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from mlplab import MLPClassifier  # noqa: E402

# Every check of the installed scikit-learn passes. A check that cannot pass would be listed
# here, with the reason, as {check name: reason}.
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


@parametrize_with_checks(
    # Small and quick, yet enough epochs to pass check_classifiers_train's accuracy bar on blobs;
    # one thread, so that refits are bit-identical (check_fit_idempotent) whatever the load.
    [MLPClassifier(hidden_units=(16,), epochs=20, learning_rate=0.01, batch_size=32, threads=1)],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS,
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits(mnist):
    x = mnist.x_train[:3000].reshape(3000, -1)
    y = mnist.y_train[:3000]
    return x, y


def test_params_round_trip_and_clone():
    clf = MLPClassifier(hidden_units=(32,), epochs=2, dropout=0.1, random_state=3)
    params = clf.get_params()
    assert params["hidden_units"] == (32,) and params["epochs"] == 2 and params["random_state"] == 3
    other = clone(clf).set_params(epochs=5)
    assert other.epochs == 5 and clf.epochs == 2


def test_learns_digits_with_string_labels(digits):
    x, y = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    clf = MLPClassifier(hidden_units=(64,), epochs=3, random_state=1).fit(x[:2500], names[y[:2500]])
    proba = clf.predict_proba(x[2500:])
    assert proba.shape == (500, 10) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert set(clf.predict(x[2500:])) <= set(names)
    assert clf.score(x[2500:], names[y[2500:]]) > 0.85
    assert list(clf.classes_) == sorted(names)


def test_integer_labels_come_back_as_given(digits):
    x, y = digits
    keep = np.isin(y, [3, 7, 9])
    labels = y[keep] * 10  # 30, 70, 90: not 0..k-1
    clf = MLPClassifier(hidden_units=(32,), epochs=3).fit(x[keep], labels)
    assert list(clf.classes_) == [30, 70, 90]
    assert set(clf.predict(x[keep][:50])) <= {30, 70, 90}


def test_image_stacks_are_flattened_and_scaled(mnist):
    images, labels = mnist.x_train[:2500], mnist.y_train[:2500]  # N×28×28 uint8, as load_data returns them
    clf = MLPClassifier(hidden_units=(64,), epochs=3, threads=1).fit(images[:2000], labels[:2000])
    assert clf.n_features_in_ == 784
    assert clf.score(images[2000:], labels[2000:]) > 0.85
    flat = images[2000:].reshape(500, -1)
    np.testing.assert_array_equal(clf.predict_proba(flat), clf.predict_proba(images[2000:]))


def test_dataframes_keep_their_column_names(digits):
    pd = pytest.importorskip("pandas", reason="pandas is in the test extras")
    x, y = digits
    frame = pd.DataFrame(x[:1000] / 255.0, columns=[f"px{i}" for i in range(784)])
    clf = MLPClassifier(hidden_units=(32,), epochs=3).fit(frame, pd.Series(y[:1000]))
    assert list(clf.feature_names_in_[:2]) == ["px0", "px1"] and clf.n_features_in_ == 784
    assert clf.predict(frame.iloc[:10]).shape == (10,)
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(frame.rename(columns={"px0": "other"}))


def test_sklearn_names_for_what_training_did(digits):
    x, y = digits
    clf = MLPClassifier(hidden_units=(32,), epochs=30, early_stopping=True, patience=1, learning_rate=0.01).fit(x, y)
    assert clf.n_iter_ == len(clf.history_) == len(clf.loss_curve_) == len(clf.validation_scores_) < 30
    assert clf.best_validation_score_ == max(clf.validation_scores_) and clf.best_loss_ is None
    assert clf.loss_curve_ == clf.history_.history["loss"]
    plain = MLPClassifier(hidden_units=(16,), epochs=2).fit(x[:500], y[:500])
    assert plain.n_iter_ == 2 and plain.validation_scores_ is None and plain.best_loss_ == min(plain.loss_curve_)


def test_random_state_makes_fits_repeatable(digits):
    x, y = digits
    a, b, c = (MLPClassifier(hidden_units=(16,), epochs=1, threads=1, random_state=s).fit(x[:500], y[:500])
               for s in (7, 7, None))
    np.testing.assert_array_equal(a.predict_proba(x[:50]), b.predict_proba(x[:50]))
    assert not np.array_equal(a.predict_proba(x[:50]), c.predict_proba(x[:50]))


def test_fit_leaves_torchs_thread_setting_alone(digits):
    x, y = digits
    before = torch.get_num_threads()
    clf = MLPClassifier(hidden_units=(8,), epochs=1, threads=1).fit(x[:200], y[:200])
    clf.predict(x[:10])
    assert torch.get_num_threads() == before and clf.threads_ == 1


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
    x = np.random.default_rng(0).random((20, 4))
    y = np.arange(20) % 2
    with pytest.raises(NotFittedError):
        MLPClassifier().predict(x)
    with pytest.raises(ValueError, match="NaN"):
        MLPClassifier().fit(np.array([[np.nan, 1.0], [0.0, 1.0]]), [0, 1])
    with pytest.raises(ValueError, match="two classes"):
        MLPClassifier().fit(np.zeros((4, 2)), [1, 1, 1, 1])
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        MLPClassifier().fit(x, np.linspace(0, 1, 20))  # a regression target, not 20 classes
    with pytest.raises(ValueError, match="NaN"):
        MLPClassifier().fit(x, np.where(y == 0, np.nan, 1.0))
    with pytest.raises(ValueError, match="hidden_units must be whole numbers of units, got 12.5"):
        MLPClassifier(hidden_units=(12.5,)).fit(x, y)
    with pytest.raises(ValueError, match="hidden_units must be positive, got 0"):
        MLPClassifier(hidden_units=(8, 0)).fit(x, y)
    fitted = MLPClassifier(hidden_units=(4,), epochs=1, threads=1).fit(x, y)
    with pytest.raises(ValueError, match="X has 6 features, but MLPClassifier is expecting 4 features"):
        fitted.predict(np.zeros((3, 6)))
    assert MLPClassifier(hidden_units=5, epochs=1, threads=1).fit(x, y).model_.spec.dense_units == [5]
