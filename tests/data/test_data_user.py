"""The user's own data: idx:DIR, npz:FILE and folder:DIR, good and broken."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mlplab.data import load_dataset
from mlplab.errors import DataError


def test_idx_folder(idx, tmp_path):
    arrays = idx.arrays(train=12, test=6, classes=3)
    idx.write_dir(tmp_path, arrays)
    ds = load_dataset(f"idx:{tmp_path}")
    assert ds.name == f"idx:{tmp_path}" and ds.class_names == ("0", "1", "2")
    np.testing.assert_array_equal(ds.x_test, arrays["test_images"])
    assert ds.y_train.dtype == np.int64 and "structure checked" in ds.source
    (tmp_path / "classes.txt").write_text("cat\ndog\nemu\nfox\n")
    assert load_dataset(f"idx:{tmp_path}").class_names == ("cat", "dog", "emu", "fox")


def test_idx_folder_count_mismatch(idx, tmp_path):
    arrays = idx.arrays(train=12, test=6)
    arrays["train_labels"] = arrays["train_labels"][:11]
    idx.write_dir(tmp_path, arrays)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz holds 12 images but .*train-labels-idx1-ubyte\.gz holds 11 labels"):
        load_dataset(f"idx:{tmp_path}")


def test_idx_folder_label_out_of_range(idx, tmp_path):
    arrays = idx.arrays(train=12, test=6, classes=3)
    arrays["test_labels"][4] = 7
    idx.write_dir(tmp_path, arrays)
    (tmp_path / "classes.txt").write_text("a\nb\nc\n")
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: label 7 at index 4 is out of range .*3 classes"):
        load_dataset(f"idx:{tmp_path}")


def test_idx_folder_wrong_kind_of_file(idx, tmp_path):
    arrays = idx.arrays()
    arrays["train_labels"] = arrays["train_images"]  # an images file where the labels belong
    idx.write_dir(tmp_path, arrays)
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: expected uint8 labels of 1 dimension"):
        load_dataset(f"idx:{tmp_path}")


def test_idx_folder_missing_files(tmp_path):
    with pytest.raises(DataError, match="missing train-images-idx3-ubyte.gz"):
        load_dataset(f"idx:{tmp_path}")
    with pytest.raises(DataError, match="not a folder"):
        load_dataset(f"idx:{tmp_path / 'nope'}")


def keras_like(n_train=10, n_test=4, size=6):
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (n_train, size, size), dtype=np.uint8),
        "y_train": np.arange(n_train) % 2,
        "x_test": rng.integers(0, 256, (n_test, size, size), dtype=np.uint8),
        "y_test": np.arange(n_test) % 2,
    }


def test_npz(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, **keras_like(), class_names=np.array(["even", "odd"]))
    ds = load_dataset(f"npz:{path}")
    assert ds.image_shape == (6, 6) and ds.num_features == 36 and ds.class_names == ("even", "odd")
    assert ds.y_train.dtype == np.int64


def test_npz_with_a_pickled_object_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    arrays = keras_like()
    arrays["y_train"] = np.array([object()] * 10, dtype=object)
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=r"evil\.npz: y_train is an array of Python objects.*refused"):
        load_dataset(f"npz:{path}")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda a: a.pop("y_test"), "missing y_test"),
        (lambda a: a.update(x_train=a["x_train"] / 255.0), "pixels must be integers 0-255"),
        (lambda a: a.update(x_train=a["x_train"].astype(np.int32) * 2), "pixel values must lie in 0-255"),
        (lambda a: a.update(y_train=np.eye(2)[a["y_train"]]), "labels must be a 1-D array"),
        (lambda a: a.update(y_test=a["y_test"][:3]), "holds 4 images but .* holds 3 labels"),
        (lambda a: a.update(x_test=np.zeros((4, 5, 5), np.uint8)), "train images are"),
    ],
)
def test_npz_problems(tmp_path, change, problem):
    arrays = keras_like()
    change(arrays)
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(DataError, match=problem):
        load_dataset(f"npz:{tmp_path / 'd.npz'}")


def test_npz_not_an_archive(tmp_path):
    (tmp_path / "x.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable .npz archive"):
        load_dataset(f"npz:{tmp_path / 'x.npz'}")
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(DataError, match="holds a single array"):
        load_dataset(f"npz:{tmp_path / 'one.npy'}")
    with pytest.raises(DataError, match="file not found"):
        load_dataset(f"npz:{tmp_path / 'none.npz'}")


def write_images(folder, classes, per_class, size=(40, 30), mode="RGB"):
    for k, cls in enumerate(classes):
        (folder / cls).mkdir(parents=True)
        for i in range(per_class):
            Image.new(mode, size, color=(k * 60,) * len(mode)).save(folder / cls / f"{i:02d}.png")


def test_image_folder_with_train_and_test(tmp_path):
    write_images(tmp_path / "train", ["cat", "dog"], 3)
    write_images(tmp_path / "test", ["dog"], 2)
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.class_names == ("cat", "dog") and ds.x_train.shape == (6, 28, 28) and ds.x_train.dtype == np.uint8
    assert ds.y_test.tolist() == [1, 1] and ds.class_counts("train") == [3, 3]
    assert int(ds.x_train[3].mean()) == 60  # grayscale of the colour the 'dog' images were filled with


def test_image_folder_without_split_is_split_stratified_and_seeded(tmp_path):
    write_images(tmp_path, ["a", "b"], 10, mode="L")
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.class_counts("test") == [2, 2] and ds.class_counts("train") == [8, 8]
    assert "stratified 20% split, seed 0" in ds.source
    np.testing.assert_array_equal(load_dataset(f"folder:{tmp_path}").y_test, ds.y_test)


def test_image_folder_problems(tmp_path):
    with pytest.raises(DataError, match="no class sub-folders"):
        load_dataset(f"folder:{tmp_path}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: no images"):
        load_dataset(f"folder:{tmp_path}")
    (tmp_path / "empty" / "x.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"x\.png: not a readable image"):
        load_dataset(f"folder:{tmp_path}")
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match="has train/ but not the other"):
        load_dataset(f"folder:{tmp_path}")
