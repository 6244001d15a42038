"""Where the time of a training epoch goes, seeds one after another and packed: a table per model.

    nice python bench/pack_profile.py --threads 1                  # the three tutorial models, 8 seeds
    nice python bench/pack_profile.py --threads 2 --models 50-25 --images 10000

Runs what `bench/pack.py` times (8 seeds, batch 128, 1 epoch, no validation) once with `fit` per
seed and once with `fit_pack`, with a clock around each kind of work: every call of the
hand-written step's operation lists (products, ReLU, dropout masks and their application), the
batch gathers (`index_select` of feature rows), the optimizer updates (`apply_update`, per model)
and the epoch-order draw. "loss, softmax, accuracy" is the rest of a step program's `run`; "loop"
is the rest of the epochs (schedule, metrics, callbacks, Python); "set-up" is what the timed
region of bench/pack.py spends outside the epochs (building the models, checking the data,
building the step). The clocks read this process's CPU time (`time.process_time`), which other
programs on a shared machine disturb far less than wall time; with 2 threads it counts both
threads, waiting included. Each clock costs about a microsecond per call, so the instrumented total
runs a little above the plain one (both are printed). On a CPU every torch operation is
synchronous, so a clock around a call measures the call.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import cpu_info, loadavg, resolve_model  # noqa: E402
from pack import finish, members, mnist_train  # noqa: E402

KINDS = [
    "products (forward)", "products (backward)", "relu", "dropout masks", "dropout apply",
    "loss, softmax, accuracy", "batch gather", "optimizer", "epoch order", "loop", "set-up",
]


class Clocks:
    def __init__(self, clock=time.process_time) -> None:
        self.clock = clock
        self.seconds: dict[str, float] = defaultdict(float)
        self.stack: list[float] = []  # time spent in clocked calls nested in the current one

    def wrap(self, fn, kind: str):
        seconds, nested, clock = self.seconds, self.stack, self.clock

        def clocked(*args, **kwargs):
            nested.append(0.0)
            start = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = clock() - start
                inner = nested.pop()
                seconds[kind] += spent - inner  # exclusive: nested clocks count for their own kind
                if nested:
                    nested[-1] += spent
        return clocked


def kind_of(call, backward: bool) -> str:
    fn = call.func if isinstance(call, partial) else call
    name = getattr(fn, "__name__", "")
    if name == "<lambda>":
        names = fn.__code__.co_names
        name = "addmm" if "addmm" in names else "mul" if "mul" in names else "copy_"
    if name in ("addmm", "baddbmm", "addmv", "bmm", "mm"):
        return "products (backward)" if backward else "products (forward)"
    if name in ("relu_",) or "threshold_backward" in name:
        return "relu"
    if name == "draw_mask" or name == "bernoulli_":
        return "dropout masks"
    if name in ("mul", "mul_"):
        return "dropout apply"
    return "loss, softmax, accuracy"


def instrument(clocks: Clocks, num_features: int) -> None:
    """Put clocks into the step programs, the optimizer updates and the gathers (class-wide)."""
    import torch

    from mlplab.training import gradients, loop, pack
    from mlplab.training.state import TrainingState

    def wrap_program(cls):
        original_init = cls.__init__

        def init(self, *args, **kwargs):
            original_init(self, *args, **kwargs)
            self.forward = [clocks.wrap(c, kind_of(c, False)) for c in self.forward]
            self.backward = [clocks.wrap(c, kind_of(c, True)) for c in self.backward]
        cls.__init__ = init
        cls.run = clocks.wrap(cls.run, "loss, softmax, accuracy")

    wrap_program(gradients._Program)
    wrap_program(pack._PackProgram)
    TrainingState.apply_update = clocks.wrap(TrainingState.apply_update, "optimizer")
    if hasattr(pack, "apply_updates"):  # the members' updates in grouped kernel calls
        pack.apply_updates = clocks.wrap(pack.apply_updates, "optimizer")
    pack._Pack._epoch_order = clocks.wrap(pack._Pack._epoch_order, "epoch order")
    pack._Pack._run_epoch = clocks.wrap(pack._Pack._run_epoch, "loop")
    loop.run_epoch = clocks.wrap(loop.run_epoch, "loop")  # `fit` looks it up in its module

    def gather(original):
        timed = clocks.wrap(original, "batch gather")

        def index_select(source, *args, **kwargs):  # feature rows only; the one-hot's rows are the loss's
            if source.dim() == 2 and source.shape[1] == num_features:
                return timed(source, *args, **kwargs)
            return original(source, *args, **kwargs)
        return index_select
    torch.index_select = gather(torch.index_select)
    torch.Tensor.index_select = gather(torch.Tensor.index_select)


def profile(name: str, seeds: int, train, epochs: int, runtime, packed: bool, clocks: Clocks | None) -> dict:
    from mlplab.training import fit
    from mlplab.training.pack import fit_pack

    if clocks is not None:
        clocks.seconds.clear()
    start, cpu = time.perf_counter(), time.process_time()
    group = members(name, seeds, train, epochs)
    if packed:
        fit_pack(group, runtime=runtime)
    else:
        for m in group:
            fit(m.model, m.config, m.train, runtime=runtime)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    if clocks is None:
        return {"wall": wall, "cpu": cpu}
    seconds = dict(clocks.seconds)
    seconds["set-up"] = cpu - sum(seconds.values())
    return {"wall": wall, "cpu": cpu, "kinds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="50-25,128-64,512-512")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import torch

    runtime, train = mnist_train(args.images, args.threads)
    steps = args.epochs * -(-args.images // 128)
    report = {"cpu": cpu_info(), "threads": torch.get_num_threads(), "load_before": loadavg(), "seeds": args.seeds,
              "images": args.images, "epochs": args.epochs, "steps": steps, "models": {}}
    print(f"CPU: {report['cpu'].get('model')}, {report['threads']} threads, load {report['load_before']}; "
          f"{args.seeds} seeds, {args.images} images, {steps} steps each", flush=True)
    names = [resolve_model(m) for m in args.models.split(",") if m]
    plain = {}
    for name in names:  # uninstrumented first: warm-up, and the totals the clocks are compared with
        plain[name] = {mode: min(profile(name, args.seeds, train, args.epochs, runtime, mode == "pack", None)["cpu"]
                                 for _ in range(2)) for mode in ("solo", "pack")}
    clocks = Clocks()
    instrument(clocks, 784)
    for name in names:
        rows = {mode: profile(name, args.seeds, train, args.epochs, runtime, mode == "pack", clocks)
                for mode in ("solo", "pack")}
        report["models"][name] = {"plain_seconds": plain[name], "instrumented": rows}
        per_step = 1e6 / steps  # µs per step of all the seeds (solo: the eight solo steps together)
        print(f"\n{name}: CPU µs per step for all {args.seeds} seeds (solo: their {args.seeds} steps summed)")
        print(f"| kind | one after another | packed | saved |\n|---|---:|---:|---:|")
        for kind in KINDS:
            solo, pack = rows["solo"]["kinds"].get(kind, 0.0), rows["pack"]["kinds"].get(kind, 0.0)
            print(f"| {kind} | {solo * per_step:.0f} | {pack * per_step:.0f} | {(solo - pack) * per_step:.0f} |")
        solo, pack = rows["solo"]["cpu"], rows["pack"]["cpu"]
        print(f"| **total (instrumented)** | {solo * per_step:.0f} | {pack * per_step:.0f} | {(solo - pack) * per_step:.0f} |")
        s, p = plain[name]["solo"], plain[name]["pack"]
        print(f"| total (plain, best of 2) | {s * per_step:.0f} | {p * per_step:.0f} | speed-up {s / p:.2f}x |", flush=True)
    finish(report, args.json)


if __name__ == "__main__":
    main()
