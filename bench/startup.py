"""How long `mlplab` takes to start: each command in a fresh interpreter, next to `python -c pass`.

    python bench/startup.py                  # 7 runs of each command, medians, a markdown table
    python bench/startup.py --runs 15 --update   # and write the table into bench/README.md and docs/speed.md

What a user waits for between pressing Enter and the prompt coming back, for the commands that do
not train: the interpreter, the imports and the command's own work. `import torch` is timed as
well, for scale: every command that imports it pays that much more. The console script is what
`pip install` writes (`from mlplab.cli.main import run; run()`), run with this interpreter.
Also records the CPU and how busy the machine was: on a busy machine every figure grows.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO_ROOT, cpu_info, loadavg  # noqa: E402
from bench.run import background_cores, replace_block  # noqa: E402

CLI = "from mlplab.cli.main import run; run()"
COMMANDS: list[tuple[str, list[str], str | None]] = [
    ("python -c pass", ["-c", "pass"], None),
    ("mlplab --version", ["-c", CLI, "--version"], None),
    ("mlplab --help", ["-c", CLI, "--help"], "0.3"),
    ("mlplab configs", ["-c", CLI, "configs"], None),
    ("mlplab data list", ["-c", CLI, "data", "list"], None),
    ("mlplab data info mnist", ["-c", CLI, "data", "info", "mnist"], "0.6"),
    ("mlplab summary tutorial-512-512", ["-c", CLI, "summary", "tutorial-512-512"], None),
    ("python -c 'import torch'", ["-c", "import torch"], None),
]
MARK = "startup"


def time_command(args: list[str], runs: int, src: str | None = None) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds of `runs` fresh processes (after one untimed run that warms the file cache).

    Wall-clock time is what the user waits for; on a busy machine it is CPU time (user + system of
    the child) stretched by the wait for a core, so CPU time depends far less on the load.
    """
    env = {**os.environ, "COLUMNS": "100"}
    if src:  # time another checkout's mlplab (e.g. before a change) with the same interpreter
        env["PYTHONPATH"] = str(Path(src).resolve())
    walls, cpus = [], []
    for i in range(runs + 1):
        before = os.times()
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        after = os.times()
        if proc.returncode != 0:  # e.g. an option an older checkout does not have
            print(f"{' '.join(args)} failed: {proc.stderr.strip()[-300:]}", file=sys.stderr)
            return [], []
        if i:
            walls.append(elapsed)
            cpus.append((after.children_user + after.children_system) - (before.children_user + before.children_system))
    return walls, cpus


def measure(runs: int, src: str | None = None) -> tuple[list[dict], dict]:
    before = background_cores(1.0)
    rows = []
    for label, args, target in COMMANDS:
        walls, cpus = time_command(args, runs, src)
        if not walls:
            continue
        rows.append({"command": label, "median_s": statistics.median(walls), "min_s": min(walls),
                     "max_s": max(walls), "cpu_s": statistics.median(cpus), "target_s": target})
    meta = {"cpu": cpu_info(), "runs": runs, "src": src, "others_cores_before": before, "loadavg_after": loadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    return rows, meta


def render(rows: list[dict], meta: dict) -> str:
    cpu = meta["cpu"]
    busy = meta["others_cores_before"]
    lines = [
        f"Start-up, {meta['date']}: {cpu.get('model', 'unknown CPU')}, {cpu.get('logical_cpus')} logical CPUs, "
        f"Python {cpu.get('python')}; median of {meta['runs']} fresh processes; CPU s is the process's user + "
        f"system time, which depends far less on the load than wall time. Other programs kept "
        f"{busy:.1f} cores busy before the run, load average after {meta['loadavg_after']}. "
        f"Command: `python bench/startup.py{' --src ' + meta['src'] if meta['src'] else ''}`.",
        "",
        "| command | wall s, median | min–max | CPU s, median | target (wall) |",
        "|---|---:|---|---:|---|",
    ]
    for row in rows:
        target = f"< {row['target_s']} s" if row["target_s"] else ""
        lines.append(f"| `{row['command']}` | {row['median_s']:.3f} | {row['min_s']:.3f}–{row['max_s']:.3f} | "
                     f"{row['cpu_s']:.3f} | {target} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="timed processes per command (default 7)")
    parser.add_argument("--src", default=None,
                        help="time the mlplab in this source folder (PYTHONPATH), e.g. an older checkout's src/")
    parser.add_argument("--update", action="store_true",
                        help="write the table into bench/README.md and docs/speed.md (between startup markers)")
    args = parser.parse_args(argv)
    rows, meta = measure(args.runs, args.src)
    markdown = render(rows, meta)
    print(markdown)
    if args.update:
        for path in (REPO_ROOT / "bench" / "README.md", REPO_ROOT / "docs" / "speed.md"):
            print(replace_block(path, MARK, markdown), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
