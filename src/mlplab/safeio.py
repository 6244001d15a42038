"""Files that are written atomically and read without unpickling anything.

Every file mlplab writes (run files, checkpoints, models, report pages and figures, cached
arrays, downloads) goes through `atomic_file`: the bytes go to a temporary file in the same
folder, are flushed to disk (fsync), and only then moved into place with `os.replace`, so a
reader never sees a half-written file and a crash or a full disk leaves the old file intact.
The temporary file is created with mode 0666 less the umask (0644 usually), as `open` would.

Tensors go to safetensors (a JSON header and raw bytes: loading cannot run code), small
structured data to JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from safetensors import SafetensorError

from mlplab.errors import MlplabError, ModelFileError, StorageError

if TYPE_CHECKING:  # torch is imported where tensors are read or written: the data readers need only the file checks
    import torch

_PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt", ".joblib"}

# Limits on what a reader accepts, checked before reading: generous for what mlplab writes (a
# model of the tutorial's size is 2.7 MB, its JSON files a few KB), small enough that a hostile or
# mistaken file cannot exhaust memory.
MAX_JSON_BYTES = 64 << 20
MAX_TENSOR_FILE_BYTES = 4 << 30
MAX_TEXT_BYTES = 16 << 20  # configs, class-name lists
_CHUNK = 1 << 24


def open_regular_file(path: Path, max_bytes: int, *, error: type[MlplabError] = ModelFileError) -> BinaryIO:
    """Open ``path`` for reading in binary, only if it is a regular file of at most ``max_bytes``.

    A device (a symlink to /dev/zero), a FIFO (which would block forever), a socket or a folder
    is refused with ``error`` before anything is read; so is a file larger than ``max_bytes``. The
    FIFO is opened non-blocking, so even opening it cannot hang. Symlinks to regular files are followed.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except OSError as exc:
        raise error(f"{path}: cannot open ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{path}: not a regular file ({_file_kind(info.st_mode)}); refusing to read it")
        if info.st_size > max_bytes:
            raise error(f"{path}: {info.st_size} bytes, more than the {max_bytes} a file of this kind may have")
        if hasattr(os, "O_NONBLOCK"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular_file(path: Path, max_bytes: int, *, error: type[MlplabError] = ModelFileError) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (see `open_regular_file`)."""
    parts, size = [], 0
    with open_regular_file(path, max_bytes, error=error) as handle:
        try:  # in chunks: read(max_bytes + 1) would allocate that much up front
            while size <= max_bytes and (part := handle.read(min(_CHUNK, max_bytes + 1 - size))):
                parts.append(part)
                size += len(part)
        except OSError as exc:
            raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
    if size > max_bytes:  # it grew after the size check
        raise error(f"{path}: more than the {max_bytes} bytes a file of this kind may have")
    return parts[0] if len(parts) == 1 else b"".join(parts)


def read_regular_text(path: Path, max_bytes: int = MAX_TEXT_BYTES, *, error: type[MlplabError] = ModelFileError) -> str:
    """A regular file's text, which must be UTF-8 (see `open_regular_file`)."""
    data = read_regular_file(path, max_bytes, error=error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start}: {data[exc.start:exc.start + 1]!r})") from None


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a plain file"


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[IO[bytes]]:
    """Open a binary handle whose content replaces `path` only when the block ends without error.

    An exception inside the block (a failed check, Ctrl-C) discards what was written. A failure to
    write (disk full, permission denied, the folder is a file) is a one-line `StorageError`.
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # os.open applies the umask to 0o666 (mkstemp would leave 0600).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:
        raise StorageError(f"{path}: cannot write ({_reason(exc)})") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"{path}: cannot write ({_reason(exc)})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); harmless where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_file(path) as handle:
        handle.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_with(path: Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Let `write(handle)` fill the file (np.save, matplotlib's savefig, csv), atomically."""
    with atomic_file(path) as handle:
        write(handle)
    return Path(path)


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: Path, max_bytes: int = MAX_JSON_BYTES) -> Any:
    data = read_regular_file(path, max_bytes)
    try:
        return json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise ModelFileError(f"{path}: not valid JSON (nested too deeply)") from None


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write tensors (made contiguous, on the CPU) atomically as safetensors."""
    from safetensors.torch import save as st_save

    cpu = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    atomic_write_bytes(path, st_save(cpu, metadata=metadata))


def refuse_pickle(path: Path) -> None:
    """Refuse files that could only be read by unpickling, before opening them."""
    path = Path(path)
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        raise ModelFileError(
            f"{path}: refusing to load a pickle-based file ({path.suffix}); unpickling can run arbitrary "
            "code. mlplab models are safetensors weights plus a JSON description (a run directory)"
        )
    if path.is_file():
        with open_regular_file(path, MAX_TENSOR_FILE_BYTES) as handle:
            head = handle.read(9)
        # A safetensors file starts with an 8-byte header length, then its JSON header's "{" (the
        # length's first byte may be anything, 0x80 included, so check that first).
        if head[8:9] == b"{":
            return
        if (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")) or head[:4] == b"PK\x03\x04":
            raise ModelFileError(f"{path}: looks like a pickle or torch.save archive; refusing to load it")


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file; a missing, truncated or foreign file is a ModelFileError."""
    from safetensors.torch import load as st_load

    path = Path(path)
    refuse_pickle(path)
    data = read_regular_file(path, MAX_TENSOR_FILE_BYTES)
    try:
        tensors = st_load(data)
        metadata = _read_metadata(data)
    except (SafetensorError, ValueError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path}: not a valid safetensors file ({exc})") from None
    except RecursionError:
        raise ModelFileError(f"{path}: not a valid safetensors file (header nested too deeply)") from None
    return tensors, metadata


def _read_metadata(data: bytes) -> dict[str, str]:
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_len])
    return header.get("__metadata__", {}) or {}
