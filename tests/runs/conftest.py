from __future__ import annotations

import os
import signal

import pytest


def _signal_when(monkeypatch, cls, predicate):
    """Deliver a real SIGINT from inside `cls.on_epoch_end` when `predicate(state, row)` holds."""
    original = cls.on_epoch_end

    def hook(self, state, row):
        original(self, state, row)
        if predicate(state, row):
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(cls, "on_epoch_end", hook)


@pytest.fixture
def signal_when():
    """`signal_when(monkeypatch, Callback, predicate)`: Ctrl-C as a user would press it, at an epoch's end."""
    return _signal_when
