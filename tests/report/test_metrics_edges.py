"""Per-class metrics, confused pairs and confident mistakes at their edges: absent classes,
single examples, ties (broken by position, stably) and the default sizes."""

from __future__ import annotations

import warnings

import numpy as np

from mlplab.report import metrics


def test_absent_and_single_example_classes():
    # class 0: 2 examples, both right; class 1: one example, predicted once, right;
    # class 2: never occurs and never predicted; class 3: never occurs, predicted once (wrongly)
    y = np.array([0, 0, 1, 4, 4])
    pred = np.array([0, 0, 1, 3, 4])
    cm = metrics.confusion_matrix(y, pred, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 0/0 for the empty classes must not warn
        got = metrics.per_class(cm)
    np.testing.assert_array_equal(got["precision"], [1.0, 1.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(got["recall"], [1.0, 1.0, 0.0, 0.0, 0.5])
    np.testing.assert_allclose(got["f1"], [1.0, 1.0, 0.0, 0.0, 2 / 3])
    np.testing.assert_array_equal(got["support"], [2, 1, 0, 0, 2])
    assert got["support"].dtype == np.int64 and got["precision"].dtype == np.float64


def test_most_confused_pairs_break_ties_by_position_and_default_to_five():
    off = np.ones((12, 12), dtype=np.int64)
    np.fill_diagonal(off, 7)
    pairs = metrics.most_confused_pairs(off, k=200)
    assert pairs == [(i, j, 1) for i in range(12) for j in range(12) if i != j]  # row by row
    cm = np.zeros((4, 4), dtype=np.int64)
    cm[0, 1], cm[1, 0], cm[2, 3], cm[3, 2], cm[1, 2], cm[2, 1], cm[0, 3] = 9, 8, 7, 6, 5, 4, 3
    assert metrics.most_confused_pairs(cm) == [(0, 1, 9), (1, 0, 8), (2, 3, 7), (3, 2, 6), (1, 2, 5)]


def test_confident_mistakes_break_ties_by_position_and_default_to_sixteen():
    rng = np.random.default_rng(0)
    n = 60
    y = np.zeros(n, dtype=np.int64)
    top = rng.choice([0.6, 0.7, 0.9], size=n)
    probs = np.stack([1 - top, top], axis=1)  # every prediction is class 1: all wrong
    got = metrics.confident_mistakes(y, probs, k=n)
    expected = sorted(range(n), key=lambda i: (-top[i], i))
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(metrics.confident_mistakes(y, probs), expected[:16])


def test_confusion_matrix_takes_any_integer_or_float_labels():
    # uint8 labels (as IDX files hold them) with many classes: true * classes must not wrap around
    y = np.array([29, 0, 29, 15], dtype=np.uint8)
    pred = np.array([29, 29, 0, 15], dtype=np.uint8)
    cm = metrics.confusion_matrix(y, pred, 30)
    assert cm.shape == (30, 30) and cm[29, 29] == 1 and cm[0, 29] == 1 and cm[29, 0] == 1 and cm[15, 15] == 1
    assert cm.sum() == 4
    # labels read as floats (a CSV column) are counted as the integers they hold
    cm = metrics.confusion_matrix([0.0, 1.0, 1.0], np.array([1.0, 1.0, 0.0]), 2)
    np.testing.assert_array_equal(cm, [[0, 1], [1, 1]])
    # the last classes never occur: the matrix is still classes x classes
    np.testing.assert_array_equal(metrics.confusion_matrix([0, 1], [1, 1], 4), [[0, 1, 0, 0], [0, 1, 0, 0], [0] * 4, [0] * 4])


def test_f1_is_the_harmonic_mean_even_when_precision_and_recall_are_low():
    # class 0: predicted twice (once right), occurs twice: precision = recall = f1 = 0.5
    cm = metrics.confusion_matrix([0, 0, 1, 1], [0, 1, 0, 1], 2)
    got = metrics.per_class(cm)
    np.testing.assert_array_equal(got["f1"], [0.5, 0.5])
    cm = metrics.confusion_matrix([0, 0, 0, 1], [0, 1, 1, 1], 2)  # class 0: p = 1, r = 1/3 -> f1 = 0.5
    np.testing.assert_allclose(metrics.per_class(cm)["f1"], [0.5, 0.5])
