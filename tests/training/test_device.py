"""CPU threads: an explicit count wins; "auto" leaves a thread out for each core others keep busy."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from mlplab.errors import ConfigError
from mlplab.training import device
from mlplab.training.device import ThreadChoice, busy_cores, choose_threads, resolve_runtime, resolve_threads


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("busy", "cores", "default", "expected"),
    [
        (0.0, 2, 2, 2), (0.2, 2, 2, 2),  # quiet: torch's default
        (1.0, 2, 2, 1), (0.4, 2, 2, 1),  # one core taken (or nearly half of one): one thread
        (2.0, 2, 2, 1),                  # never fewer than one
        (3.0, 16, 16, 13), (0.0, 16, 8, 8),  # never more than torch's default
    ],
)
def test_choose_threads_needs_three_quarters_of_an_idle_core_per_thread(busy, cores, default, expected):
    assert choose_threads(busy, cores, default) == expected


def test_an_explicit_count_always_wins(monkeypatch):
    monkeypatch.setattr(device, "busy_cores", lambda seconds=0.05: pytest.fail("an explicit count must not probe"))
    runtime = resolve_runtime("cpu", "fp32", 1)
    assert torch.get_num_threads() == 1 and runtime.threads == ThreadChoice(1, "explicit")
    assert runtime.record()["threads"] == 1 and runtime.record()["threads_choice"]["how"] == "explicit"
    for bad in (0, -2, "four", 1.5, True):
        with pytest.raises(ConfigError, match="threads must be a positive integer or 'auto'"):
            resolve_threads(bad)


def test_auto_takes_a_thread_away_per_busy_core_and_says_so(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setattr(device, "TORCH_DEFAULT_THREADS", 4)
    monkeypatch.setattr(device, "usable_cores", lambda: 4)
    monkeypatch.setattr(device, "busy_cores", lambda seconds=0.05: 2.0)
    runtime = resolve_runtime("cpu", "fp32", "auto")
    assert torch.get_num_threads() == 2
    assert runtime.threads == ThreadChoice(2, "auto", busy_cores=2.0, cores=4)
    (note,) = runtime.notes()
    assert note.startswith("2.0 of 4 cores are busy") and "--threads 4" in note
    monkeypatch.setattr(device, "busy_cores", lambda seconds=0.05: 0.0)
    runtime = resolve_runtime("cpu", "fp32", "auto")
    assert torch.get_num_threads() == 4 and runtime.notes() == []  # quiet again: back to the default


def test_auto_respects_omp_num_threads_and_none_changes_nothing(monkeypatch):
    monkeypatch.setattr(device, "busy_cores", lambda seconds=0.05: pytest.fail("must not probe"))
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert resolve_threads("auto").how == "environment"
    torch.set_num_threads(1)
    assert resolve_runtime("cpu").threads == ThreadChoice(1, "unchanged") and torch.get_num_threads() == 1


def test_the_probe_sees_a_busy_core():
    """Whoever runs, a spinning process keeps at least one of our cores busy while we measure."""
    cores = device.usable_cores()
    spin = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 5\nwhile time.time() < end: pass"])
    try:
        import time

        time.sleep(0.3)  # let it start
        measured = busy_cores(0.2)
    finally:
        spin.kill()
        spin.wait()
    assert measured is not None and 0.7 <= measured <= cores + 1e-6
