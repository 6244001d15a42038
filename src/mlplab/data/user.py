"""The user's own data: ``idx:DIR``, ``npz:FILE`` and ``folder:DIR``.

Nothing here is pinned, so everything is checked for structure instead: shapes, dtypes, pixel
and label ranges, matching counts. Class names come from the data where it carries them
(``classes.txt`` in an IDX folder, a ``class_names`` array in an ``.npz``, sub-folder names in an
image folder), else they are the label numbers.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from mlplab.data.dataset import Dataset, assemble
from mlplab.data.locate import files_in
from mlplab.data.preprocess import train_val_split
from mlplab.data.registry import MNIST, ROLES
from mlplab.data.verify import read_dataset_file
from mlplab.errors import DataError

NPZ_KEYS = {"train_images": "x_train", "train_labels": "y_train", "test_images": "x_test", "test_labels": "y_test"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm"}
FOLDER_IMAGE_SIZE = (28, 28)
FOLDER_TEST_FRACTION = 0.2  # used when an image folder has no train/ and test/ sub-folders
FOLDER_SPLIT_SEED = 0


def load_user_data(kind: str, path: Path, name: str) -> Dataset:
    """Dispatch on the prefix of ``name`` (``idx``, ``npz`` or ``folder``)."""
    loader = {"idx": load_idx_dir, "npz": load_npz, "folder": load_image_folder}[kind]
    return loader(path, name)


def _class_names(explicit: list[str] | None, arrays: dict[str, np.ndarray]) -> tuple[str, ...]:
    """The given names, else "0" .. "max label" (at least one class)."""
    if explicit:
        return tuple(explicit)
    top = max((int(arrays[r].max()) for r in ("train_labels", "test_labels") if arrays[r].size), default=0)
    return tuple(str(i) for i in range(max(top, 0) + 1))


def load_idx_dir(path: Path, name: str) -> Dataset:
    """A folder holding the four standard IDX files (``.gz`` or not), and optionally ``classes.txt``."""
    if not path.is_dir():
        raise DataError(f"{path}: not a folder (idx:DIR wants a folder holding the four MNIST-style IDX files)")
    present = files_in(path, MNIST)
    missing = [MNIST.files[r].filename for r in ROLES if r not in present]
    if missing:
        raise DataError(f"{path}: missing {', '.join(missing)} (with or without .gz)")
    arrays = {role: read_dataset_file(present[role], None, role.split("_")[1])[0] for role in ROLES}
    names_file = path / "classes.txt"
    explicit = None
    if names_file.is_file():
        explicit = [line.strip() for line in names_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    return assemble(name, arrays, _class_names(explicit, arrays), f"{path} (IDX files; structure checked)",
                    {role: str(p) for role, p in present.items()})


def load_npz(path: Path, name: str) -> Dataset:
    """A Keras-style ``.npz`` with x_train, y_train, x_test, y_test (and optionally class_names).

    Loaded with ``allow_pickle=False``: an archive holding Python objects is refused, because
    unpickling can run arbitrary code.
    """
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz archive ({exc})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: holds a single array; expected an .npz archive with x_train, y_train, x_test, y_test")
    with archive:
        missing = [key for key in NPZ_KEYS.values() if key not in archive.files]
        if missing:
            raise DataError(f"{path}: missing {', '.join(missing)} (it holds: {', '.join(archive.files) or 'nothing'})")
        arrays = {}
        for role, key in NPZ_KEYS.items():
            raw = _npz_member(archive, path, key)
            arrays[role] = _as_images(raw, f"{path}:{key}") if role.endswith("images") else _as_labels(raw, f"{path}:{key}")
        explicit = None
        if "class_names" in archive.files:
            names = _npz_member(archive, path, "class_names")
            if names.ndim != 1 or names.dtype.kind not in "US":
                raise DataError(f"{path}:class_names must be a 1-D array of strings, got {names.dtype} {names.shape}")
            explicit = [n.decode() if isinstance(n, bytes) else str(n) for n in names.tolist()]
    return assemble(name, arrays, _class_names(explicit, arrays), f"{path} (npz; structure checked)",
                    {role: f"{path}:{key}" for role, key in NPZ_KEYS.items()})


def _npz_member(archive, path: Path, key: str) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DataError(
                f"{path}: {key} is an array of Python objects, which only unpickling could read; refused "
                "(unpickling can run arbitrary code). Save plain numeric arrays, e.g. np.savez(f, x_train=x.astype('uint8'), ...)"
            ) from None
        raise DataError(f"{path}: {key} cannot be read ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: {key} cannot be read ({exc})") from None


def _as_images(array: np.ndarray, where: str) -> np.ndarray:
    """uint8 (N, H, W); accepts (N, H, W, 1) and other integer types holding 0-255."""
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3 or 0 in array.shape[1:]:
        raise DataError(f"{where}: images must have shape (N, height, width), got {array.shape}")
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind not in "iu":
        raise DataError(
            f"{where}: pixels must be integers 0-255 (uint8), got {array.dtype}; if they are scaled to [0, 1], "
            "multiply by 255 and convert to uint8 before saving"
        )
    if array.size and (array.min() < 0 or array.max() > 255):
        raise DataError(f"{where}: pixel values must lie in 0-255, found {array.min()}-{array.max()}")
    return array.astype(np.uint8)


def _as_labels(array: np.ndarray, where: str) -> np.ndarray:
    """int64 (N,) of non-negative integers; accepts a (N, 1) column."""
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise DataError(
            f"{where}: labels must be a 1-D array of class indices, got shape {array.shape} "
            "(one-hot labels? store np.argmax(y, axis=1))"
        )
    if array.dtype.kind not in "iu":
        raise DataError(f"{where}: labels must be integers, got {array.dtype}")
    if array.size and array.min() < 0:
        raise DataError(f"{where}: labels must be non-negative class indices, found {array.min()}")
    return array.astype(np.int64)


def load_image_folder(path: Path, name: str) -> Dataset:
    """One sub-folder of images per class, the folder names being the class names (sorted).

    With ``train/`` and ``test/`` sub-folders, each holds the class folders and gives its split.
    Otherwise the test set is a stratified, seeded 20 % of all images. Images are converted to
    grayscale (alpha ignored) and resized to 28×28; no colour inversion is done (MNIST digits are
    light on dark).
    """
    if not path.is_dir():
        raise DataError(f"{path}: not a folder (folder:DIR wants one sub-folder of images per class)")
    train_dir, test_dir = path / "train", path / "test"
    if train_dir.is_dir() != test_dir.is_dir():
        raise DataError(f"{path}: has {'train' if train_dir.is_dir() else 'test'}/ but not the other; give both or neither")
    if train_dir.is_dir():
        classes = _class_folders(train_dir)
        unknown = sorted(set(_class_folders(test_dir, allow_none=True)) - set(classes))
        if unknown:
            raise DataError(f"{test_dir}: classes {', '.join(unknown)} have no folder in {train_dir}")
        x_train, y_train = _read_images(train_dir, classes, require_each=True)
        x_test, y_test = _read_images(test_dir, classes, require_each=False)
        how = "image folder, train/ and test/"
    else:
        classes = _class_folders(path)
        x, y = _read_images(path, classes, require_each=True)
        x_train, y_train, x_test, y_test = train_val_split(x, y, FOLDER_TEST_FRACTION, seed=FOLDER_SPLIT_SEED)
        how = f"image folder; test = stratified {FOLDER_TEST_FRACTION:.0%} split, seed {FOLDER_SPLIT_SEED}"
    arrays = {"train_images": x_train, "train_labels": y_train, "test_images": x_test, "test_labels": y_test}
    return assemble(name, arrays, tuple(classes), f"{path} ({how})", {r: f"{path} ({r})" for r in ROLES})


def _class_folders(root: Path, allow_none: bool = False) -> list[str]:
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names and not allow_none:
        raise DataError(f"{root}: no class sub-folders (expected one folder of images per class)")
    return names


def _read_images(root: Path, classes: list[str], require_each: bool) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image  # imported here: only image folders need Pillow

    images, labels = [], []
    for label, cls in enumerate(classes):
        folder = root / cls
        files = sorted(
            p for p in (folder.iterdir() if folder.is_dir() else ())
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        )
        if require_each and not files:
            raise DataError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        for file in files:
            try:
                with Image.open(file) as img:
                    gray = img.convert("L")
                    if gray.size != FOLDER_IMAGE_SIZE:
                        gray = gray.resize(FOLDER_IMAGE_SIZE, Image.Resampling.LANCZOS)
                    images.append(np.asarray(gray, dtype=np.uint8))
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                raise DataError(f"{file}: not a readable image ({exc})") from None
            labels.append(label)
    x = np.stack(images) if images else np.zeros((0, *FOLDER_IMAGE_SIZE), dtype=np.uint8)
    return x, np.asarray(labels, dtype=np.int64)
