"""One writer per run folder: `run_lock` holds `RUN/.lock`, `is_locked` asks whether someone does.

flock's locks belong to an open file description, not to a process: a second open of the same lock
file conflicts with the first even within one process, so these tests play both writers in one.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import pytest

from mlplab.errors import RunBusyError, StorageError
from mlplab.runs.lock import LOCK_NAME, is_locked, run_lock


def test_a_second_writer_of_a_locked_folder_gets_run_busy_error(tmp_path):
    busy = rf"^{re.escape(str(tmp_path))} is being written by another mlplab process; wait for it to end, or choose another --out$"
    with run_lock(tmp_path):
        with pytest.raises(RunBusyError, match=busy):
            with run_lock(tmp_path):
                pytest.fail("a second writer got the lock")
        assert is_locked(tmp_path)  # the refused writer did not take the holder's lock away
    with run_lock(tmp_path):  # released at the end of the block: the next writer gets in
        pass


def test_is_locked_while_the_lock_is_held_and_not_after(tmp_path):
    assert not is_locked(tmp_path)  # no lock file: nobody has ever written here
    assert not (tmp_path / LOCK_NAME).exists()  # and asking does not make one
    assert not is_locked(tmp_path / "missing")
    with run_lock(tmp_path):
        assert is_locked(tmp_path)
        assert is_locked(tmp_path)  # asking twice does not change the answer
    assert (tmp_path / LOCK_NAME).is_file()  # the file stays; only the lock goes
    assert not is_locked(tmp_path)
    with run_lock(tmp_path):  # asking took the free lock only for a moment
        assert is_locked(tmp_path)


def test_the_lock_is_released_when_the_block_raises(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with run_lock(tmp_path):
            raise KeyboardInterrupt  # Ctrl-C in the middle of a run
    assert not is_locked(tmp_path)
    with run_lock(tmp_path):
        pass


@pytest.mark.parametrize("where", ["missing", "a-file"])
def test_a_folder_that_cannot_hold_the_lock_file_is_a_one_line_storage_error(tmp_path, where):
    (tmp_path / "a-file").write_text("keep")
    folder = tmp_path / where
    with pytest.raises(StorageError, match=rf"^{re.escape(str(folder))}: cannot create the run's lock file \(.+\)$") as err:
        with run_lock(folder):
            pytest.fail("locked a folder that cannot hold a lock file")
    assert "\n" not in str(err.value)
    assert (tmp_path / "a-file").read_text() == "keep"


def test_a_lock_file_that_cannot_be_opened_is_not_a_held_lock(tmp_path, monkeypatch):
    """Another user's run folder, or a read-only copy: is_locked cannot try the lock, and answers no
    rather than failing (a search waits `while is_locked(run)`: a yes would wait forever). The
    refusal is faked because root, as in CI's container, may open any file."""
    (tmp_path / LOCK_NAME).touch()
    real_open = os.open

    def refuse_the_lock_file(path, flags, *args, **kwargs):
        if Path(path).name == LOCK_NAME:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse_the_lock_file)
    assert is_locked(tmp_path) is False


def test_a_lock_held_by_another_user_is_seen_through_a_read_only_open(tmp_path, monkeypatch):
    """A search run by one user waits on runs that another user's workers are writing: their lock
    file (mode 0o644 by the umask) opens for reading only, and a lock is tried on any open file.
    Faked as above: write access to the lock file refused while another writer holds it."""
    real_open = os.open

    def read_only_for_others(path, flags, *args, **kwargs):
        if Path(path).name == LOCK_NAME and flags & (os.O_WRONLY | os.O_RDWR):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, flags, *args, **kwargs)

    with run_lock(tmp_path):
        monkeypatch.setattr(os, "open", read_only_for_others)
        assert is_locked(tmp_path) is True
        monkeypatch.undo()
    monkeypatch.setattr(os, "open", read_only_for_others)
    assert is_locked(tmp_path) is False
