from __future__ import annotations

import os
import signal

import pytest


def _signal_when(monkeypatch, cls, predicate, signum=signal.SIGINT):
    """Deliver a real SIGINT (or `signum`) from inside `cls.on_epoch_end` when `predicate(state, row)` holds."""
    original = cls.on_epoch_end

    def hook(self, state, row):
        original(self, state, row)
        if predicate(state, row):
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(cls, "on_epoch_end", hook)


@pytest.fixture
def signal_when():
    """`signal_when(monkeypatch, Callback, predicate[, signum])`: Ctrl-C (or a SIGTERM) as a user or
    a scheduler would send it, at an epoch's end."""
    return _signal_when
