"""What a run leaves behind, field by field (issue 15): the data `prepare_data` hands to training,
what run.json, metrics.json and model.json say for each way a run ends, what a refit keeps and what
a resume restores.

The pure steps run on a synthetic dataset; the runs train a 16-unit model on 300 MNIST images for
one to three epochs (a fraction of a second each).
"""

from __future__ import annotations

import io
import json
import re
import time

import numpy as np
import pytest

from mlplab.config import config_from_dict, load_config
from mlplab.data import Dataset
from mlplab.data.preprocess import flatten_scale, train_val_split
from mlplab.errors import ConfigError
from mlplab.model.flops import training_flops
from mlplab.runs import StopCause, evaluate_run, prepare_data, resume_run, train_run
from mlplab.runs.lifecycle import config_changes
from mlplab.safeio import load_tensors

LIMIT = 300
UTC_SECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")  # an ISO time in UTC, to the second


def tiny(**training):
    return config_from_dict({
        "name": "tiny",
        "model": {"layers": [{"type": "dense", "units": 16, "activation": "relu"}]},
        "training": {"batch_size": 50, "epochs": 2, "seed": 0, "validation_split": 0.2,
                     "optimizer": {"name": "adam", "learning_rate": 0.001}, **training},
    })


def read(path):
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def data(data_dir):
    from mlplab.data import load_dataset

    return load_dataset("mnist", data_dir=data_dir, download=False).subset(LIMIT, LIMIT)


# --- prepare_data: what training sees ------------------------------------------------------------


def toy(n_train=20, n_test=6):
    rng = np.random.default_rng(0)
    return Dataset("toy", rng.integers(0, 256, (n_train, 2, 3), dtype=np.uint8), np.arange(n_train) % 2,
                   rng.integers(0, 256, (n_test, 2, 3), dtype=np.uint8), np.arange(n_test) % 2, ("a", "b"), "made here")


def same(a, b):
    return a[0].dtype == b[0].dtype and a[1].dtype == b[1].dtype and np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_prepare_data_scales_splits_and_says_which_data_validates():
    dataset = toy()
    test = (flatten_scale(dataset.x_test), dataset.y_test)
    x_tr, y_tr, x_val, y_val = train_val_split(dataset.x_train, dataset.y_train, val_fraction=0.25, seed=3)

    held_out = prepare_data(dataset, 0.25, 3)  # the seeded, stratified split of the training images
    assert held_out.validate_on == "val"
    assert same(held_out.train, (flatten_scale(x_tr), y_tr)) and same(held_out.validation, (flatten_scale(x_val), y_val))
    assert len(held_out.validation[1]) == 5 and held_out.train[0].dtype == np.float32
    assert same(held_out.test, test)
    assert not same(prepare_data(dataset, 0.25, 4).validation, held_out.validation)  # another seed, another split

    on_test = prepare_data(dataset, 0.25, 3, "test")  # every training image trains; the test set validates
    assert on_test.validate_on == "test"
    assert same(on_test.train, (flatten_scale(dataset.x_train), dataset.y_train))
    assert same(on_test.validation, test) and same(on_test.test, test)

    unvalidated = prepare_data(dataset, 0.0, 3)
    assert unvalidated.validate_on == "none" and unvalidated.validation is None
    assert same(unvalidated.train, (flatten_scale(dataset.x_train), dataset.y_train)) and same(unvalidated.test, test)


@pytest.mark.parametrize(("dataset", "split", "validate_on", "message"), [
    (toy(n_test=0), 0.1, "val", "toy: the test set is empty"),
    (toy(), 0.1, "bogus", "validate_on must be val or test, got 'bogus'"),
    (toy(n_train=3), 0.1, "val", "toy: 3 training images are too few for a validation split of 0.1 (none would be "
                                 "held out); use more images (a larger --limit)"),
    (toy(n_train=1), 0.9, "val", "toy: val_fraction=0.9 of 1 samples leaves none for training"),
])
def test_prepare_data_refuses_data_too_small_in_one_line(dataset, split, validate_on, message):
    with pytest.raises(ConfigError) as caught:
        prepare_data(dataset, split, 0, validate_on)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


@pytest.mark.parametrize(("split", "validate_on"), [(0.1, "test"), (0.0, "val"), (0.1, "val")])
def test_a_dataset_without_training_images_is_a_config_error(split, validate_on):
    """Before: NumPy's "cannot reshape array of size 0" where nothing was split off (a `Dataset`
    passed to train_run, such as `mnist.subset(0, 100)`): the check came after the scaling."""
    with pytest.raises(ConfigError, match="^toy: the training set is empty$"):
        prepare_data(toy(n_train=0), split, 0, validate_on)


def test_prepare_data_accepts_the_smallest_data_that_can_train():
    assert len(prepare_data(toy(n_train=2), 0.5, 0).validation[1]) == 1  # one image held out, one to train
    assert len(prepare_data(toy(n_train=1, n_test=1), 0.0, 0, "test").train[1]) == 1


# --- resume's refusal of an edited config names each change --------------------------------------


def test_config_changes_names_each_changed_added_and_removed_key():
    before = {"model": {"layers": [{"units": 32}, {"units": 10}]}, "training": {"learning_rate": 0.001, "tags": []}}
    after = {"model": {"layers": [{"units": 48}]}, "training": {"learning_rate": 0.001, "refit": True}}
    assert config_changes(before, after) == [
        "model.layers[0].units: 32 -> 48",
        "model.layers[1].units: 10 -> '(unset)'",
        "training.refit: '(unset)' -> True",
        "training.tags: [] -> '(unset)'",
    ]
    assert config_changes(after, after) == [] and config_changes(before, json.loads(json.dumps(before))) == []
