"""Where a named dataset's files are looked for, in order, before anything is downloaded.

1. ``data_dir`` given by the caller (``--data-dir``), else the environment variable
   ``MLPLAB_DATA_DIR``: a folder with one sub-folder per dataset (``DIR/mnist/train-images-…``);
2. the user cache (``MLPLAB_CACHE_DIR``, else ``$XDG_CACHE_HOME/mlplab``, else ``~/.cache/mlplab``),
   where ``mlplab data fetch`` puts downloads;
3. system folders where distributions install datasets (Debian: ``/usr/share/datasets/<name>``).

A folder counts as holding a dataset only when all four files are there (``.gz`` or gunzipped).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mlplab.data.registry import ROLES, DatasetSpec

DATA_DIR_ENV = "MLPLAB_DATA_DIR"
CACHE_DIR_ENV = "MLPLAB_CACHE_DIR"
SYSTEM_DIRS = (Path("/usr/share/datasets"), Path("/usr/local/share/datasets"))


def cache_dir() -> Path:
    """The user cache folder (not created here)."""
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "mlplab"


@dataclass(frozen=True)
class Location:
    """A folder holding all files of a dataset, and how it was found."""

    path: Path
    origin: str  # "--data-dir", "MLPLAB_DATA_DIR", "cache" or "system"
    files: dict[str, Path]  # role -> the file found

    def describe(self) -> str:
        return f"{self.path} ({self.origin})"


def candidate_dirs(name: str, data_dir: str | Path | None = None) -> list[tuple[str, Path]]:
    """The folders searched for dataset ``name``, in order, with where each comes from."""
    found: list[tuple[str, Path]] = []
    if data_dir is not None:
        found.append(("--data-dir", Path(data_dir).expanduser() / name))
    elif os.environ.get(DATA_DIR_ENV):
        found.append((DATA_DIR_ENV, Path(os.environ[DATA_DIR_ENV]).expanduser() / name))
    found.append(("cache", cache_dir() / name))
    found.extend(("system", base / name) for base in SYSTEM_DIRS)
    return found


def files_in(folder: Path, spec: DatasetSpec) -> dict[str, Path]:
    """The dataset's files present in ``folder`` (role -> path); the .gz name wins over a gunzipped one."""
    present = {}
    for role in ROLES:
        for candidate in spec.files[role].names:
            if (folder / candidate).is_file():
                present[role] = folder / candidate
                break
    return present


def locate(spec: DatasetSpec, data_dir: str | Path | None = None) -> Location | None:
    """The first folder holding every file of the dataset, or None."""
    for origin, folder in candidate_dirs(spec.name, data_dir):
        present = files_in(folder, spec)
        if len(present) == len(ROLES):
            return Location(folder, origin, present)
    return None
