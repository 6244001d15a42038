"""One writer per run directory: an exclusive, non-blocking lock on `RUN/.lock`.

The operating system releases the lock when its holder exits (even when killed), so a lock is
never left stale. The lock file itself stays; deleting it would let two writers lock two files.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from mlplab.errors import RunBusyError, StorageError

LOCK_NAME = ".lock"


@contextlib.contextmanager
def run_lock(folder: Path) -> Iterator[None]:
    """Hold the lock of `folder` (which must exist) for the block; a second writer gets RunBusyError."""
    path = Path(folder) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise StorageError(f"{folder}: cannot create the run's lock file ({exc.strerror or exc})") from None
    try:
        if not _try_lock(fd):
            raise RunBusyError(
                f"{folder} is being written by another mlplab process; wait for it to end, or choose another --out"
            )
        yield
    finally:
        os.close(fd)  # closing releases the lock


def is_locked(folder: Path) -> bool:
    """Whether another process holds the lock now (so a `running` status is really running)."""
    path = Path(folder) / LOCK_NAME
    if not path.is_file():
        return False
    try:
        # Read-only: another user's lock file (0o644) opens so, and a lock is tried on any open file.
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        return not _try_lock(fd)
    finally:
        os.close(fd)


try:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

except ImportError:  # Windows
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
