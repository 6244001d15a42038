"""The accuracy-vs-cost Pareto front: exactly the points no other point weakly dominates."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mlplab.report.metrics import pareto_front


def test_same_cost_and_lower_accuracy_is_dominated():
    assert pareto_front([2, 2], [0.9, 0.8]) == [0]
    assert pareto_front([2, 2], [0.8, 0.9]) == [1]


def test_same_accuracy_and_higher_cost_is_dominated():
    assert pareto_front([1, 3], [0.9, 0.9]) == [0]
    assert pareto_front([3, 1], [0.9, 0.9]) == [1]


def test_identical_points_are_both_kept():
    assert pareto_front([1, 1, 2], [0.9, 0.9, 0.8]) == [0, 1]


def test_front_is_ordered_by_cost_then_best_score():
    costs = [10, 1, 4, 12, 5, 10]
    scores = [0.98, 0.90, 0.95, 0.97, 0.93, 0.98]
    assert pareto_front(costs, scores) == [1, 2, 0, 5]
    assert pareto_front([], []) == []


def _brute_force(costs, scores):
    n = len(costs)
    keep = [
        i for i in range(n)
        if not any(
            costs[j] <= costs[i] and scores[j] >= scores[i] and (costs[j] < costs[i] or scores[j] > scores[i])
            for j in range(n)
        )
    ]
    return sorted(keep, key=lambda i: (costs[i], -scores[i], i))


points = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(points)
def test_matches_the_definition_on_small_grids(pts):
    """Small integer grids make ties in cost, in score and in both common."""
    costs = [c for c, _ in pts]
    scores = [s / 6 for _, s in pts]
    front = pareto_front(costs, scores)
    assert front == _brute_force(costs, scores)
    # no point on the front beats another point on the front
    for i in front:
        for j in front:
            assert not (costs[j] <= costs[i] and scores[j] >= scores[i] and (costs[j], scores[j]) != (costs[i], scores[i]))
    assert all(isinstance(i, int) for i in front) and np.all(np.diff([costs[i] for i in front]) >= 0)
