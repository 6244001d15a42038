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

from mlplab.data.cache import read_npy_header
from mlplab.data.dataset import MAX_CLASSES, Dataset, assemble
from mlplab.data.idx import MAX_IDX_BYTES, check_image_size
from mlplab.data.locate import files_in
from mlplab.data.preprocess import train_val_split
from mlplab.data.registry import MNIST, ROLES
from mlplab.data.verify import read_dataset_file
from mlplab.errors import DataError
from mlplab.safeio import open_regular_file, read_regular_text

NPZ_KEYS = {"train_images": "x_train", "train_labels": "y_train", "test_images": "x_test", "test_labels": "y_test"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm"}
FOLDER_IMAGE_SIZE = (28, 28)
FOLDER_TEST_FRACTION = 0.2  # used when an image folder has no train/ and test/ sub-folders
FOLDER_SPLIT_SEED = 0
MAX_ARRAY_BYTES = MAX_IDX_BYTES  # one array of an .npz, decompressed: the same 1 GiB as an IDX file
MAX_NPZ_BYTES = 4 * MAX_ARRAY_BYTES
MAX_IMAGE_FILE_BYTES = 256 << 20


def load_user_data(kind: str, path: Path, name: str) -> Dataset:
    """Dispatch on the prefix of ``name`` (``idx``, ``npz`` or ``folder``)."""
    loader = {"idx": load_idx_dir, "npz": load_npz, "folder": load_image_folder}[kind]
    _check_utf8(path)
    return loader(path, name)


def _class_names(explicit: list[str] | None, arrays: dict[str, np.ndarray], where: str) -> tuple[str, ...]:
    """The given names, else "0" .. "max label" (at most MAX_CLASSES: checked before any name is made)."""
    if explicit:
        if len(explicit) > MAX_CLASSES:
            raise DataError(f"{where}: {len(explicit)} class names, more than the {MAX_CLASSES} classes a dataset may have")
        return tuple(explicit)
    top = max((int(arrays[r].max()) for r in ("train_labels", "test_labels") if arrays[r].size), default=0)
    if top >= MAX_CLASSES:
        raise DataError(
            f"{where}: label {top} implies {top + 1} classes, more than the {MAX_CLASSES} a dataset may have "
            "(labels are class indices 0, 1, 2, ...)"
        )
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
    if names_file.exists() or names_file.is_symlink():
        text = read_regular_text(names_file, error=DataError)
        explicit = [line.strip() for line in text.splitlines() if line.strip()]
    return assemble(name, arrays, _class_names(explicit, arrays, str(present["train_labels"])), f"{path} (IDX files; structure checked)",
                    {role: str(p) for role, p in present.items()})


def load_npz(path: Path, name: str) -> Dataset:
    """A Keras-style ``.npz`` with x_train, y_train, x_test, y_test (and optionally class_names).

    Read without unpickling: an archive holding Python objects is refused, because unpickling can
    run arbitrary code. Each member's size (in the zip directory) and its ``.npy`` header (shape and
    dtype) are checked before anything is decompressed or allocated, so a tiny archive that claims
    a huge array, or a zip bomb, costs nothing.
    """
    with open_regular_file(path, MAX_NPZ_BYTES, error=DataError) as handle:
        if handle.read(6) == b"\x93NUMPY":
            raise DataError(f"{path}: holds a single array; expected an .npz archive with x_train, y_train, x_test, y_test")
        handle.seek(0)
        try:
            archive = zipfile.ZipFile(handle)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
            raise DataError(f"{path}: not a readable .npz archive ({exc})") from None
        with archive:
            members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
            missing = [key for key in NPZ_KEYS.values() if key not in members]
            if missing:
                raise DataError(f"{path}: missing {', '.join(missing)} (it holds: {', '.join(members) or 'nothing'})")
            arrays = {}
            for role, key in NPZ_KEYS.items():
                images = role.endswith("images")
                raw = _npz_member(archive, members[key], path, key, images=images)
                arrays[role] = _as_images(raw, f"{path}:{key}") if images else _as_labels(raw, f"{path}:{key}")
            explicit = None
            if "class_names" in members:
                names = _npz_member(archive, members["class_names"], path, "class_names")
                if names.ndim != 1 or names.dtype.kind not in "US":
                    raise DataError(f"{path}:class_names must be a 1-D array of strings, got {names.dtype} {names.shape}")
                explicit = [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names.tolist()]
    return assemble(name, arrays, _class_names(explicit, arrays, f"{path}:y_train"), f"{path} (npz; structure checked)",
                    {role: f"{path}:{key}" for role, key in NPZ_KEYS.items()})


def _npz_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, key: str, images: bool = False) -> np.ndarray:
    """One ``.npy`` member, its sizes checked against MAX_ARRAY_BYTES before it is read."""
    where = f"{path}: {key}"
    if info.file_size > MAX_ARRAY_BYTES:
        raise DataError(f"{where} decompresses to {info.file_size} bytes, more than the {MAX_ARRAY_BYTES} an array may have")
    try:
        with archive.open(info) as member:
            shape, fortran, dtype = read_npy_header(member)
            if dtype.hasobject:
                raise DataError(
                    f"{where} is an array of Python objects, which only unpickling could read; refused "
                    "(unpickling can run arbitrary code). Save plain numeric arrays, e.g. np.savez(f, x_train=x.astype('uint8'), ...)"
                )
            if any(dim < 0 for dim in shape):
                raise DataError(f"{where} declares shape {shape}, with a negative dimension")
            nbytes = dtype.itemsize
            for dim in shape:
                nbytes *= dim
            if nbytes > MAX_ARRAY_BYTES:
                raise DataError(f"{where} declares shape {shape} of {dtype} ({nbytes} bytes), more than the {MAX_ARRAY_BYTES} an array may have")
            if images and len(shape) >= 3:
                check_image_size(shape[1:3], where)
            if nbytes > info.file_size:
                raise DataError(f"{where} declares shape {shape} of {dtype} ({nbytes} bytes) but holds {info.file_size} bytes in all")
            array = np.empty(shape[::-1] if fortran else shape, dtype=dtype)
            got = member.readinto(memoryview(array.reshape(-1)).cast("B")) if nbytes else 0
            if got != nbytes or member.read(1):
                raise DataError(f"{where} holds {'fewer' if got != nbytes else 'more'} bytes than its header's shape {shape} of {dtype}")
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
        raise DataError(f"{where} cannot be read ({exc})") from None
    return array.T if fortran else array


def _as_images(array: np.ndarray, where: str) -> np.ndarray:
    """uint8 (N, H, W); accepts (N, H, W, 1) and other integer types holding 0-255."""
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3 or 0 in array.shape[1:]:
        raise DataError(f"{where}: images must have shape (N, height, width), got {array.shape}")
    if len(array) == 0:
        raise DataError(f"{where}: holds no images (shape {array.shape})")
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
    if array.size and array.max() >= MAX_CLASSES:
        raise DataError(
            f"{where}: label {array.max()} is beyond the {MAX_CLASSES} classes a dataset may have "
            "(labels are class indices 0, 1, 2, ...)"
        )
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
    names = sorted(p.name for p in _entries(root) if p.is_dir() and not p.name.startswith("."))
    for cls in names:
        _check_utf8(root / cls)
    if not names and not allow_none:
        raise DataError(f"{root}: no class sub-folders (expected one folder of images per class)")
    return names


def _entries(folder: Path) -> list[Path]:
    """A folder's entries; an unreadable folder is a DataError."""
    try:
        return list(folder.iterdir())
    except OSError as exc:
        raise DataError(f"{folder}: cannot read the folder ({exc.strerror or exc})") from None


def _check_utf8(path: Path) -> None:
    """Names become class names in JSON and reports, paths appear in messages: they must be text (UTF-8 on disk)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        shown = str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise DataError(f"{shown}: the name is not valid UTF-8; rename it") from None


def _read_images(root: Path, classes: list[str], require_each: bool) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for label, cls in enumerate(classes):
        folder = root / cls
        files = sorted(
            p for p in (_entries(folder) if folder.is_dir() else ())
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        )
        if require_each and not files:
            raise DataError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        for file in files:
            images.append(_read_image(file))
            labels.append(label)
    x = np.stack(images) if images else np.zeros((0, *FOLDER_IMAGE_SIZE), dtype=np.uint8)
    return x, np.asarray(labels, dtype=np.int64)


def _read_image(file: Path) -> np.ndarray:
    """One image as uint8 grayscale 28×28; 16-bit and float images are scaled to 0-255, not clipped."""
    from PIL import Image  # imported here: only image folders need Pillow

    try:
        with open_regular_file(file, MAX_IMAGE_FILE_BYTES, error=DataError) as handle, Image.open(handle) as img:
            if img.width * img.height > Image.MAX_IMAGE_PIXELS:
                raise DataError(
                    f"{file}: {img.width} x {img.height} pixels, more than the {Image.MAX_IMAGE_PIXELS} an image may have"
                )
            gray = _to_gray8(img, file)
            if gray.size != FOLDER_IMAGE_SIZE:
                gray = gray.resize(FOLDER_IMAGE_SIZE, Image.Resampling.LANCZOS)
            return np.asarray(gray, dtype=np.uint8)
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(f"{file}: not a readable image ({exc})") from None


def _to_gray8(img, file: Path):
    """Grayscale with 8 bits: Pillow's ``convert("L")`` clips 16-bit and float pixels at 255 instead of scaling."""
    from PIL import Image

    if img.mode.startswith("I;16") or img.mode == "I":
        values = np.asarray(img).astype(np.float64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise DataError(f"{file}: {img.mode} pixels outside 0-65535 ({values.min():g}-{values.max():g})")
        return Image.fromarray(np.rint(values / 257.0).astype(np.uint8), mode="L")
    if img.mode == "F":
        values = np.asarray(img).astype(np.float64)
        if values.size and not np.isfinite(values).all():
            raise DataError(f"{file}: holds non-finite pixel values")
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if low < 0 or high > 255:
            raise DataError(f"{file}: floating-point pixels outside 0-255 ({low:g}-{high:g})")
        scale = 255.0 if high <= 1.0 else 1.0  # [0, 1] images are scaled; 0-255 values are kept
        return Image.fromarray(np.rint(values * scale).astype(np.uint8), mode="L")
    return img.convert("L")
