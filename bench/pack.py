"""Packed training against one seed after another: seeds per second, same process, same data.

    nice python bench/pack.py                      # 8 seeds, 20,000 MNIST images, 1 epoch, the three models
    nice python bench/pack.py --seeds 8 --images 10000 --epochs 2 --models 50-25
    nice python bench/pack.py --models none --reproduce 5 --limit 10000 --max-epochs 3

`--reproduce N` also times `mlplab reproduce --seeds N` end to end (data, training, refits,
report), with --no-pack and with packing, alternating over the rounds in fresh folders.

For each tutorial model, trains `--seeds` seeds (batch 128, the tutorial's optimizer and dropout,
no early stopping, no validation pass, so only training is timed) twice: one `fit` after another,
then all of them at once with `fit_pack`. Both orders alternate over `--rounds` rounds and the
best round of each is kept (the machine is shared; the least disturbed round is the closest to
what the code costs). Reports seeds per second for each and the speed-up (wall clock, and CPU time
of this process, which a busy machine disturbs less), against the goals of issue 14
(50-25 ≥ 4×, 128-64 ≥ 2.5×, 512-512 ≥ 1.2×), with the CPU and its load.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import MODELS, cpu_info, loadavg, resolve_model  # noqa: E402

GOALS = {"tutorial-50-25": 4.0, "tutorial-128-64": 2.5, "tutorial-512-512": 1.2}


def members(name: str, seeds: int, train, epochs: int):
    from mlplab.config import load_config
    from mlplab.model.build import build_model
    from mlplab.training.pack import PackMember

    config = load_config(name)
    training = config.training.model_copy(update={"epochs": epochs, "early_stopping": None})
    out = []
    for seed in range(seeds):
        seeded = training.model_copy(update={"seed": seed})
        out.append(PackMember(build_model(config.model, 784, 10, seed=seed), seeded, train))
    return out


def solo_seconds(name: str, seeds: int, train, epochs: int, runtime) -> tuple[float, float]:
    """(wall, CPU) seconds to build and train the seeds one after another."""
    from mlplab.training import fit

    start, cpu = time.perf_counter(), time.process_time()
    for member in members(name, seeds, train, epochs):
        fit(member.model, member.config, member.train, runtime=runtime)
    return time.perf_counter() - start, time.process_time() - cpu


def pack_seconds(name: str, seeds: int, train, epochs: int, runtime) -> tuple[float, float]:
    """(wall, CPU) seconds to build and train the seeds as one pack."""
    from mlplab.training.pack import fit_pack, pack_support

    start, cpu = time.perf_counter(), time.process_time()
    group = members(name, seeds, train, epochs)
    support = pack_support(group, runtime)
    if not support.ok:
        raise SystemExit(f"{name}: not packable ({support.reason})")
    fit_pack(group, runtime=runtime)
    return time.perf_counter() - start, time.process_time() - cpu


def reproduce_seconds(seeds: int, limit: int, max_epochs: int, threads: int, pack: bool, root: Path) -> float:
    """Wall seconds of one `mlplab reproduce --seeds N` into a fresh folder."""
    import os
    import subprocess

    out = root / f"{'pack' if pack else 'solo'}-{time.time_ns()}"
    command = [sys.executable, "-m", "mlplab.cli.main", "reproduce", "--seeds", str(seeds), "--limit", str(limit),
               "--max-epochs", str(max_epochs), "--threads", str(threads), "--verbose", "0", "--out", str(out),
               "--pack" if pack else "--no-pack"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def mnist_train(images: int, threads: int):
    """(runtime, (features, labels)): the first `images` MNIST training images, flattened and scaled."""
    import torch

    from mlplab.data import load_dataset
    from mlplab.data.preprocess import flatten_scale
    from mlplab.training.device import resolve_runtime

    runtime = resolve_runtime("cpu", "fp32", threads)
    dataset = load_dataset("mnist").subset(train=images, test=1)
    return runtime, (torch.from_numpy(flatten_scale(dataset.x_train)), torch.from_numpy(dataset.y_train.astype("int64")))


def finish(report: dict, path: Path | None) -> None:
    """Record the load after the run, and write the report where asked."""
    report["load_after"] = loadavg()
    print(f"load after: {report['load_after']}")
    if path:
        path.write_text(json.dumps(report, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="50-25,128-64,512-512")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--images", type=int, default=20000, help="first N MNIST training images (default 20000)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; the best of each is kept")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reproduce", type=int, default=0, metavar="N",
                        help="also time `mlplab reproduce --seeds N` with and without packing (default: not)")
    parser.add_argument("--limit", type=int, default=10000, help="reproduce's --limit (default 10000)")
    parser.add_argument("--max-epochs", type=int, default=3, help="reproduce's --max-epochs (default 3)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    import torch

    runtime, train = mnist_train(args.images, args.threads)
    report = {"cpu": cpu_info(), "threads": torch.get_num_threads(), "load_before": loadavg(), "seeds": args.seeds,
              "images": args.images, "epochs": args.epochs, "batch_size": 128, "models": {}}
    print(f"CPU: {report['cpu'].get('model')}, {report['threads']} threads, load {report['load_before']}", flush=True)
    for key in [m for m in args.models.split(",") if m and m != "none"]:
        name = resolve_model(key)
        solo, pack = [], []
        for _ in range(args.rounds):
            solo.append(solo_seconds(name, args.seeds, train, args.epochs, runtime))
            pack.append(pack_seconds(name, args.seeds, train, args.epochs, runtime))
        wall_solo, wall_pack = min(s[0] for s in solo), min(p[0] for p in pack)
        cpu_solo, cpu_pack = min(s[1] for s in solo), min(p[1] for p in pack)
        row = {"solo_seconds": [[round(v, 3) for v in s] for s in solo],
               "pack_seconds": [[round(v, 3) for v in p] for p in pack],
               "solo_seeds_per_s": args.seeds / wall_solo, "pack_seeds_per_s": args.seeds / wall_pack,
               "speedup": wall_solo / wall_pack, "cpu_speedup": cpu_solo / cpu_pack,
               "goal": GOALS.get(name), "hidden": MODELS[name]["hidden"]}
        report["models"][name] = row
        print(f"{name}: {row['solo_seeds_per_s']:.3f} seeds/s one after another, {row['pack_seeds_per_s']:.3f} "
              f"packed: {row['speedup']:.2f}x wall, {row['cpu_speedup']:.2f}x CPU time (goal {row['goal']}x)",
              flush=True)
    if args.reproduce:
        import tempfile

        solo, pack = [], []
        with tempfile.TemporaryDirectory(prefix="mlplab-pack-bench-") as tmp:
            for _ in range(args.rounds):
                solo.append(reproduce_seconds(args.reproduce, args.limit, args.max_epochs, args.threads, False, Path(tmp)))
                pack.append(reproduce_seconds(args.reproduce, args.limit, args.max_epochs, args.threads, True, Path(tmp)))
        row = {"seeds": args.reproduce, "limit": args.limit, "max_epochs": args.max_epochs,
               "solo_seconds": [round(v, 2) for v in solo], "pack_seconds": [round(v, 2) for v in pack],
               "speedup": min(solo) / min(pack)}
        report["reproduce"] = row
        print(f"reproduce --seeds {args.reproduce} --limit {args.limit} --max-epochs {args.max_epochs}: "
              f"{min(solo):.1f} s one after another, {min(pack):.1f} s packed: {row['speedup']:.2f}x", flush=True)
    finish(report, args.json)


if __name__ == "__main__":
    main()
