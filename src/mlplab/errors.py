"""Errors a user can cause and fix: the CLI prints them as one line and exits non-zero.

Anything else that escapes is a bug in mlplab and keeps its traceback.
"""

from __future__ import annotations


class MlplabError(Exception):
    """Base of every user-facing error (bad input, missing data, corrupt file)."""

    exit_code = 2  # what the command line exits with


class DataError(MlplabError, ValueError):
    """A dataset could not be found, fetched, or read (names the file and the problem)."""


class ConfigError(MlplabError, ValueError):
    """A model or training configuration is invalid (names the key and the value)."""


class ModelFileError(MlplabError, ValueError):
    """A saved model or run directory is missing, corrupt, or not safe to load."""


class StorageError(MlplabError):
    """A file could not be written (disk full, permission denied, a file where a folder should be)."""


class RunBusyError(MlplabError):
    """Another process is writing the same run directory."""


class TrainingError(MlplabError):
    """Training could not go on (for example a non-finite loss, or an interruption)."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class InputError(MlplabError, ValueError):
    """An input to predict on (an image file, an array) cannot be used: names the problem in one line."""

    exit_code = 1  # `mlplab predict` exits 1 when an input failed, 2 for usage errors
