"""mlplab's benchmark: mlplab vs Keras 3 (TensorFlow) vs a plain PyTorch DataLoader loop.

    python bench/run.py                       # everything the issue asks for (a few minutes)
    python bench/run.py --quick               # CI smoke: 1 warm-up + 1 timed epoch, no time-to-accuracy
    python bench/run.py --models A,C --epochs 8 --precision fp32,bf16 --scaling --inference

Each contender runs in its own process (TensorFlow's and torch's thread pools never share one)
with every thread pool pinned to --threads (2 by default: OMP/MKL/TF intra-op and inter-op,
torch.set_num_threads). Order: the matmul peak, then per model Keras, DataLoader, mlplab.
While each process runs, the CPU time used by everything else on the machine is measured from
/proc/stat; a run where others used more than --noise-cores cores is marked noisy (in the
table, the JSON and the file name).

Writes <out>/<name>.json (all raw numbers, every epoch) and <out>/latest.md, prints the
markdown. --update-readme replaces the block between `<!-- bench:start -->` and
`<!-- bench:end -->` in bench/README.md with the tables, and the same block in README.md with a
short table (seconds per epoch, time to 98 %). See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    DEFAULT_THREADS, MODELS, REPO_ROOT, TARGET_ACCURACY, cpu_info, median, pin_threads_env, resolve_model,
)

PEERS = ("keras", "torch_dataloader", "mlplab")
PEER_MODULES = {
    "keras": "bench.peers.keras_peer",
    "torch_dataloader": "bench.peers.torch_dataloader_peer",
    "mlplab": "bench.peers.mlplab_peer",
}
LABELS = {"keras": "Keras 3 (TF)", "torch_dataloader": "PyTorch DataLoader", "mlplab": "mlplab"}
TTA_MODEL = "tutorial-512-512"

# Issue 5's targets (fp32, batch 128): mlplab's speed-up over Keras per model.
TARGET_SPEEDUP_VS_KERAS = {"tutorial-50-25": 6.0, "tutorial-512-512": 2.9, "tutorial-128-64": 4.3}
TARGET_BF16_512_S = 0.7
TARGET_FAST_TTA_S = 3.0


# --------------------------------------------------------------------------------------------
# running child processes


def _cpu_busy_jiffies() -> tuple[int, int] | None:
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    values = [int(v) for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    return total - idle, total


def run_child(module: str, args: list[str], threads: int, timeout: float) -> dict[str, Any]:
    """Run `python -m module args` with pinned threads; its last stdout line is a JSON object."""
    env = pin_threads_env(threads)
    cmd = [sys.executable, "-m", module, *args]
    before = _cpu_busy_jiffies()
    ru_before = os.times()
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": "error", "reason": f"timed out after {timeout:.0f} s", "command": " ".join(cmd)}
    wall = time.perf_counter() - start
    ru_after = os.times()
    after = _cpu_busy_jiffies()
    result: dict[str, Any] | None = None
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                result = json.loads(line)
                break
            except json.JSONDecodeError:
                pass
    if result is None:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
        result = {"status": "error", "reason": f"exit code {proc.returncode}, no JSON result", "stderr_tail": tail}
    elif proc.returncode != 0 and result.get("status") == "ok":
        result["status"] = "error"
        result["reason"] = f"exit code {proc.returncode}"
    if result.get("status") == "error" and "stderr_tail" not in result:
        result["stderr_tail"] = proc.stderr.strip().splitlines()[-15:]
    result["command"] = " ".join(["python", "-m", module, *args])
    result["process_wall_s"] = wall
    if before and after:
        hz = os.sysconf("SC_CLK_TCK")
        busy_s = (after[0] - before[0]) / hz
        ours_s = (ru_after.children_user + ru_after.children_system) - (ru_before.children_user + ru_before.children_system)
        # everything that ran on the machine meanwhile minus our child = other people's work
        result["others_cores"] = max(0.0, (busy_s - ours_s) / wall) if wall > 0 else None
    return result


def background_cores(seconds: float) -> float | None:
    """Cores kept busy by other processes over `seconds` while this one only sleeps."""
    before = _cpu_busy_jiffies()
    time.sleep(seconds)
    after = _cpu_busy_jiffies()
    if not before or not after or after[1] == before[1]:
        return None
    ncpu = os.cpu_count() or 1
    return ncpu * (after[0] - before[0]) / (after[1] - before[1])


def wait_for_quiet(threshold: float, patience: float, log) -> float | None:
    """Measure the background load; with `patience` > 0, wait up to that long for it to fall below threshold."""
    deadline = time.monotonic() + patience
    load = background_cores(2.0)
    while load is not None and load > threshold and time.monotonic() < deadline:
        log(f"bench: others keep {load:.2f} cores busy (> {threshold}); waiting for a quiet machine …")
        load = background_cores(10.0)
    return load


# --------------------------------------------------------------------------------------------
# the plan


def plan(args: argparse.Namespace, peak: dict[str, Any]) -> list[tuple[str, str, list[str], dict[str, Any]]]:
    """(key, module, argv, meta) for every contender run, in order."""
    runs = []
    common = ["--epochs", str(args.epochs), "--warmup", str(args.warmup), "--threads", str(args.threads)]
    for model in args.models:
        tta = (["--target-accuracy", str(TARGET_ACCURACY), "--max-epochs", str(args.tta_max_epochs)]
               if args.tta and model == TTA_MODEL else [])
        for peer in args.peers:
            if peer == "mlplab":
                for precision in args.precision:
                    argv = ["--model", model, *common, "--precision", precision]
                    if precision == "fp32":
                        argv += tta
                    runs.append((f"{model}/mlplab/{precision}", PEER_MODULES[peer], argv,
                                 {"model": model, "peer": peer, "precision": precision}))
            else:
                runs.append((f"{model}/{peer}", PEER_MODULES[peer], ["--model", model, *common, *tta],
                             {"model": model, "peer": peer, "precision": "fp32"}))
    if args.tta and args.fast_recipe and "mlplab" in args.peers:
        runs.append(("fast-recipe/mlplab", PEER_MODULES["mlplab"],
                     ["--recipe", "fast", "--threads", str(args.threads), "--warmup", "0", "--epochs", "1"],
                     {"model": TTA_MODEL, "peer": "mlplab", "precision": "recipe", "recipe": "fast"}))
    return runs


def merge_rounds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from a contender's rounds: medians over the rounds, every epoch's extremes, each round kept.

    A single round is returned as it is. Otherwise the merged result is the round with the median
    training time (its own fields), with train/epoch/val medians replaced by the medians of the
    rounds' medians, min/max over all rounds' timed epochs, and `rounds` listing what each round
    measured, so that ratios can also be taken round by round (peers ran interleaved).
    """
    ok = [r for r in runs if r.get("status") == "ok"]
    if len(runs) == 1 or not ok:
        return runs[-1]
    def basis(r: dict[str, Any]) -> float:
        return r.get("train_s_median") if r.get("train_s_median") is not None else r.get("epoch_s_median")
    merged = dict(sorted(ok, key=basis)[(len(ok) - 1) // 2])
    for field in ("train_s_median", "epoch_s_median", "val_s_median"):
        values = [r[field] for r in ok if r.get(field) is not None]
        merged[field] = median(values) if values else None
    lows = [r["train_s_min"] for r in ok if r.get("train_s_min") is not None]
    highs = [r["train_s_max"] for r in ok if r.get("train_s_max") is not None]
    merged["train_s_min"], merged["train_s_max"] = (min(lows) if lows else None), (max(highs) if highs else None)
    b = basis(merged)
    if b and merged.get("flops_per_epoch"):
        merged["samples_per_s"] = merged.get("train_samples", 60_000) / b
        merged["gflops"] = merged["flops_per_epoch"] / b / 1e9
        merged["gflops_exact"] = merged["flops_per_epoch_exact"] / b / 1e9
    others = [r["others_cores"] for r in ok if r.get("others_cores") is not None]
    merged["others_cores"] = max(others) if others else None
    merged["rounds"] = [
        {"status": r.get("status"), "basis_s": basis(r) if r.get("status") == "ok" else None,
         "time_to_accuracy_s": (r.get("time_to_accuracy") or {}).get("wall_s"), "others_cores": r.get("others_cores")}
        for r in runs
    ]
    return merged


def round_ratios(peer: dict[str, Any] | None, this: dict[str, Any]) -> list[float]:
    """peer seconds / this row's seconds, round by round (the rounds ran interleaved)."""
    a, b = (peer or {}).get("rounds") or [], this.get("rounds") or []
    return [p["basis_s"] / t["basis_s"] for p, t in zip(a, b) if p.get("basis_s") and t.get("basis_s")]


def bf16_skip_reason(peak: dict[str, Any], model: str) -> str | None:
    """Why an mlplab bf16 run would be pointless here (None when bf16 is faster than fp32)."""
    if peak.get("status") != "ok":
        return None
    ratio = peak.get("bf16_over_fp32") or 0.0
    if ratio >= 1.0:
        return None
    from bench.common import training_flops

    bf16_rate = peak["bf16"]["peak_gflops"] * 1e9
    estimate = training_flops(MODELS[model]["hidden"], 60000) / bf16_rate if bf16_rate else float("inf")
    units = "no AVX512-BF16/AMX in /proc/cpuinfo" if not peak.get("bf16_matrix_units") else "bf16 units present but torch's path is slow"
    return (f"skipped: bf16 matmul measured {peak['bf16']['peak_gflops']:.2f} GFLOP/s vs fp32 "
            f"{peak['fp32']['peak_gflops']:.0f} ({units}); an epoch would take ≈{estimate:,.0f} s "
            "at that rate (--force-bf16 runs it anyway)")


# --------------------------------------------------------------------------------------------
# tables


def _f(value: float | None, fmt: str = "{:.3f}") -> str:
    return "—" if value is None else fmt.format(value)


def _ratio(peer: dict | None, this: dict) -> str:
    a, b = (peer or {}).get("basis_s"), this.get("basis_s")
    if not a or not b:
        return "—"
    mixed = (peer or {}).get("timing_basis") != this.get("timing_basis")
    return f"{a / b:.2f}×" + ("†" if mixed else "")


def _prepare(result: dict[str, Any]) -> dict[str, Any]:
    r = dict(result)
    if r.get("status") == "ok":
        r["basis_s"] = r.get("train_s_median") if r.get("train_s_median") is not None else r.get("epoch_s_median")
    return r


def render_markdown(report: dict[str, Any]) -> str:
    peak = report["peak"]
    lines: list[str] = []
    meta = report["meta"]
    lines.append(f"## Benchmark: {meta['name']}")
    lines.append("")
    cpu = meta["cpu"]
    lines.append(f"Machine: {cpu.get('model', '?')}, {cpu.get('logical_cpus')} logical CPUs, "
                 f"AVX2 {'yes' if cpu.get('avx2') else 'no'}, AVX-512 {'yes' if cpu.get('avx512f') else 'no'}, "
                 f"bf16 matrix units (avx512_bf16/amx_bf16) {'yes' if cpu.get('bf16_matrix_units') else 'no'}. "
                 f"Threads pinned to {meta['threads']} per framework. {meta['date']}, command `{meta['command']}`.")
    lines.append("")
    if peak.get("status") == "ok":
        lines.append(
            f"Measured matmul peak ({peak['threads']} threads, torch {peak['torch']}): "
            f"fp32 **{peak['fp32']['peak_gflops']:.1f} GFLOP/s** (n={peak['fp32']['n']}, median "
            f"{peak['fp32']['median_gflops']:.1f}); bf16 **{peak['bf16']['peak_gflops']:.2f} GFLOP/s** "
            f"(n={peak['bf16']['n']}). {peak['bf16_verdict']}. At the 512-512 model's first-layer shape "
            f"({peak['mlp_shape']['fp32']['shape']}): fp32 {peak['mlp_shape']['fp32']['peak_gflops']:.1f} GFLOP/s "
            f"best, {peak['mlp_shape']['fp32']['median_gflops']:.1f} median.")
    else:
        lines.append(f"Matmul peak: not measured ({peak.get('reason')}).")
    lines.append("")
    if meta.get("noisy"):
        lines.append(f"**Noisy run:** other processes used up to {meta['max_others_cores']:.2f} cores while "
                     "contenders ran (column *others*); treat the numbers as indicative only.")
        lines.append("")
    if meta.get("rounds", 1) > 1:
        lines.append(f"Every contender ran {meta['rounds']} times, interleaved (round 1 of all, then round 2, …). "
                     "Seconds are the median over the rounds of each round's median; min–max span every timed "
                     "epoch of every round; the targets below also give the range of the round-by-round ratios.")
        lines.append("")
    lines.append("Seconds per epoch are the median over the epochs after the warm-up epoch, for the training "
                 "pass over the 60,000 training images (batch 128); *incl. val* adds the validation pass over "
                 "the 10,000 test images that the tutorial's `validation_data` asks for. "
                 "Ratios are the peer's seconds divided by the row's (> 1: the row is faster). "
                 "GFLOP/s = 6 × Σ(in×out) × 60,000 / train seconds; % peak against the measured peak of the "
                 "row's precision.")
    lines.append("")
    fp32_peak = peak.get("fp32", {}).get("peak_gflops") if peak.get("status") == "ok" else None
    bf16_peak = peak.get("bf16", {}).get("peak_gflops") if peak.get("status") == "ok" else None
    for model in report["models"]:
        spec = MODELS[model]
        widths = "→".join(str(w) for w in [784, *spec["hidden"], 10])
        extra = f", dropout {spec['dropout']}" if spec["dropout"] else ""
        lines.append(f"### {model} ({widths}{extra}, {'RMSprop' if spec['optimizer'] == 'rmsprop' else 'Adam'})")
        lines.append("")
        lines.append("| contender | train s/epoch (min–max) | incl. val | samples/s | vs Keras | vs DataLoader | GFLOP/s | % peak | test acc | others |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
        results = {k: _prepare(v) for k, v in report["results"].items() if k.startswith(model + "/")}
        keras = results.get(f"{model}/keras")
        loader = results.get(f"{model}/torch_dataloader")
        for key, r in results.items():
            label = LABELS.get(r.get("peer") or key.split("/")[1], key)
            if key.endswith("/bf16") or key.endswith("/fp32"):
                label += " " + key.rsplit("/", 1)[1]
            if r.get("status") != "ok":
                lines.append(f"| {label} | {r.get('status', '?')}: {r.get('reason', '')} | | | | | | | | |")
                continue
            span = ""
            if r.get("train_s_min") is not None:
                span = f" ({r['train_s_min']:.3f}–{r['train_s_max']:.3f})"
            train = _f(r.get("train_s_median")) + span if r.get("train_s_median") is not None else f"— (only incl. val: {_f(r.get('epoch_s_median'))})"
            peak_ref = bf16_peak if r.get("precision") == "bf16" else fp32_peak
            pct = f"{100 * r['gflops'] / peak_ref:.0f}%" if peak_ref and r.get("gflops") else "—"
            acc = r.get("final_val_accuracy")
            lines.append(
                f"| {label} | {train} | {_f(r.get('epoch_s_median'))} | {_f(r.get('samples_per_s'), '{:,.0f}')} | "
                f"{_ratio(keras, r) if key != f'{model}/keras' else '1'} | "
                f"{_ratio(loader, r) if key != f'{model}/torch_dataloader' else '1'} | "
                f"{_f(r.get('gflops'), '{:.1f}')} | {pct} | {_f(100 * acc if acc is not None else None, '{:.2f}%')} | "
                f"{_f(r.get('others_cores'), '{:.2f}')} |")
        lines.append("")
    if any("†" in line for line in lines):
        lines.append("† the two sides are timed differently (one only with its validation pass included).")
        lines.append("")

    tta_rows = [(k, _prepare(v)) for k, v in report["results"].items() if v.get("time_to_accuracy")]
    if tta_rows:
        lines.append(f"### Time to {100 * TARGET_ACCURACY:.1f} % test accuracy")
        lines.append("")
        lines.append("From just before the model is built (data already in memory) to the end of the first "
                     "evaluation on the test set that shows the target. *wall* counts everything; "
                     "*without evaluation* subtracts the test-set passes.")
        lines.append("")
        lines.append("| contender | recipe | epoch reached | wall s | without evaluation s | test acc |")
        lines.append("|---|---|---|---|---|---|")
        for key, r in tta_rows:
            t = r["time_to_accuracy"]
            label = LABELS.get(r.get("peer"), key)
            recipe = r.get("recipe") or "tutorial (512-512, batch 128, 1e-3)"
            if t.get("reached"):
                lines.append(f"| {label} | {recipe} | {t['epoch']} | {_f(t['wall_s'], '{:.2f}')} | "
                             f"{_f(t.get('train_s'), '{:.2f}')} | {100 * t['val_accuracy']:.2f}% |")
            else:
                best = t.get("best_val_accuracy")
                lines.append(f"| {label} | {recipe} | not in {t.get('epochs_run')} epochs | — | — | "
                             f"best {_f(100 * best if best else None, '{:.2f}%')} |")
        lines.append("")
    skipped = report.get("skipped", {})
    for key, reason in skipped.items():
        lines.append(f"- {key}: {reason}")
    if skipped:
        lines.append("")
    targets = check_targets(report)
    if targets:
        lines.append("### Issue targets (mlplab)")
        lines.append("")
        for text in targets:
            lines.append(f"- {text}")
        lines.append("")
    for name, extra in (("scaling", report.get("scaling")), ("inference", report.get("inference"))):
        if extra and extra.get("markdown"):
            lines.append(extra["markdown"])
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def check_targets(report: dict[str, Any]) -> list[str]:
    out = []
    res = {k: _prepare(v) for k, v in report["results"].items()}
    for model in report["models"]:
        ml, kr, dl = res.get(f"{model}/mlplab/fp32"), res.get(f"{model}/keras"), res.get(f"{model}/torch_dataloader")
        if not ml or ml.get("status") != "ok":
            continue
        if kr and kr.get("status") == "ok" and model in TARGET_SPEEDUP_VS_KERAS:
            got, want = kr["basis_s"] / ml["basis_s"], TARGET_SPEEDUP_VS_KERAS[model]
            out.append(f"{model}: {got:.2f}× Keras{_spread(round_ratios(kr, ml))} (target ≥ {want}×): "
                       f"{'met' if got >= want else 'NOT met'}")
        if dl and dl.get("status") == "ok":
            got = dl["basis_s"] / ml["basis_s"]
            out.append(f"{model}: {got:.2f}× the DataLoader loop{_spread(round_ratios(dl, ml))} (target ≥ 1×): "
                       f"{'met' if got >= 1 else 'NOT met'}")
    bf = res.get(f"{TTA_MODEL}/mlplab/bf16")
    if bf and bf.get("status") == "ok":
        s = bf["basis_s"]
        out.append(f"{TTA_MODEL} bf16: {s:.3f} s/epoch (target ≤ {TARGET_BF16_512_S} s): "
                   f"{'met' if s <= TARGET_BF16_512_S else 'NOT met'}")
    fast = res.get("fast-recipe/mlplab")
    if fast and fast.get("status") == "ok":
        t = fast.get("time_to_accuracy") or {}
        per_round = [r["time_to_accuracy_s"] for r in fast.get("rounds", []) if r.get("time_to_accuracy_s")]
        spread = f" (rounds: {min(per_round):.2f}–{max(per_round):.2f} s)" if len(per_round) > 1 else ""
        if t.get("reached"):
            out.append(f"fastest recipe to {100 * TARGET_ACCURACY:.0f} %: {t['wall_s']:.2f} s{spread} (target < {TARGET_FAST_TTA_S} s): "
                       f"{'met' if t['wall_s'] < TARGET_FAST_TTA_S else 'NOT met'}")
        else:
            out.append(f"fastest recipe did not reach {100 * TARGET_ACCURACY:.0f} % (target < {TARGET_FAST_TTA_S} s): NOT met")
    return out


def _spread(ratios: list[float]) -> str:
    return f" (rounds: {min(ratios):.2f}–{max(ratios):.2f}×)" if len(ratios) > 1 else ""


def render_short_table(report: dict[str, Any]) -> str:
    """The README's summary: seconds per training epoch of each contender, and time to 98 %."""
    meta, cpu = report["meta"], report["meta"]["cpu"]
    lines = [
        "| model | Keras 3 (TF) | PyTorch DataLoader | mlplab | mlplab vs Keras |",
        "|---|---:|---:|---:|---:|",
    ]
    for model in report["models"]:
        keras = _prepare(report["results"].get(f"{model}/keras", {}))
        loader = _prepare(report["results"].get(f"{model}/torch_dataloader", {}))
        ours = _prepare(report["results"].get(f"{model}/mlplab/fp32", {}))
        cells = [f"{_f(r.get('basis_s'))} s" if r.get("status") == "ok" else "—" for r in (keras, loader, ours)]
        ratio = _ratio(keras, ours) if ours.get("status") == "ok" else "—"
        lines.append(f"| {model} | {' | '.join(cells)} | {ratio} |")
    tta = {key: r["time_to_accuracy"] for key, r in report["results"].items()
           if r.get("time_to_accuracy", {}) and r["time_to_accuracy"].get("reached")}
    parts = []
    for key, label in ((f"{TTA_MODEL}/keras", "Keras, the tutorial's model"), (f"{TTA_MODEL}/mlplab/fp32", "mlplab, the same model"),
                       ("fast-recipe/mlplab", "mlplab, `fast-256-256`")):
        if key in tta:
            parts.append(f"{label} {tta[key]['wall_s']:.1f} s")
    lines.append("")
    lines.append(f"Seconds per training epoch (60,000 images, batch 128), {meta['threads']} threads each, on "
                 f"{cpu.get('model', '?')} ({cpu.get('logical_cpus')} logical CPUs), {meta['date'][:10]}"
                 + (" (noisy run)" if meta.get("noisy") else "") + ". "
                 + (f"Time to 98 % test accuracy: {'; '.join(parts)}. " if parts else "")
                 + f"From `{meta['command']}`.")
    return "\n".join(lines) + "\n"


def replace_block(path: Path, mark: str, markdown: str) -> str:
    """Replace what lies between `<!-- {mark}:start -->` and `<!-- {mark}:end -->` in `path`."""
    start, end = f"<!-- {mark}:start -->", f"<!-- {mark}:end -->"
    if not path.is_file():
        return f"{path} not found; not updated"
    text = path.read_text(encoding="utf-8")
    if start not in text or end not in text:
        return f"{path} has no {start} … {end} block; not updated"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{markdown}{end}{tail}", encoding="utf-8")
    return f"{path}: {mark} block replaced"


def update_readme(markdown: str, readme: Path) -> str:
    return replace_block(readme, "bench", markdown)


def update_readmes(report: dict[str, Any], markdown: str, root: Path = REPO_ROOT) -> list[str]:
    """The full tables into bench/README.md, the short table into README.md."""
    return [replace_block(root / "bench" / "README.md", "bench", markdown),
            replace_block(root / "README.md", "bench", render_short_table(report))]


# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="mlplab vs Keras vs a PyTorch DataLoader loop on MNIST",
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--models", default="tutorial-50-25,tutorial-512-512,tutorial-128-64",
                   help="comma-separated: tutorial-50-25, tutorial-512-512, tutorial-128-64 (or A, B, C)")
    p.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated subset of {','.join(PEERS)}")
    p.add_argument("--epochs", type=int, default=5, help="timed epochs per run, after the warm-up (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up epochs (default 1)")
    p.add_argument("--rounds", type=int, default=1,
                   help="run every contender this many times, interleaved, and report medians over the rounds "
                        "and the range of the per-round ratios (default 1)")
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="threads per framework (default 2)")
    p.add_argument("--precision", default="fp32", help="mlplab precisions, comma-separated: fp32,bf16")
    p.add_argument("--force-bf16", action="store_true", help="run bf16 even where the measured bf16 matmul is slower")
    p.add_argument("--no-tta", dest="tta", action="store_false", help="skip time to 98 %% accuracy")
    p.add_argument("--tta-max-epochs", type=int, default=30)
    p.add_argument("--no-fast-recipe", dest="fast_recipe", action="store_false",
                   help="skip mlplab's fastest time-to-accuracy recipe")
    p.add_argument("--quick", action="store_true", help="CI smoke: 1 warm-up + 1 timed epoch, no time-to-accuracy")
    p.add_argument("--scaling", action="store_true", help="also run bench/scaling.py (minutes)")
    p.add_argument("--inference", action="store_true", help="also run bench/inference.py")
    p.add_argument("--out", default=str(REPO_ROOT / "bench" / "results"))
    p.add_argument("--name", default=None, help="result file name (default: date-time, '-quick'/'-noisy' marked)")
    p.add_argument("--noise-cores", type=float, default=0.25,
                   help="mark the run noisy when other processes used more cores than this (default 0.25)")
    p.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                   help="before starting, wait up to this long for other processes to fall below --noise-cores")
    p.add_argument("--peer-timeout", type=float, default=1800)
    p.add_argument("--update-readme", action="store_true",
                   help="write the tables into bench/README.md's bench block and the short table into README.md's")
    p.add_argument("--from-json", default=None, help="only re-render the tables of an earlier result file")
    args = p.parse_args(argv)
    args.models = [resolve_model(m) for m in args.models.split(",") if m.strip()]
    args.peers = [x.strip() for x in args.peers.split(",") if x.strip()]
    for peer in args.peers:
        if peer not in PEERS:
            p.error(f"unknown peer {peer!r}; choose from {', '.join(PEERS)}")
    args.precision = [x.strip() for x in args.precision.split(",") if x.strip()]
    for prec in args.precision:
        if prec not in ("fp32", "bf16"):
            p.error(f"unknown precision {prec!r}")
    if args.quick:
        args.epochs, args.warmup, args.tta = 1, 1, False
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    if args.from_json:
        report = json.loads(Path(args.from_json).read_text())
        markdown = render_markdown(report)
        print(markdown)
        if args.update_readme:
            for line in update_readmes(report, markdown):
                print(line, file=sys.stderr)
        return 0

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    started = dt.datetime.now()
    log(f"bench: {len(args.models)} model(s), peers {', '.join(args.peers)}, {args.threads} threads each")
    quiet = wait_for_quiet(args.noise_cores, args.wait_idle, log)
    if quiet is not None:
        log(f"bench: background load before starting: {quiet:.2f} cores")
    log("bench: measuring the matmul peak …")
    peak = run_child("bench.peak", ["--threads", str(args.threads)], args.threads, 600)
    if peak.get("status") == "ok":
        log(f"  fp32 {peak['fp32']['peak_gflops']:.1f} GFLOP/s, bf16 {peak['bf16']['peak_gflops']:.2f} GFLOP/s "
            f"(bf16 units: {'yes' if peak['bf16_matrix_units'] else 'no'})")
    else:
        log(f"  peak failed: {peak.get('reason')}")

    rounds: dict[str, list[dict[str, Any]]] = {}
    skipped: dict[str, str] = {}
    runs = plan(args, peak)
    for key, module, argv_, meta in [run for _ in range(args.rounds) for run in runs]:
        if meta["precision"] == "bf16" and not args.force_bf16:
            reason = bf16_skip_reason(peak, meta["model"])
            if reason:
                rounds[key] = [{**meta, "status": "skipped", "reason": reason}]
                log(f"bench: {key}: {reason}")
                continue
        log(f"bench: {key} (round {len(rounds.get(key, [])) + 1} of {args.rounds}) …")
        r = run_child(module, argv_, args.threads, args.peer_timeout)
        r = {**meta, **r}
        rounds.setdefault(key, []).append(r)
        if r.get("status") == "ok":
            basis = r.get("train_s_median") if r.get("train_s_median") is not None else r.get("epoch_s_median")
            tta = r.get("time_to_accuracy")
            extra = ""
            if tta:
                extra = f", {100 * TARGET_ACCURACY:.0f}% at epoch {tta['epoch']} after {tta['wall_s']:.2f} s" if tta.get("reached") else ", target not reached"
            log(f"  {_f(basis)} s/epoch (others used {_f(r.get('others_cores'), '{:.2f}')} cores){extra}")
        else:
            log(f"  {r.get('status')}: {r.get('reason')}")
            for line in r.get("stderr_tail", [])[-5:]:
                log(f"    {line}")

    results = {key: merge_rounds(runs_of_key) for key, runs_of_key in rounds.items()}

    extras: dict[str, Any] = {}
    for flag, module in (("scaling", "bench.scaling"), ("inference", "bench.inference")):
        if getattr(args, flag):
            log(f"bench: {flag} …")
            extras[flag] = run_child(module, ["--threads", str(args.threads), "--json-only"], args.threads, 3600)

    others = [r.get("others_cores") for r in [peak, *results.values()] if r.get("others_cores") is not None]
    max_others = max(others) if others else 0.0
    noisy = max_others > args.noise_cores
    name = args.name or started.strftime("%Y-%m-%dT%H-%M-%S") + ("-quick" if args.quick else "") + ("-noisy" if noisy else "")
    report = {
        "meta": {
            "name": name, "date": started.isoformat(timespec="seconds"),
            "command": " ".join(["python", "bench/run.py", *(argv if argv is not None else sys.argv[1:])]),
            "threads": args.threads, "epochs": args.epochs, "warmup": args.warmup, "rounds": args.rounds,
            "quick": args.quick,
            "cpu": cpu_info(), "background_cores_before": quiet, "noisy": noisy, "max_others_cores": max_others, "noise_threshold_cores": args.noise_cores,
            "python": sys.version.split()[0],
        },
        "peak": peak, "models": args.models, "results": results, "skipped": skipped, **extras,
    }
    markdown = render_markdown(report)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    (out / "latest.md").write_text(markdown)
    print(markdown)
    log(f"bench: wrote {out / (name + '.json')} and {out / 'latest.md'}")
    if args.update_readme:
        for line in update_readmes(report, markdown):
            log(line)
    failed = [k for k, r in results.items() if r.get("status") == "error"]
    if failed:
        log(f"bench: failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
