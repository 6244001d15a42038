"""What `mlplab predict` is pointed at → one 28×28 image (or one error) per input, in order.

An input is an image file, a folder (searched recursively, files in sorted order), a `.npy`/`.npz`
array of 28×28 images, or an IDX file (the MNIST format, `.gz` or not). Each image inside an
array or IDX file is one input, named ``file[i]``. Nothing here raises for a bad input: the
error becomes that input's one line and the others go on.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlplab.errors import DataError, InputError
from mlplab.use.images import IMAGE_SUFFIXES, open_image
from mlplab.use.preprocess import SIZE, preprocess_image

ARRAY_SUFFIXES = (".npy", ".npz")
NPZ_IMAGE_KEYS = ("images", "x", "x_test", "x_train")  # tried in this order when an .npz holds several arrays
IDX_MAGIC_IMAGES = b"\x00\x00\x08\x03"  # uint8, three dimensions


@dataclass
class Prepared:
    """One input: its name and the 28×28 uint8 image the model will see, or why there is none."""

    path: str
    image: np.ndarray | None = None
    error: str | None = None


def gather(inputs: Sequence[str | Path], style: str, *, preprocess: bool = True) -> list[Prepared]:
    """Every input expanded (folders, arrays, IDX files) and prepared, in the order given."""
    prepared: list[Prepared] = []
    for item in inputs:
        for path, error in expand(Path(item)):
            if error is not None:
                prepared.append(Prepared(str(path), error=error))
            else:
                prepared.extend(load_file(path, style, preprocess=preprocess))
    return prepared


def expand(path: Path) -> Iterator[tuple[Path, str | None]]:
    """A file as it is; a folder → its usable files (recursively, sorted); a missing path → its error.

    Symbolic links to folders are not followed (a link to a parent would never end), and only
    regular files are taken (reading a FIFO or a device would block or never end).
    """
    if path.is_dir():
        files = sorted(
            (Path(top) / name for top, _, names in os.walk(path) for name in names
             if is_usable_name(Path(name)) and (Path(top) / name).is_file()),
            key=lambda f: f.relative_to(path).parts,
        )
        if not files:
            yield path, "no image, array or IDX files in this folder"
        for file in files:
            yield file, None
    elif path.is_file():
        yield path, None
    elif path.exists():
        yield path, "not a regular file"
    else:
        yield path, "no such file or directory"


def is_usable_name(path: Path) -> bool:
    """Files a folder search picks up (an explicitly named file is always tried)."""
    name = path.name.lower()
    if name.startswith("."):
        return False
    return path.suffix.lower() in IMAGE_SUFFIXES + ARRAY_SUFFIXES or _looks_like_idx(name)


def _looks_like_idx(name: str) -> bool:
    return bool(re.search(r"idx3-ubyte(\.gz)?$", name)) or name.endswith((".idx", ".idx3"))


def load_file(path: Path, style: str, *, preprocess: bool = True) -> list[Prepared]:
    """The prepared image(s) of one file: one for an image, one per image for arrays and IDX files."""
    try:
        arrays = _read_arrays(path)
    except (InputError, DataError) as exc:
        return [Prepared(str(path), error=_without_path(str(exc), path))]
    if arrays is None:  # an image file
        return [_prepare(str(path), path, lambda: open_image(path), style, preprocess)]
    return [_prepare(f"{path}[{i}]", path, lambda one=one: one, style, preprocess) for i, one in enumerate(arrays)]


def _prepare(name: str, path: Path, load, style: str, preprocess: bool) -> Prepared:
    from mlplab.use.predict import raw_image

    try:
        source = load()
        image = preprocess_image(source, style) if preprocess else raw_image(source)
    except InputError as exc:
        return Prepared(name, error=_without_path(str(exc), path))
    return Prepared(name, image=image)


def _read_arrays(path: Path) -> np.ndarray | None:
    """The images of an array or IDX file as (N, H, W); None when the file is not one (an image)."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _images_array(_load_npy(path), path)
    if suffix == ".npz":
        return _images_array(_load_npz(path), path)
    if _looks_like_idx(path.name.lower()) or _starts_like_idx(path):
        from mlplab.data.idx import read_idx

        return _images_array(read_idx(path), path)
    return None


def _starts_like_idx(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(4) == IDX_MAGIC_IMAGES
    except OSError:
        return False


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"not a readable .npy array without pickled objects ({_one_line(exc)})") from None


def _load_npz(path: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.files)
            if not keys:
                raise InputError("the .npz archive holds no arrays")
            key = keys[0] if len(keys) == 1 else next((k for k in NPZ_IMAGE_KEYS if k in keys), None)
            if key is None:
                raise InputError(f"which array holds the images? found {', '.join(keys)}; name it one of "
                                 f"{', '.join(NPZ_IMAGE_KEYS)}")
            return archive[key]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"not a readable .npz archive without pickled objects ({_one_line(exc)})") from None


def _images_array(array: np.ndarray, path: Path) -> np.ndarray:
    if array.ndim == 2 and array.shape == (SIZE, SIZE):
        array = array[None]
    elif array.ndim == 2 and array.shape[1] == SIZE * SIZE:
        array = array.reshape(len(array), SIZE, SIZE)
    if array.ndim != 3 or array.dtype.kind not in "uif" or array.shape[0] == 0:
        raise InputError(f"expected 28×28 images as an array (N, 28, 28), found {array.dtype} with shape {array.shape}")
    return array


def _without_path(message: str, path: Path) -> str:
    """Errors carry the file name; each prepared input already shows it."""
    return message.removeprefix(f"{path}: ").removeprefix(f"{path.name}: ")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
