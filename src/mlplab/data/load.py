"""Loading a dataset by name: a registry name (found or downloaded) or the user's own data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlplab.data import user
from mlplab.data.dataset import Dataset, assemble
from mlplab.data.download import MirrorsFailed, by_hand, fetch_dataset, fetch_file
from mlplab.data.locate import Location, candidate_dirs, files_in, locate
from mlplab.data.registry import REGISTRY, ROLES, USER_PREFIXES, DatasetSpec, get_spec
from mlplab.data.verify import read_dataset_file
from mlplab.errors import DataError


def load_dataset(name: str = "mnist", *, data_dir: str | Path | None = None, download: bool = True) -> Dataset:
    """Load a dataset as uint8 images and int64 labels.

    ``name`` is a registry name (``mnist``, ``fashion-mnist``, ``kmnist``) or user data:
    ``idx:DIR`` (the four standard IDX files), ``npz:FILE`` (Keras layout, no pickle) or
    ``folder:DIR`` (one sub-folder of images per class). Named datasets are looked for in
    ``data_dir`` (else ``$MLPLAB_DATA_DIR``), the user cache and system folders, and downloaded
    into the cache when ``download`` is true and they are nowhere.
    """
    if not isinstance(name, str) or not name.strip():
        raise DataError(f"a dataset name must be a non-empty string, got {name!r}")
    kind, sep, rest = name.partition(":")
    if sep and f"{kind.lower()}:" in USER_PREFIXES:
        if not rest:
            raise DataError(f"{name!r}: give a path after {kind}:")
        return user.load_user_data(kind.lower(), Path(rest).expanduser(), name)
    return load_named(get_spec(name), data_dir=data_dir, download=download)


def load_data(name: str = "mnist", **kw) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``(x_train, y_train), (x_test, y_test)``, as ``keras.datasets.mnist.load_data()`` returns them.

    Keyword arguments are those of `load_dataset`. Labels are int64 (Keras gives uint8).
    """
    ds = load_dataset(name, **kw)
    return (ds.x_train, ds.y_train), (ds.x_test, ds.y_test)


def load_named(spec: DatasetSpec, *, data_dir: str | Path | None = None, download: bool = True) -> Dataset:
    """A registry dataset from the first folder holding it, else downloaded (see `load_dataset`)."""
    location = locate(spec, data_dir)
    if location is None:
        if not download:
            raise DataError(not_found_message(spec, data_dir))
        report = fetch_dataset(spec)
        location = Location(report.folder, "cache", files_in(report.folder, spec))
    arrays, verified = {}, True
    for role in ROLES:
        array, ok = _read_role(spec, location, role, download)
        arrays[role] = array
        verified &= ok
    how = "verified sha256" if verified else "IDX structure checked; no pinned checksum matches this copy"
    return assemble(spec.name, arrays, spec.class_names, f"{location.path} ({how})",
                    {role: str(path) for role, path in location.files.items()})


def _read_role(spec: DatasetSpec, location: Location, role: str, download: bool) -> tuple[np.ndarray, bool]:
    """One file of a located dataset; a corrupt file in the cache is fetched again (when allowed)."""
    path, fspec = location.files[role], spec.files[role]
    kind = role.split("_")[1]
    try:
        return read_dataset_file(path, fspec, kind)
    except DataError as exc:
        problem = f"{path.parent}/{exc}"
        if location.origin != "cache":
            raise DataError(f"{problem}\nReplace the file, or remove it to use the next location.") from None
        if not download:
            raise DataError(f"{problem}\nRun `mlplab data fetch {spec.name}` to download it again.") from None
    try:
        fetch_file(fspec, location.path / fspec.filename, spec.mirrors)
    except MirrorsFailed as failed:
        raise DataError(f"{problem}\nFetching it again failed: {failed}\n{by_hand(spec)}") from None
    if path.name != fspec.filename:  # a gunzipped copy would otherwise sit beside the new .gz
        path.unlink(missing_ok=True)
    return read_dataset_file(location.path / fspec.filename, fspec, kind)


def not_found_message(spec: DatasetSpec, data_dir: str | Path | None) -> str:
    searched = "\n  ".join(f"{folder} ({origin})" for origin, folder in candidate_dirs(spec.name, data_dir))
    return (
        f"dataset {spec.name} not found; looked in:\n  {searched}\n"
        f"Run `mlplab data fetch {spec.name}` to download it. {by_hand(spec)}"
    )


@dataclass(frozen=True)
class DatasetEntry:
    """A registry entry and where its files are (None: nowhere yet). Files are not verified here."""

    spec: DatasetSpec
    location: Location | None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def found(self) -> bool:
        return self.location is not None


def list_datasets(data_dir: str | Path | None = None) -> list[DatasetEntry]:
    """Every registry dataset with the folder it would be loaded from (checks only that files exist)."""
    return [DatasetEntry(spec, locate(spec, data_dir)) for spec in REGISTRY.values()]
