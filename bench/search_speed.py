"""How fast `mlplab search` runs trials, and how much of a trial is not training.

    python bench/search_speed.py --trials 4 --limit 2000

Runs tutorial-space into fresh folders once per layout (default: 1 worker x 2 threads, the default
on 2 cores; 1 worker x 1 thread; 2 workers x 1 thread; each worker one process that loads the data
once and keeps torch imported across trials). Every layout trains the SAME trials: their parameters
are drawn once (seeded) and queued into each study, so the layouts differ only in how they run them.
Reports, per layout:
  - trials per minute (complete trials / wall time of the whole search, start-up included);
  - overhead per trial: 1 - (time inside the training epochs, the runs' train_seconds) /
    (the trial's wall time from Optuna's start to complete stamps): data preparation, model
    building, the run directory's files, the test score and the storage's bookkeeping;
  - the load average before and after (the machine may be shared: other jobs change the figures).
Bounded by --trials and --limit; the refit and the reference models are skipped (not trials).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import cpu_info, loadavg  # noqa: E402

SPACE = "tutorial-space"


def drawn_trials(count: int, seed: int) -> list[dict]:
    """`count` parameter sets of the space, drawn at random once (the same for every layout)."""
    import optuna

    from mlplab.studies.search.space import load_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space(SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    params = []
    for _ in range(count):
        trial = study.ask()
        space.sample(trial)
        params.append(dict(trial.params))
        study.tell(trial, 0.0)
    return params


def measure(workers: int, threads: int, params: list[dict], limit: int, root: Path) -> dict:
    from optuna.trial import TrialState

    from mlplab.studies.search import SearchPlan, run_search
    from mlplab.studies.search.space import load_space
    from mlplab.studies.search.study import open_study

    plan = SearchPlan(SPACE, root / f"w{workers}x{threads}", trials=len(params), limit=limit, workers=workers,
                      threads=threads, refit_top=0, reference=False)
    study = open_study(plan, load_space(SPACE))
    for p in params:
        study.enqueue_trial(p)
    load_before = loadavg()
    start = time.perf_counter()
    run_search(plan, print_fn=lambda line: None, finish=False)
    wall = time.perf_counter() - start
    load_after = loadavg()
    study = open_study(plan, load_space(SPACE), worker=1)
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    trial_wall = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in done)
    train = sum(t.user_attrs["figures"]["seconds"] for t in done)
    return {"workers": workers, "threads": threads, "trials": len(done), "wall_seconds": round(wall, 1),
            "trials_per_minute": round(60 * len(done) / wall, 2), "trial_seconds_mean": round(trial_wall / len(done), 2),
            "train_seconds_mean": round(train / len(done), 2), "overhead_fraction": round(1 - train / trial_wall, 3),
            "load_before": load_before, "load_after": load_after}


def layout(text: str) -> tuple[int, int]:
    workers, _, threads = text.partition("x")
    return int(workers), int(threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0, help="seed of the drawn trials")
    parser.add_argument("--layouts", type=layout, nargs="+", default=[(1, 2), (1, 1), (2, 1)],
                        help="WORKERSxTHREADS per worker (default: 1x2 1x1 2x1)")
    args = parser.parse_args()
    params = drawn_trials(args.trials, args.seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="mlplab-search-bench-") as tmp:
        for workers, threads in args.layouts:
            rows.append(measure(workers, threads, params, args.limit, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    cpu = cpu_info()
    print(f"CPU: {cpu.get('model', cpu)}; {cpu.get('logical_cpus')} logical CPUs "
          f"({len(os.sched_getaffinity(0))} usable); the same {args.trials} trials in every layout, --limit {args.limit}")
    print("| workers x threads | trials | wall s | trials/min | trial s (mean) | in epochs s (mean) | overhead | load avg before -> after |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workers']} x {r['threads']} | {r['trials']} | {r['wall_seconds']} | {r['trials_per_minute']} | "
              f"{r['trial_seconds_mean']} | {r['train_seconds_mean']} | {r['overhead_fraction']:.1%} | "
              f"{r['load_before'][0] if r['load_before'] else '?'} -> {r['load_after'][0] if r['load_after'] else '?'} |")


if __name__ == "__main__":
    main()
