"""Verified downloads into the user cache: mirror after mirror until one serves the right bytes.

A download is read into memory and written (atomically, by mlplab.safeio) only once complete and
matching a pinned digest, so an interrupted, truncated or wrong download can never become a cache
entry. When every mirror fails, the error lists each URL
tried with what it answered and says how to place the files by hand.
"""

from __future__ import annotations

import http.client
import io
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, TextIO

from mlplab.data.locate import DATA_DIR_ENV, cache_dir
from mlplab.data.registry import ROLES, DatasetSpec, FileSpec, get_spec
from mlplab.data.idx import MAX_IDX_BYTES
from mlplab.data.verify import check_digest
from mlplab.errors import DataError, StorageError
from mlplab.safeio import atomic_write_bytes, read_regular_file

MAX_BYTES = 200 * 1024 * 1024  # no MNIST-family file comes near; a runaway mirror stops here
CHUNK = 1 << 20


def by_hand(spec: DatasetSpec) -> str:
    """How to put a dataset in place without mlplab downloading it."""
    names = ", ".join(spec.files[r].filename for r in ROLES)
    if all(f.sha256 for f in spec.files.values()):
        which = "from any copy; their content is checked against the pinned checksums when used"
    else:
        which = "as published; they are checked against the pinned checksums of the published files"
    return (
        f"To place the files by hand, get {names} ({which}) and put them in {cache_dir() / spec.name}/, "
        f"or in DIR/{spec.name}/ and pass --data-dir DIR or set {DATA_DIR_ENV}=DIR."
    )


class MirrorsFailed(DataError):
    """No mirror served a verified copy of one file; ``attempts`` holds (url, answer) pairs."""

    def __init__(self, filename: str, attempts: list[tuple[str, str]], dataset: DatasetSpec | None = None):
        self.filename = filename
        self.attempts = attempts
        lines = [f"{url}: {answer}" for url, answer in attempts] or ["(no mirrors to try)"]
        message = f"no mirror served a verified {filename}:\n  " + "\n  ".join(lines)
        if dataset is not None:
            message = f"could not download {dataset.name}: {message}\n{by_hand(dataset)}"
        super().__init__(message)


@dataclass
class FetchReport:
    """What `fetch_dataset` did: the cache folder, and per file whether it was downloaded or already there."""

    folder: Path
    files: dict[str, str] = field(default_factory=dict)  # filename -> "cached (verified)" or the URL used


class _Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, label: str, total: int | None, stream: TextIO | None):
        self.label, self.total, self.stream, self.done = label, total, stream, 0

    def update(self, n: int) -> None:
        if self.stream is None:
            return
        self.done += n
        mb = self.done / 1e6
        if self.total:
            pct = self.done / self.total
            bar = "#" * int(pct * 30)
            self.stream.write(f"\r{self.label} [{bar:<30}] {pct:4.0%} {mb:.1f}/{self.total / 1e6:.1f} MB")
        else:
            self.stream.write(f"\r{self.label} {mb:.1f} MB")
        self.stream.flush()

    def close(self) -> None:
        if self.stream is not None and self.done:
            self.stream.write("\n")
            self.stream.flush()


class _Failed(Exception):
    """One mirror's answer, when it was not a usable file."""


def _download(url: str, progress: bool, timeout: float) -> bytes:
    """Read ``url`` (at most MAX_BYTES) into memory; raise _Failed with the mirror's answer.

    Verifying needs every byte in memory anyway; only a verified file is written (atomically).
    """
    if not url.startswith(("https://", "http://")):
        raise _Failed("not an http(s) URL")
    request = urllib.request.Request(url, headers={"User-Agent": "mlplab (dataset download)"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise _Failed(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise _Failed(f"could not connect ({exc.reason})") from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise _Failed(f"could not connect ({exc})") from None
    done = 0
    out = io.BytesIO()
    try:
        with response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if total is not None and total > MAX_BYTES:
                raise _Failed(f"announces {total} bytes, more than the {MAX_BYTES} allowed")
            bar = _Progress(Path(url).name, total, sys.stderr if progress else None)
            try:
                while chunk := response.read(CHUNK):
                    done += len(chunk)
                    if done > MAX_BYTES:
                        raise _Failed(f"sent more than the {MAX_BYTES} bytes allowed")
                    out.write(chunk)
                    bar.update(len(chunk))
            finally:
                bar.close()
            if total is not None and done < total:
                raise _Failed(f"connection closed after {done} of {total} bytes")
        return out.getvalue()
    except (OSError, http.client.HTTPException) as exc:
        raise _Failed(f"connection broken after {done} bytes ({exc or type(exc).__name__})") from None


def fetch_file(
    spec: FileSpec, dest: Path, mirrors: Sequence[str], *, progress: bool | None = None, timeout: float = 30.0
) -> str:
    """Download one file to ``dest`` from the first mirror that serves a verified copy; return its URL.

    Raises MirrorsFailed listing every mirror tried and its answer. ``dest`` is only ever replaced
    by a verified file.
    """
    progress = sys.stderr.isatty() if progress is None else progress
    dest.parent.mkdir(parents=True, exist_ok=True)
    attempts: list[tuple[str, str]] = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + spec.filename
        try:
            data = _download(url, progress, timeout)
        except _Failed as failure:
            attempts.append((url, str(failure)))
            continue
        try:
            _, verified = check_digest(data, spec, spec.filename)
            if not verified:
                raise DataError(f"sha256 does not match the published {spec.filename} ({spec.gz_sha256})")
        except DataError as exc:
            attempts.append((url, str(exc).removeprefix(f"{spec.filename}: ")))
            continue
        try:
            atomic_write_bytes(dest, data)
        except StorageError as exc:
            raise DataError(str(exc)) from None
        return url
    raise MirrorsFailed(spec.filename, attempts)


def fetch_dataset(
    name: str | DatasetSpec,
    *,
    mirrors: Sequence[str] | None = None,
    progress: bool | None = None,
    timeout: float = 30.0,
) -> FetchReport:
    """Make sure the user cache holds a verified copy of every file of a named dataset.

    Files already cached are verified again; missing or corrupt ones are downloaded (``mirrors``
    replaces the registry's list when given). Stops at the first file no mirror can serve.
    """
    spec = get_spec(name) if isinstance(name, str) else name
    folder = cache_dir() / spec.name
    report = FetchReport(folder)
    for role in ROLES:
        fspec = spec.files[role]
        dest = folder / fspec.filename
        if dest.is_file() and _is_verified_copy(dest, fspec):
            report.files[fspec.filename] = "cached (verified)"
            continue
        try:
            report.files[fspec.filename] = fetch_file(
                fspec, dest, spec.mirrors if mirrors is None else mirrors, progress=progress, timeout=timeout
            )
        except MirrorsFailed as exc:
            raise MirrorsFailed(exc.filename, exc.attempts, spec) from None
        except OSError as exc:
            raise DataError(f"cannot write to the cache folder {folder} ({exc.strerror or exc})") from None
    return report


def _is_verified_copy(path: Path, spec: FileSpec) -> bool:
    try:
        return check_digest(read_regular_file(path, MAX_IDX_BYTES, error=DataError), spec, spec.filename)[1]
    except (DataError, OSError):
        return False
