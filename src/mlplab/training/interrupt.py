"""Ctrl-C and SIGTERM become a flag the loop reads after each step, not an exception mid-update."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from mlplab.training.state import TrainingState


@contextlib.contextmanager
def stop_on_signals(*states: TrainingState) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM set `interrupted` on every state given (a pack trains several)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return

    def handler(signum: int, frame: object) -> None:
        for state in states:
            state.interrupted = signal.Signals(signum).name

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
