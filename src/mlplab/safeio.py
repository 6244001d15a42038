"""Files that are written atomically and read without unpickling anything.

Tensors go to safetensors (a JSON header and raw bytes: loading cannot run code), small
structured data to JSON. A reader never sees a half-written file: everything is written to a
temporary file in the same folder and moved into place with `os.replace`.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from mlplab.errors import ModelFileError

_PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt", ".joblib"}


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFileError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path}: not valid JSON ({exc})") from None


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write tensors (made contiguous, on the CPU) atomically as safetensors."""
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
        with path.open("rb") as handle:
            head = handle.read(9)
        # A safetensors file starts with an 8-byte header length, then its JSON header's "{" (the
        # length's first byte may be anything, 0x80 included, so check that first).
        if head[8:9] == b"{":
            return
        if (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")) or head[:4] == b"PK\x03\x04":
            raise ModelFileError(f"{path}: looks like a pickle or torch.save archive; refusing to load it")


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file; a missing, truncated or foreign file is a ModelFileError."""
    path = Path(path)
    refuse_pickle(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"{path}: file not found") from None
    try:
        tensors = st_load(data)
        metadata = _read_metadata(data)
    except (SafetensorError, ValueError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path}: not a valid safetensors file ({exc})") from None
    return tensors, metadata


def _read_metadata(data: bytes) -> dict[str, str]:
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_len])
    return header.get("__metadata__", {}) or {}
