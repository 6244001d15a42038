"""Preprocessing as the tutorial does it, and the validation split carved from training data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlplab.data.preprocess import flatten_scale, one_hot, train_val_split


def test_flatten_scale():
    images = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    out = flatten_scale(images)
    assert out.dtype == np.float32 and out.shape == (1, 4)
    np.testing.assert_array_equal(out, np.array([[0, 255, 51, 102]], dtype=np.float32) / np.float32(255))
    assert out.min() == 0.0 and out.max() == 1.0


def test_flatten_scale_of_no_images_is_an_empty_table_of_the_right_width():
    out = flatten_scale(np.zeros((0, 28, 28), np.uint8))  # e.g. a slice that selects nothing
    assert out.shape == (0, 784) and out.dtype == np.float32


@pytest.mark.parametrize("bad", [np.zeros((2, 3, 3), np.float32), np.zeros((4, 9), np.uint8)])
def test_flatten_scale_refuses_what_is_not_raw_images(bad):
    with pytest.raises(ValueError, match=str(bad.dtype) if bad.dtype != np.uint8 else r"\(4, 9\)"):
        flatten_scale(bad)


def test_flatten_scale_on_mnist(mnist):
    x = flatten_scale(mnist.x_train[:1000])
    assert x.shape == (1000, 784) and abs(float(x[0].mean()) * 255 - 35.108418) < 1e-3


def test_one_hot():
    out = one_hot(np.array([0, 2, 1]), 3)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.eye(3, dtype=np.float32)[[0, 2, 1]])
    assert one_hot(np.array([], dtype=np.int64), 4).shape == (0, 4)


@pytest.mark.parametrize(("labels", "classes", "message"), [
    ([0, 3], 3, "label 3 at index 1"),
    ([-1, 0], 3, "label -1 at index 0"),
    ([0, 1], 0, "num_classes must be a positive integer, got 0"),
    ([0.5], 2, "integers"),
])
def test_one_hot_refuses(labels, classes, message):
    with pytest.raises(ValueError, match=message):
        one_hot(np.array(labels), classes)


def test_split_is_stratified_deterministic_and_disjoint():
    y = np.repeat(np.arange(4), [100, 50, 30, 20])
    x = np.arange(len(y))
    x_tr, y_tr, x_val, y_val = train_val_split(x, y, val_fraction=0.1, seed=3)
    assert len(x_val) == 20 and len(x_tr) == 180
    assert np.bincount(y_val).tolist() == [10, 5, 3, 2]
    assert sorted(np.concatenate([x_tr, x_val]).tolist()) == x.tolist()
    assert (y[x_tr] == y_tr).all() and (y[x_val] == y_val).all()
    again = train_val_split(x, y, val_fraction=0.1, seed=3)
    np.testing.assert_array_equal(again[2], x_val)
    assert not np.array_equal(train_val_split(x, y, val_fraction=0.1, seed=4)[2], x_val)


def test_split_of_mnist_keeps_class_shares(mnist):
    _, y_tr, _, y_val = train_val_split(mnist.x_train, mnist.y_train, val_fraction=0.1, seed=0)
    assert len(y_val) == 6000 and len(y_tr) == 54_000
    shares = np.bincount(y_val, minlength=10) / np.bincount(mnist.y_train, minlength=10)
    assert np.allclose(shares, 0.1, atol=0.001)


def test_split_zero_and_unstratified():
    x, y = np.zeros((10, 2, 2), np.uint8), np.arange(10) % 2
    x_tr, y_tr, x_val, y_val = train_val_split(x, y, val_fraction=0)
    assert x_val.shape == (0, 2, 2) and y_val.shape == (0,) and len(x_tr) == 10
    assert len(train_val_split(x, y, val_fraction=0.3, stratify=False)[3]) == 3


@pytest.mark.parametrize("fraction", [1, 1.5, -0.1, "0.1", None, True])
def test_split_refuses_fractions_outside_zero_one(fraction):
    with pytest.raises(ValueError, match=f"val_fraction must be a number in \\[0, 1\\), got {fraction!r}"):
        train_val_split(np.zeros(10), np.zeros(10, int), val_fraction=fraction)


def test_split_refuses_mismatched_or_exhausting_inputs():
    with pytest.raises(ValueError, match="same number of samples"):
        train_val_split(np.zeros(10), np.zeros(9, int))
    with pytest.raises(ValueError, match="leaves none for training"):
        train_val_split(np.zeros(1), np.zeros(1, int), val_fraction=0.6)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(0, 5), min_size=2, max_size=200),
    st.floats(0, 0.9),
    st.integers(0, 2**32 - 1),
    st.booleans(),
)
def test_split_sizes_property(labels, fraction, seed, stratify):
    y = np.array(labels)
    x = np.arange(len(y))
    expected = int(np.floor(len(y) * fraction + 0.5))
    if expected >= len(y):
        return
    x_tr, y_tr, x_val, y_val = train_val_split(x, y, fraction, seed, stratify)
    assert len(x_val) == expected and len(x_tr) == len(y) - expected
    assert sorted(np.concatenate([x_tr, x_val]).tolist()) == x.tolist()
    if stratify:  # every class within one sample of its exact share
        exact = np.bincount(y, minlength=6) * expected / len(y)
        assert np.all(np.abs(np.bincount(y_val, minlength=6) - exact) < 1)
