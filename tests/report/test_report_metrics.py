"""Metrics of one model against scikit-learn, and the Pareto front on a hand example."""

from __future__ import annotations

import numpy as np
import pytest

from mlplab.report import metrics

sk = pytest.importorskip("sklearn.metrics")


@pytest.fixture
def labels():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 10, 200)
    pred = np.where(rng.random(200) < 0.8, y, rng.integers(0, 10, 200))
    pred[pred == 7] = 1  # class 7 never predicted: precision undefined → 0
    return y, pred


def test_confusion_matrix_matches_sklearn(labels):
    y, pred = labels
    np.testing.assert_array_equal(metrics.confusion_matrix(y, pred, 10), sk.confusion_matrix(y, pred, labels=range(10)))


def test_precision_recall_f1_match_sklearn(labels):
    y, pred = labels
    got = metrics.per_class(metrics.confusion_matrix(y, pred, 10))
    p, r, f, s = sk.precision_recall_fscore_support(y, pred, labels=range(10), zero_division=0)
    np.testing.assert_allclose(got["precision"], p)
    np.testing.assert_allclose(got["recall"], r)
    np.testing.assert_allclose(got["f1"], f)
    np.testing.assert_array_equal(got["support"], s)


def test_most_confused_pairs():
    cm = np.array([[5, 3, 0], [1, 9, 4], [0, 0, 7]])
    assert metrics.most_confused_pairs(cm, 2) == [(1, 2, 4), (0, 1, 3)]
    assert metrics.most_confused_pairs(cm, 10) == [(1, 2, 4), (0, 1, 3), (1, 0, 1)]


def test_confident_mistakes_most_confident_first():
    y = np.array([0, 1, 2, 0])
    probs = np.array([[0.9, 0.1, 0], [0.7, 0.3, 0], [0.05, 0.95, 0], [0.2, 0.2, 0.6]])
    np.testing.assert_array_equal(metrics.confident_mistakes(y, probs, 5), [2, 1, 3])
    np.testing.assert_array_equal(metrics.confident_mistakes(y, probs, 1), [2])


def test_pareto_front_hand_example():
    # (cost, accuracy): A cheap & weak, B dominated by C, C, D expensive & best, E dominated by D
    costs = [1, 5, 4, 10, 12]
    accs = [0.90, 0.93, 0.95, 0.98, 0.97]
    assert metrics.pareto_front(costs, accs) == [0, 2, 3]


def test_pareto_front_ties():
    assert metrics.pareto_front([1, 1, 2], [0.9, 0.9, 0.8]) == [0, 1]
    assert metrics.pareto_front([3], [0.5]) == [0]
