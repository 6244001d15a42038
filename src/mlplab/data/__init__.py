"""Datasets: the MNIST family by name (found, verified, downloaded, cached) and the user's own data.

    >>> from mlplab.data import load_data, load_dataset
    >>> (x_train, y_train), (x_test, y_test) = load_data("mnist")   # like keras.datasets.mnist
    >>> ds = load_dataset("fashion-mnist")                          # arrays + class names + provenance

Modules: ``registry`` (names, files, mirrors, checksums, classes), ``idx`` (strict IDX reading),
``locate`` (where files are looked for), ``download`` (verified fetching), ``cache`` (decoded
arrays), ``user`` (idx:/npz:/folder: data), ``preprocess`` (flatten, scale, one-hot, split).
"""

from __future__ import annotations

from mlplab.data.dataset import Dataset
from mlplab.data.download import fetch_dataset
from mlplab.data.load import DatasetEntry, list_datasets, load_data, load_dataset
from mlplab.data.registry import REGISTRY, DatasetSpec, get_spec

__all__ = [
    "Dataset",
    "DatasetEntry",
    "DatasetSpec",
    "REGISTRY",
    "fetch_dataset",
    "get_spec",
    "list_datasets",
    "load_data",
    "load_dataset",
]
