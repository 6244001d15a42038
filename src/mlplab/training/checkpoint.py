"""Checkpoints: the whole training state at an epoch boundary, in one safetensors file.

Tensors (weights, optimizer moments, random-generator states, callbacks' tensors) are the file's
tensors; everything else (epoch, step, history, optimizer settings, callbacks' values) is JSON in
the file's metadata. One file, replaced atomically, so a checkpoint is never half-written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from mlplab.errors import ModelFileError
from mlplab.safeio import load_tensors, save_tensors
from mlplab.training.callbacks import Callback
from mlplab.training.history import History
from mlplab.training.state import TrainingState

FORMAT = "mlplab.checkpoint/1"


def save_checkpoint(path: Path, state: TrainingState, callbacks: list[Callback],
                    extra: dict[str, Any] | None = None) -> None:
    """Write the training state; `extra` (JSON-able: the run's whole config) rides along in the metadata."""
    tensors: dict[str, torch.Tensor] = {f"model.{k}": v for k, v in state.model.state_dict().items()}
    optim = state.optimizer.state_dict()
    for index, slots in optim["state"].items():
        for slot, value in slots.items():
            tensors[f"optimizer.{index}.{slot}"] = value if torch.is_tensor(value) else torch.tensor(value)
    tensors["rng.shuffle"] = state.generator.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    if state.augmenter is not None:
        tensors["rng.augment"] = state.augmenter.generator.get_state()
    if state.ema is not None:  # between epochs the model holds the average; the training weights are here
        tensors["ema.training"] = state.ema.training_weights()
    callback_values = []
    for i, callback in enumerate(callbacks):
        values, cb_tensors = callback.state_dict()
        callback_values.append({"class": type(callback).__name__, "values": values})
        tensors.update({f"callback.{i}.{k}": v for k, v in cb_tensors.items()})
    meta = {
        "format": FORMAT,
        "epoch": state.epoch,
        "step": state.step,
        "history": state.history.to_json(),
        "param_groups": optim["param_groups"],
        "dropout_rng": [layer.rng.bit_generator.state for layer in state.model.dropout_layers()],
        "callbacks": callback_values,
        "config": state.config.model_dump(mode="json"),
        # A callback's decision to stop (early stopping, a non-finite loss) is part of the state: a
        # run resumed after it (during the refit, say) must not train past it.
        "ema_updates": state.ema.updates if state.ema is not None else None,
        "stop": {"stop_training": state.stop_training, "stop_reason": state.stop_reason, "stopped_by": state.stopped_by},
        "extra": extra or {},
    }
    save_tensors(path, tensors, metadata={"mlplab": json.dumps(meta)})


def load_checkpoint(path: Path, state: TrainingState, callbacks: list[Callback]) -> None:
    """Restore `state` and `callbacks` in place from a checkpoint written by `save_checkpoint`."""
    tensors, metadata = load_tensors(path)
    try:
        meta = json.loads(metadata["mlplab"])
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')!r}")
        state.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        state.optimizer.load_state_dict(_optimizer_state(tensors, meta["param_groups"]))
        state.generator.set_state(tensors["rng.shuffle"])
        torch.set_rng_state(tensors["rng.torch"])
        if state.augmenter is not None:
            state.augmenter.generator.set_state(tensors["rng.augment"])
        if state.ema is not None:
            state.ema.load(tensors["ema.training"], meta["ema_updates"])
        layers = state.model.dropout_layers()
        if len(meta["dropout_rng"]) != len(layers):
            raise ValueError("the number of dropout layers differs from the model's")
        for layer, rng_state in zip(layers, meta["dropout_rng"]):
            layer.rng.bit_generator.state = rng_state
        saved_callbacks = meta["callbacks"]
        if [c["class"] for c in saved_callbacks] != [type(c).__name__ for c in callbacks]:
            raise ValueError("the callbacks differ from those the checkpoint was written with")
        for i, (callback, saved) in enumerate(zip(callbacks, saved_callbacks)):
            prefix = f"callback.{i}."
            callback.load_state_dict(
                saved["values"], {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            )
    except (KeyError, ValueError, RuntimeError, json.JSONDecodeError) as exc:
        # torch's size-mismatch report spans many lines; its first says what is wrong.
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(":. ")
        raise ModelFileError(f"{path}: not a usable mlplab checkpoint ({first})") from None
    state.epoch, state.step = meta["epoch"], meta["step"]
    state.history = History.from_json(meta["history"])
    stop = meta.get("stop", {})
    state.stop_training = bool(stop.get("stop_training", False))
    state.stop_reason, state.stopped_by = stop.get("stop_reason"), stop.get("stopped_by")


def read_checkpoint_extra(path: Path) -> dict[str, Any]:
    """The `extra` metadata a checkpoint was saved with (the run's config), without loading its state."""
    _, metadata = load_tensors(path)
    try:
        meta = json.loads(metadata["mlplab"])
        extra = meta.get("extra", {})
        if not isinstance(extra, dict):
            raise ValueError("extra is not a table")
    except (KeyError, ValueError, AttributeError) as exc:
        raise ModelFileError(f"{path}: not a usable mlplab checkpoint ({exc})") from None
    return extra


def _optimizer_state(tensors: dict[str, torch.Tensor], param_groups: list[dict[str, Any]]) -> dict[str, Any]:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, slot = name.split(".", 2)
            state.setdefault(int(index), {})[slot] = value
    return {"state": state, "param_groups": param_groups}


class Checkpoint(Callback):
    """Writes the training state atomically at the end of every epoch (after the other callbacks)."""

    def __init__(self, path: Path, callbacks: list[Callback] | None = None, extra: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        # Whose state goes into the file: all of fit's callbacks. Given here, or by `watch` once
        # the list is complete (mlplab.runs assembles the list, then hands it over).
        self.callbacks: list[Callback] = list(callbacks) if callbacks is not None else [self]
        self.extra = extra

    def watch(self, callbacks: list[Callback]) -> None:
        self.callbacks = list(callbacks)

    def on_train_begin(self, state: TrainingState) -> None:
        if state.epoch == 0:  # so that even an interruption during the first epoch can be resumed
            save_checkpoint(self.path, state, self.callbacks, self.extra)

    def on_epoch_end(self, state: TrainingState, row: dict[str, Any]) -> None:
        if state.stopped_by == "non_finite":
            return  # the optimizer's moments are poisoned; keep the last good checkpoint
        save_checkpoint(self.path, state, self.callbacks, self.extra)
