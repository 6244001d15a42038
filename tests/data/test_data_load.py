"""Loading named datasets from real files: the tutorial's numbers, where files are found, the cache."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from mlplab.data import Dataset, get_spec, list_datasets, load_data, load_dataset
from mlplab.data.locate import candidate_dirs, locate
from mlplab.errors import DataError

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
FASHION = Path("/usr/share/datasets/fashion-mnist")


def test_mnist_as_the_tutorial_sees_it(mnist: Dataset, mnist_dir: Path):
    assert mnist.name == "mnist"
    assert mnist.x_train.shape == (60_000, 28, 28) and mnist.x_train.dtype == np.uint8
    assert mnist.y_train.shape == (60_000,) and mnist.y_train.dtype == np.int64
    assert mnist.x_test.shape == (10_000, 28, 28) and mnist.y_test.shape == (10_000,)
    assert int(mnist.y_train[0]) == 5
    assert round(float(mnist.x_train[0].mean()), 6) == 35.108418
    assert mnist.class_counts("train") == MNIST_TRAIN_COUNTS
    assert mnist.class_names == tuple("0123456789")
    assert (mnist.num_classes, mnist.image_shape, mnist.num_features) == (10, (28, 28), 784)
    assert mnist.source == f"{mnist_dir} (verified sha256)"


def test_load_data_is_keras_shaped(data_dir):
    (x_train, y_train), (x_test, y_test) = load_data("mnist", data_dir=data_dir)
    assert x_train.shape == (60_000, 28, 28) and y_test.shape == (10_000,)


def test_second_load_is_fast_and_cached_outside_the_data(mnist, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MLPLAB_CACHE_DIR", str(tmp_path / "cache"))
    load_dataset("mnist", data_dir=data_dir)  # first read: decodes and fills this fresh cache
    timings = []
    for _ in range(3):  # best of three: the machine may be busy with other work
        start = time.perf_counter()
        again = load_dataset("mnist", data_dir=data_dir)
        timings.append(time.perf_counter() - start)
    assert min(timings) < 1.0, timings
    np.testing.assert_array_equal(again.x_train, mnist.x_train)
    assert len(list((tmp_path / "cache" / "decoded").glob("*.npy"))) == 4
    assert not list(data_dir.rglob("*.npy"))


def test_changed_file_misses_the_decoded_cache(mnist_dir, tmp_path, idx):
    """The cache is keyed by the file's digest: a replaced file is read (and checked) afresh."""
    shutil.copytree(mnist_dir, tmp_path / "mnist")
    load_dataset("mnist", data_dir=tmp_path)
    path = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-8] + b"\0" * 8)  # gzip trailer (CRC, size) damaged
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz"):
        load_dataset("mnist", data_dir=tmp_path)


def test_subset_takes_the_first_samples(mnist: Dataset):
    small = mnist.subset(train=100, test=10)
    assert len(small.y_train) == 100 and len(small.y_test) == 10
    np.testing.assert_array_equal(small.x_train, mnist.x_train[:100])
    assert small.num_classes == 10 and "first 100 train" in small.source
    assert len(mnist.subset(test=5).y_train) == 60_000
    with pytest.raises(ValueError, match="-1"):
        mnist.subset(train=-1)


def test_gunzipped_files_are_accepted(mnist_dir, tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for gz in mnist_dir.glob("t10k-*.gz"):
        shutil.copy(gz, folder / gz.name)
    import gzip

    for gz in mnist_dir.glob("train-*.gz"):
        (folder / gz.name[:-3]).write_bytes(gzip.decompress(gz.read_bytes()))
    ds = load_dataset("mnist", data_dir=tmp_path, download=False)
    assert ds.source.endswith("(verified sha256)") and int(ds.y_train[0]) == 5


def test_search_order(tmp_path, monkeypatch, mnist_dir):
    env_dir, arg_dir, cache = tmp_path / "env", tmp_path / "arg", tmp_path / "cache"
    monkeypatch.setenv("MLPLAB_DATA_DIR", str(env_dir))
    monkeypatch.setenv("MLPLAB_CACHE_DIR", str(cache))
    spec = get_spec("mnist")
    assert [origin for origin, _ in candidate_dirs("mnist", arg_dir)][:2] == ["--data-dir", "cache"]
    assert [origin for origin, _ in candidate_dirs("mnist")][:2] == ["MLPLAB_DATA_DIR", "cache"]
    assert candidate_dirs("mnist")[-1][0] == "system"
    assert locate(spec) is None
    shutil.copytree(mnist_dir, cache / "mnist")
    assert locate(spec).origin == "cache"
    shutil.copytree(mnist_dir, env_dir / "mnist")
    assert locate(spec).origin == "MLPLAB_DATA_DIR"
    shutil.copytree(mnist_dir, arg_dir / "mnist")
    assert locate(spec, arg_dir).path == arg_dir / "mnist"


def test_incomplete_folder_is_skipped(tmp_path, monkeypatch, mnist_dir):
    monkeypatch.setenv("MLPLAB_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "data" / "mnist").mkdir(parents=True)
    shutil.copy(mnist_dir / "t10k-labels-idx1-ubyte.gz", tmp_path / "data" / "mnist")
    assert locate(get_spec("mnist"), tmp_path / "data") is None


def test_not_found_without_download_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("MLPLAB_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataError) as err:
        load_dataset("kmnist", data_dir=tmp_path / "nothing", download=False)
    message = str(err.value)
    assert "dataset kmnist not found" in message
    assert str(tmp_path / "nothing" / "kmnist") in message and str(tmp_path / "cache" / "kmnist") in message
    assert "mlplab data fetch kmnist" in message and "t10k-labels-idx1-ubyte.gz" in message


@pytest.mark.parametrize("name", ["cifar10", "", "npz:"])
def test_bad_names(name):
    with pytest.raises(DataError):
        load_dataset(name)


def test_names_are_forgiving():
    assert get_spec("MNIST").name == "mnist"
    assert get_spec("fashion_mnist").name == "fashion-mnist"


def test_list_datasets(data_dir):
    entries = {e.name: e for e in list_datasets(data_dir)}
    assert set(entries) == {"mnist", "fashion-mnist", "kmnist"}
    assert entries["mnist"].found and entries["mnist"].location.origin == "--data-dir"
    assert all(e.spec.num_classes == 10 for e in entries.values())


@pytest.mark.skipif(not FASHION.is_dir(), reason=f"{FASHION} missing: apt-get install -y dataset-fashion-mnist")
def test_fashion_mnist_from_the_debian_package(tmp_path):
    ds = load_dataset("fashion-mnist", data_dir=tmp_path)  # nothing there: falls through to the system folder
    assert ds.source == f"{FASHION} (verified sha256)"
    assert ds.x_train.shape == (60_000, 28, 28) and ds.x_test.shape == (10_000, 28, 28)
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"
    assert ds.class_counts("train") == [6000] * 10 and ds.class_counts("test") == [1000] * 10
