"""The benchmark harness: rounds merge into medians, and the real command runs end to end (quick mode)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.run import merge_rounds, round_ratios  # noqa: E402


def run_result(train_s, epochs=(0.5,), others=0.0, tta=None):
    return {"status": "ok", "train_s_median": train_s, "epoch_s_median": train_s + 0.05, "val_s_median": 0.05,
            "train_s_min": min(epochs), "train_s_max": max(epochs), "flops_per_epoch": 6e9,
            "flops_per_epoch_exact": 5e9, "train_samples": 60_000, "others_cores": others,
            "time_to_accuracy": {"wall_s": tta} if tta else None}


def test_one_round_is_returned_unchanged():
    r = run_result(1.0)
    assert merge_rounds([r]) is r


def test_rounds_merge_into_medians_and_keep_each_round():
    runs = [run_result(1.0, (0.9, 1.1), tta=3.0), run_result(3.0, (2.5, 3.5), others=0.4, tta=5.0),
            run_result(2.0, (1.8, 2.2), tta=4.0)]
    merged = merge_rounds(runs)
    assert merged["train_s_median"] == 2.0 and merged["epoch_s_median"] == 2.05
    assert (merged["train_s_min"], merged["train_s_max"]) == (0.9, 3.5)
    assert merged["samples_per_s"] == 30_000 and merged["gflops"] == 3.0
    assert merged["others_cores"] == 0.4
    assert [r["basis_s"] for r in merged["rounds"]] == [1.0, 3.0, 2.0]
    assert merged["time_to_accuracy"]["wall_s"] == 4.0  # the median round's own


def test_failed_rounds_are_listed_but_not_counted():
    runs = [run_result(1.0), {"status": "error", "reason": "boom"}, run_result(3.0)]
    merged = merge_rounds(runs)
    assert merged["train_s_median"] == 2.0
    assert [r["status"] for r in merged["rounds"]] == ["ok", "error", "ok"]
    assert merge_rounds([{"status": "error"}, {"status": "error", "reason": "last"}])["reason"] == "last"


def test_ratios_pair_rounds_in_order():
    peer = merge_rounds([run_result(2.0), run_result(4.0)])
    ours = merge_rounds([run_result(1.0), run_result(1.0)])
    assert round_ratios(peer, ours) == [2.0, 4.0]
    assert round_ratios(None, ours) == []


@pytest.mark.slow
def test_bench_quick_runs_the_real_command(tmp_path, data_dir):
    env = {**os.environ, "MLPLAB_DATA_DIR": str(data_dir)}
    out = subprocess.run(
        [sys.executable, "bench/run.py", "--quick", "--models", "A", "--peers", "mlplab", "--rounds", "2",
         "--out", str(tmp_path), "--name", "smoke"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads((tmp_path / "smoke.json").read_text())
    result = report["results"]["tutorial-50-25/mlplab/fp32"]
    assert result["status"] == "ok" and len(result["rounds"]) == 2
    assert 0 < result["train_s_median"] < 60
    assert "tutorial-50-25" in (tmp_path / "latest.md").read_text()


def test_update_readme_writes_the_tables_to_bench_and_a_short_table_to_the_readme(tmp_path):
    from bench.run import render_markdown, update_readmes

    report = json.loads(next((REPO / "bench" / "results").glob("2026-11-28T18-31-33.json")).read_text())
    (tmp_path / "bench").mkdir()
    for path in (tmp_path / "README.md", tmp_path / "bench" / "README.md"):
        path.write_text("intro\n<!-- bench:start -->\nold\n<!-- bench:end -->\nrest\n")
    assert all("block replaced" in line for line in update_readmes(report, render_markdown(report), tmp_path))
    full, short = (tmp_path / "bench" / "README.md").read_text(), (tmp_path / "README.md").read_text()
    assert "### Scaling" in full and "old" not in full and full.endswith("rest\n")
    assert "### Scaling" not in short and "| tutorial-512-512 | 4.776 s | 3.670 s | 2.029 s | 2.35× |" in short
    assert "AMD EPYC" in short and short.startswith("intro\n") and short.endswith("rest\n")
    for path in (REPO / "README.md", REPO / "bench" / "README.md"):  # where `make bench` writes
        text = path.read_text()
        assert "<!-- bench:start -->" in text and "<!-- bench:end -->" in text, path


def test_recipe_results_are_mean_and_sd_over_seeds_against_the_rows_target_and_budget():
    from bench.recipes import markdown, summarize_recipe

    def run(seed, acc, secs):
        return {"seed": seed, "test_accuracy": acc, "train_seconds": secs, "train_flops": 4e12, "params": 669_706, "epochs": 24}

    three = summarize_recipe("recipe-670k", [run(0, 0.988, 170.0), run(1, 0.990, 175.0), run(2, 0.989, 190.0)])
    assert three["seeds"] == 3 and abs(three["test_accuracy_mean"] - 0.989) < 1e-12
    assert abs(three["test_accuracy_sd"] - 0.001) < 1e-12 and abs(three["train_seconds_mean"] - 535 / 3) < 1e-9
    assert three["target_met"] and not three["within_budget"]  # one seed over the 180 s budget
    one = summarize_recipe("recipe-small-40k", [run(0, 0.97, 20.0)])
    assert one["test_accuracy_sd"] is None and not one["target_met"] and one["within_budget"]
    table = markdown([three, one], {"model": "AMD EPYC", "logical_cpus": 2}, quick=False)
    assert "98.90 % ± 0.10" in table and "97.00 % (1 seed)" in table and "AMD EPYC" in table and "4 T" in table


@pytest.mark.slow
def test_bench_pack_runs_and_records_the_cpu(tmp_path, data_dir):
    """bench/pack.py end to end on a tiny slice (the figures themselves are bench/README.md's, not a test's)."""
    env = {**os.environ, "MLPLAB_DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO / "src")}
    out = tmp_path / "pack.json"
    subprocess.run([sys.executable, str(REPO / "bench" / "pack.py"), "--models", "50-25", "--seeds", "2",
                    "--images", "600", "--rounds", "1", "--threads", "1", "--json", str(out)],
                   check=True, env=env, capture_output=True, timeout=300)
    report = json.loads(out.read_text())
    row = report["models"]["tutorial-50-25"]
    assert report["cpu"]["logical_cpus"] >= 1 and report["seeds"] == 2
    assert row["solo_seeds_per_s"] > 0 and row["pack_seeds_per_s"] > 0 and row["goal"] == 4.0


@pytest.mark.slow
def test_bench_pack_profile_clocks_every_kind_of_work_in_both_paths(tmp_path, data_dir):
    """bench/pack_profile.py on a tiny slice: its clocks reach the products, dropout, gathers and
    optimizer of both paths (a clock that no longer reaches its code would read zero here)."""
    env = {**os.environ, "MLPLAB_DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO / "src")}
    out = tmp_path / "profile.json"
    subprocess.run([sys.executable, str(REPO / "bench" / "pack_profile.py"), "--models", "128-64", "--seeds", "2",
                    "--images", "600", "--threads", "1", "--json", str(out)],
                   check=True, env=env, capture_output=True, timeout=300)
    report = json.loads(out.read_text())
    rows = report["models"]["tutorial-128-64"]["instrumented"]
    for mode in ("solo", "pack"):
        kinds = rows[mode]["kinds"]
        for kind in ("products (forward)", "products (backward)", "relu", "dropout masks", "dropout apply",
                     "loss, softmax, accuracy", "batch gather", "optimizer", "loop"):
            assert kinds[kind] > 0, (mode, kind)
    assert rows["pack"]["kinds"]["epoch order"] > 0
