"""How fast `mlplab search` runs trials, and how much of a trial is not training.

    python bench/search_speed.py --trials 6 --limit 5000

Runs tutorial-space twice into fresh folders, with 1 and then 2 workers (each worker one process
that loads the data once and keeps torch imported across trials), and reports:
  - trials per minute (complete trials / wall time of the whole search, start-up included);
  - overhead per trial: 1 - (time inside the training epochs, the runs' train_seconds) /
    (the trial's wall time from Optuna's start to complete stamps): data preparation, model
    building, the run directory's files, the test score and the storage's bookkeeping.
Bounded by --trials and --limit; the refit and the reference models are skipped (not trials).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import cpu_info  # noqa: E402


def measure(workers: int, trials: int, limit: int, root: Path) -> dict:
    from optuna.trial import TrialState

    from mlplab.studies.search import SearchPlan, run_search
    from mlplab.studies.search.study import open_study
    from mlplab.studies.search.space import load_space

    plan = SearchPlan("tutorial-space", root / f"w{workers}", trials=trials, limit=limit, workers=workers,
                      refit_top=0, reference=False)
    start = time.perf_counter()
    run_search(plan, print_fn=lambda line: None, finish=False)
    wall = time.perf_counter() - start
    study = open_study(plan, load_space("tutorial-space"), worker=1)
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    trial_wall = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in done)
    train = sum(t.user_attrs["figures"]["seconds"] for t in done)
    return {"workers": workers, "trials": len(done), "wall_seconds": round(wall, 1),
            "trials_per_minute": round(60 * len(done) / wall, 2), "trial_seconds_mean": round(trial_wall / len(done), 2),
            "train_seconds_mean": round(train / len(done), 2), "overhead_fraction": round(1 - train / trial_wall, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--limit", type=int, default=5000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="mlplab-search-bench-") as tmp:
        for workers in args.workers:
            rows.append(measure(workers, args.trials, args.limit, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    cpu = cpu_info()
    print(f"CPU: {cpu.get('model', cpu)}; {cpu.get('logical_cpus')} logical CPUs")
    print("| workers | trials | wall s | trials/min | trial s (mean) | in epochs s (mean) | overhead |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workers']} | {r['trials']} | {r['wall_seconds']} | {r['trials_per_minute']} | "
              f"{r['trial_seconds_mean']} | {r['train_seconds_mean']} | {r['overhead_fraction']:.1%} |")


if __name__ == "__main__":
    main()
