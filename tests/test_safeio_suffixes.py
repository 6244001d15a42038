"""Pickle-based file names are refused by name, before a byte is read."""

from __future__ import annotations

import pytest
import torch

from mlplab.errors import ModelFileError
from mlplab.safeio import load_tensors, refuse_pickle, save_tensors

PICKLE_SUFFIXES = [".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt", ".joblib"]


@pytest.mark.parametrize("suffix", PICKLE_SUFFIXES + [s.upper() for s in PICKLE_SUFFIXES])
def test_every_pickle_suffix_is_refused_even_when_the_bytes_are_safetensors(tmp_path, suffix):
    # The content is a valid safetensors file, so only the name can be what refuses it.
    path = tmp_path / f"model{suffix}"
    save_tensors(path, {"w": torch.ones(2)})
    with pytest.raises(ModelFileError, match=rf"refusing to load a pickle-based file \({suffix}\)"):
        refuse_pickle(path)
    with pytest.raises(ModelFileError, match="refusing"):
        load_tensors(path)
    missing = tmp_path / f"absent{suffix}"
    with pytest.raises(ModelFileError, match="refusing"):  # refused by name: never opened
        refuse_pickle(missing)


@pytest.mark.parametrize("name", ["model.safetensors", "weights.st", "model", "model.pt.safetensors"])
def test_safetensors_under_other_names_load(tmp_path, name):
    path = tmp_path / name
    save_tensors(path, {"w": torch.arange(3.0)}, metadata={"k": "v"})
    refuse_pickle(path)
    tensors, metadata = load_tensors(path)
    assert torch.equal(tensors["w"], torch.arange(3.0)) and metadata == {"k": "v"}
