"""Measure the training recipes: each trained with `mlplab train RECIPE --seed S`, its test accuracy read once.

    python bench/recipes.py                                   # every recipe, seeds 0-2
    python bench/recipes.py --recipes recipe-small-40k recipe-670k --seeds 3
    python bench/recipes.py --recipes recipe-fashion --seeds 1
    python bench/recipes.py --quick                           # smoke test: 500 images, 1 epoch (figures meaningless)

Every run is a fresh `mlplab train` process (what a user runs), its run directory kept under
--runs (default bench/results/recipe-runs/, not committed); a run that already finished there is
reused, so the command can be stopped and run again, or run recipe by recipe. The results (per run
and per recipe: mean ± standard deviation of the test accuracy over the seeds, training seconds,
training FLOPs, the budget and target, the load average around each run, the CPU) go to
bench/results/recipes-<time>.json and .md. The recipes themselves were chosen on a validation split
with bench/recipe_search.py; nothing here feeds back into them.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO_ROOT, cpu_info, loadavg  # noqa: E402

RESULTS = REPO_ROOT / "bench" / "results"
QUICK = ["--limit", "500", "--epochs", "1"]
TRAIN = "import sys; from mlplab.cli.main import main; sys.exit(main(sys.argv[1:]))"


def train_once(name: str, seed: int, run_dir: Path, *, threads: str, quick: bool) -> dict[str, Any]:
    """Train one recipe with one seed (or reuse the finished run in `run_dir`) and read its figures."""
    metrics_file, measured_file = run_dir / "metrics.json", run_dir / "bench.json"
    reused = metrics_file.is_file() and measured_file.is_file()
    if not reused:
        if run_dir.exists():  # an unfinished run from an earlier attempt: its time would not be one run's
            shutil.rmtree(run_dir)
        command = [sys.executable, "-c", TRAIN, "train", name, "--seed", str(seed), "--out", str(run_dir),
                   "--threads", threads, "--verbose", "2", *(QUICK if quick else [])]
        print(f"$ mlplab {' '.join(command[3:])}", flush=True)
        before, started, cpu = loadavg(), time.perf_counter(), _children_cpu_seconds()
        subprocess.run(command, check=True)
        measured_file.write_text(json.dumps({
            "loadavg_before": before, "loadavg_after": loadavg(),
            "process_seconds": round(time.perf_counter() - started, 2),
            # CPU time of the whole `mlplab train` process (start-up, data, training, test): on a busy
            # machine far closer than the wall time to what the run takes on an idle core.
            "process_cpu_seconds": round(_children_cpu_seconds() - cpu, 2),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")
    measured = json.loads(measured_file.read_text())
    metrics = json.loads(metrics_file.read_text())
    info = json.loads((run_dir / "run.json").read_text())
    model = json.loads((run_dir / "model.json").read_text())
    return {
        "recipe": name, "seed": seed, "run_dir": str(run_dir), "reused": reused,
        "test_accuracy": metrics["test_accuracy"], "test_loss": metrics["test_loss"],
        "train_seconds": metrics["train_seconds"], "train_flops": metrics["train_flops"],
        "epochs": metrics["epochs_run"], "train_samples": metrics["train_samples"],
        "params": _params(model), "threads": info.get("runtime", {}).get("threads"),
        "gradients": info.get("runtime", {}).get("gradients"),
        **measured,
    }


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _params(model: dict[str, Any]) -> int | None:
    from mlplab.config import config_from_dict
    from mlplab.model import summarize

    config = config_from_dict(model["config"])
    shape = model.get("image_shape") or [28, 28]
    classes = len(model.get("class_names") or range(10))
    return summarize(config.model, shape[0] * shape[1], classes).total_params


def summarize_recipe(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    from mlplab.studies.recipes import recipe

    spec = recipe(name)
    acc = [r["test_accuracy"] for r in runs]
    secs = [r["train_seconds"] for r in runs]
    sd = (lambda xs: statistics.stdev(xs) if len(xs) > 1 else None)
    mean_acc = statistics.fmean(acc)
    return {
        "recipe": name, "title": spec.title, "seeds": len(runs), "params": runs[0]["params"],
        "test_accuracy_mean": mean_acc, "test_accuracy_sd": sd(acc),
        "train_seconds_mean": statistics.fmean(secs), "train_seconds_sd": sd(secs),
        "process_cpu_seconds": [r.get("process_cpu_seconds") for r in runs],
        "loadavg_1min": [r["loadavg_before"][0] if r.get("loadavg_before") else None for r in runs],
        "train_flops": statistics.fmean(r["train_flops"] for r in runs), "epochs": runs[0]["epochs"],
        "budget_s": spec.budget_s, "target": spec.target,
        "target_met": mean_acc >= spec.target, "within_budget": max(secs) <= spec.budget_s,
        "max_params": spec.max_params, "augmentation_allowed": spec.augmentation,
    }


def _flops(value: float) -> str:
    for unit, size in (("P", 1e15), ("T", 1e12), ("G", 1e9)):
        if value >= size:
            return f"{value / size:.3g} {unit}"
    return f"{value:.3g}"


def _list(values: list[float | None], unit: str = "") -> str:
    return ", ".join("not recorded" if v is None else f"{v:.0f}{unit}" if unit else f"{v:.1f}" for v in values)


def markdown(summary: list[dict[str, Any]], cpu: dict[str, Any], quick: bool) -> str:
    lines = [
        "| recipe | row | params | seeds | test accuracy (mean ± sd) | target | training wall time (mean ± sd) "
        "| process CPU time per run | load average (1 min) at start | budget | training FLOPs |",
        "|---|---|---:|---:|---|---:|---|---|---|---:|---:|",
    ]
    for s in summary:
        acc = f"{s['test_accuracy_mean'] * 100:.2f} %" + (f" ± {s['test_accuracy_sd'] * 100:.2f}" if s["test_accuracy_sd"] is not None else " (1 seed)")
        secs = f"{s['train_seconds_mean']:.1f} s" + (f" ± {s['train_seconds_sd']:.1f}" if s["train_seconds_sd"] is not None else "")
        lines.append(
            f"| {s['recipe']} | {s['title']} | {s['params']:,} | {s['seeds']} | {acc} | {s['target'] * 100:.1f} % "
            f"{'met' if s['target_met'] else 'missed'} | {secs} | {_list(s['process_cpu_seconds'], ' s')} "
            f"| {_list(s['loadavg_1min'])} | {s['budget_s']:.0f} s | {_flops(s['train_flops'])} |"
        )
    note = " QUICK MODE (500 images, 1 epoch): not a measurement." if quick else ""
    lines.append(f"\nCPU: {cpu.get('model', '?')} ({cpu.get('logical_cpus')} logical CPUs).{note}")
    return "\n".join(lines) + "\n"


def main() -> None:
    from mlplab.studies.recipes import RECIPES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", default=[r.config for r in RECIPES], help="recipes to measure (default: all)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per recipe (default 3)")
    parser.add_argument("--seed", type=int, action="append", default=None,
                        help="train only this seed (repeatable; to run seeds in separate processes, then --seeds N collects them)")
    parser.add_argument("--threads", default="auto", help="passed to mlplab train (default auto)")
    parser.add_argument("--runs", type=Path, default=RESULTS / "recipe-runs", help="run directories (default bench/results/recipe-runs)")
    parser.add_argument("--out", type=Path, default=None, help="results file stem (default bench/results/recipes-<time>)")
    parser.add_argument("--quick", action="store_true", help="500 images, 1 epoch: checks the harness, measures nothing")
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")

    runs_root = args.runs / ("quick" if args.quick else "full")
    per_run, summary = [], []
    for name in args.recipes:
        runs = [train_once(name, seed, runs_root / f"{name}-seed{seed}", threads=args.threads, quick=args.quick)
                for seed in (args.seed or range(args.seeds))]
        per_run += runs
        summary.append(summarize_recipe(name, runs))
    cpu = cpu_info()
    stem = args.out or RESULTS / time.strftime("recipes-%Y-%m-%dT%H-%M-%S", time.gmtime())
    stem.parent.mkdir(parents=True, exist_ok=True)
    result = {"command": " ".join(["python", "bench/recipes.py", *sys.argv[1:]]), "quick": args.quick, "cpu": cpu,
              "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "recipes": summary, "runs": per_run}
    Path(f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(summary, cpu, args.quick)
    Path(f"{stem}.md").write_text(table)
    print(table + f"\nwritten: {stem}.json, {stem}.md")


if __name__ == "__main__":
    main()
