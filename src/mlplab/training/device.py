"""Device, precision and CPU threads, decided once and passed down: the training loop never asks.

Threads: torch's default (one thread per core) is right on a quiet machine, but OpenMP's threads
wait for each other at every parallel region, so when another program keeps a core busy, the
thread that shares it holds all the others up: with one busy process on 2 cores, a 512-512 epoch
took 14-17 s on 2 threads and 0.3-0.6 s on 1 (bench/busy_threads.py measures it). With
`threads="auto"` (the command line's default) the load of the cores this process may run on is
measured for a moment before training, and every busy core takes a thread away.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from mlplab.errors import ConfigError

Precision = Literal["fp32", "bf16"]
Threads = int | Literal["auto"] | None

# torch's own choice (one per core, or OMP_NUM_THREADS), read before anyone changes it, so that
# "auto" can go back to it once the machine is quiet again.
TORCH_DEFAULT_THREADS = torch.get_num_threads()
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
# A thread is kept for each core that is at least this idle. Fewer threads cost at most their
# share of the work; a thread on a busy core costs 10-30x (see above), so the bar is high.
IDLE_PER_THREAD = 0.75
PROBE_SECONDS = 0.05


@dataclass(frozen=True)
class ThreadChoice:
    """How many CPU threads torch uses, and why (recorded in run.json's runtime)."""

    threads: int
    how: Literal["explicit", "auto", "environment", "unchanged"]
    busy_cores: float | None = None  # cores kept busy by other programs, as measured
    cores: int | None = None  # cores this process may run on

    @property
    def reduced(self) -> bool:
        return self.how == "auto" and self.threads < TORCH_DEFAULT_THREADS

    def note(self) -> str | None:
        """One line for the user when the choice differs from torch's default because of load."""
        if not self.reduced:
            return None
        return (
            f"{self.busy_cores:.1f} of {self.cores} cores are busy with other programs: training on "
            f"{self.threads} thread{'s' if self.threads > 1 else ''} instead of {TORCH_DEFAULT_THREADS} "
            f"(--threads {TORCH_DEFAULT_THREADS} to use them all anyway)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass(frozen=True)
class Runtime:
    """Where tensors live, which precision the matrix products use, and on how many CPU threads."""

    device: torch.device
    precision: Precision = "fp32"
    threads: ThreadChoice | None = None

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def warnings(self) -> list[str]:
        """Settings that work but are probably not what the user wants on this machine."""
        if self.precision == "bf16" and self.device.type == "cpu" and not cpu_has_bf16_units():
            return [
                "this CPU has no bfloat16 matrix units (AVX512-BF16 or AMX), so bf16 is emulated and "
                "several times slower than fp32 here; use --precision fp32"
            ]
        return []

    def notes(self) -> list[str]:
        """Choices made for the user that they should know about (printed as one line each)."""
        note = self.threads.note() if self.threads is not None else None
        return [note] if note else []

    def describe(self) -> str:
        return f"{self.device.type} ({self.precision}, {torch.get_num_threads()} threads)"

    def record(self) -> dict[str, Any]:
        """What run.json keeps of the runtime (the thread count changes the last bits of the weights)."""
        record: dict[str, Any] = {"device": self.device.type, "precision": self.precision,
                                  "threads": torch.get_num_threads()}
        if self.threads is not None:
            record["threads_choice"] = self.threads.to_dict()
        return record


def cpu_has_bf16_units() -> bool:
    """True when the CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX); otherwise bf16 is emulated."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # private API: fall back on the CPU's flags
        try:
            flags = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
        return " avx512_bf16" in flags or " amx_bf16" in flags


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _cpu_ticks(cpus: set[int] | None) -> tuple[int, int] | None:
    """(busy, total) clock ticks of the given CPUs since boot, from /proc/stat; None without it."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    busy = total = 0
    for line in lines:
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu" or (cpus is not None and int(name[3:]) not in cpus):
            continue
        user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in fields[:8])
        busy += user + nice + system + irq + softirq + steal  # steal: taken by the hypervisor
        total += user + nice + system + idle + iowait + irq + softirq + steal
    return (busy, total) if total else None


def busy_cores(seconds: float = PROBE_SECONDS) -> float | None:
    """How many of this process's cores other programs keep busy right now.

    Linux: the CPUs' busy share over `seconds` (from /proc/stat), less this process's own CPU
    time. Elsewhere: the one-minute load average (which lags and includes this process). None
    when neither is available.
    """
    try:
        cpus: set[int] | None = os.sched_getaffinity(0)
    except AttributeError:
        cpus = None
    before, own_before = _cpu_ticks(cpus), time.process_time()
    if before is None:
        try:
            return float(os.getloadavg()[0])
        except (AttributeError, OSError):
            return None
    time.sleep(seconds)
    after, own = _cpu_ticks(cpus), time.process_time() - own_before
    if after is None or after[1] <= before[1]:
        return None
    ticks_per_second = os.sysconf("SC_CLK_TCK")
    cores = len(cpus) if cpus is not None else usable_cores()
    share = (after[0] - before[0] - own * ticks_per_second) / (after[1] - before[1])
    return max(0.0, min(1.0, share)) * cores


def choose_threads(busy: float, cores: int, default: int | None = None) -> int:
    """Torch's default, less one thread for each core that others keep busy (at least one)."""
    default = TORCH_DEFAULT_THREADS if default is None else default
    idle_cores = math.floor(cores - busy + (1 - IDLE_PER_THREAD))
    return max(1, min(default, idle_cores))


def resolve_threads(threads: Threads, device_type: str = "cpu") -> ThreadChoice:
    """An explicit count wins; then OMP_NUM_THREADS/MKL_NUM_THREADS; then, for "auto", the load."""
    if threads is not None and threads != "auto":
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ConfigError(f"threads must be a positive integer or 'auto', got {threads!r}")
        return ThreadChoice(threads, "explicit")
    if threads is None:
        return ThreadChoice(torch.get_num_threads(), "unchanged")
    if any(os.environ.get(name) for name in THREAD_ENV):
        return ThreadChoice(TORCH_DEFAULT_THREADS, "environment")
    if device_type != "cpu":  # the GPU computes; the CPU threads only feed it
        return ThreadChoice(TORCH_DEFAULT_THREADS, "auto")
    busy = busy_cores()
    cores = usable_cores()
    if busy is None:
        return ThreadChoice(TORCH_DEFAULT_THREADS, "auto", cores=cores)
    return ThreadChoice(choose_threads(busy, cores), "auto", round(busy, 2), cores)


def resolve_runtime(device: str = "auto", precision: str = "fp32", threads: Threads = None) -> Runtime:
    """Decide device, precision and CPU threads once, for the whole process.

    threads: a number sets torch's intra-op thread count; "auto" (the command line's default)
    measures how busy the cores are and leaves a thread out for each busy one; None leaves
    torch's current setting alone (for library calls and benchmarks that set it themselves).
    """
    if precision not in ("fp32", "bf16"):
        raise ConfigError(f"precision must be fp32 or bf16, got {precision!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device cuda was asked for, but torch sees no CUDA GPU (use --device cpu or auto)")
    choice = resolve_threads(threads, torch.device(device).type)
    if torch.get_num_threads() != choice.threads:
        torch.set_num_threads(choice.threads)
    return Runtime(torch.device(device), precision, choice)  # type: ignore[arg-type]


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    """Treat denormal floats as zero while training.

    Optimizer moments of weights that see no gradient (MNIST's blank border pixels) decay into
    the denormal range, where x86 arithmetic is ~20× slower: a square root over such a tensor
    took 570 µs instead of 24 µs here. Values below 1e-38 carry no information for training.
    """
    changed = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if changed:
            torch.set_flush_denormal(False)
