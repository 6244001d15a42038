"""Test one module's mutants against that module's own tests only: mutation testing on a busy machine.

`make mutate` (mutmut) runs every mutant against every test that called its function, across the
whole selection in `[tool.mutmut]`; on a shared 2-core machine that is about 0.1 mutants per second.
This runs the same mutants (mutmut's, from `mutants/`: run `mutmut run` once first, even if stopped
after "Running mutation testing" starts) against a narrower set of tests, the way mutmut's workers
do: pytest is imported and the test files are collected once, then each mutant runs in a forked
child (so one mutant's state cannot leak into the next) with `MUTANT_UNDER_TEST` set, stopping at
the first failure.

    PYTHONPATH=mutants/src python tools/mutation_scoped.py mlplab.training.flat_optim \\
        tests/training/test_optim.py tests/training/test_flat_optim_contract.py
    PYTHONPATH=mutants/src python tools/mutation_scoped.py mlplab.runs.plan   # every test mutmut selects

With no test files it takes the test folders of `[tool.mutmut]`'s `pytest_add_cli_args_test_selection`
in pyproject.toml: the same tests mutmut would run for each mutant, so its verdicts are mutmut's.

Which tests run for a mutant: those mutmut recorded as calling its function (mutants/mutmut-stats.json)
that lie in the given test files, fastest first, then every test of those files that mutmut's stats
do not know (added after its stats run). A mutant no such test reaches is reported "no tests". A survivor here may
still be killed by a test elsewhere: a scoped score is a lower bound of mutmut's.

A control run with no mutant must pass first, and one with a mutant name that does not exist must
pass last (a failing control means the verdicts are not trustworthy). Verdicts go to stdout, one
line each, and a summary line per module; `--skip-killed` leaves out mutants mutmut already killed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

KILLED_CODES = {1, 3, -24, 24, 152, 255, 36}  # as tools/mutation_score.py


def _mutants(module: str, root: Path) -> dict[str, int | None]:
    meta = root / "src" / (module.replace(".", "/") + ".py.meta")
    return json.loads(meta.read_text())["exit_code_by_key"]


def _selected_test_files(pyproject: Path) -> list[str]:
    """The test files in `[tool.mutmut]`'s selection (folders expanded, as pytest collects them)."""
    import tomllib

    selection = tomllib.loads(pyproject.read_text())["tool"]["mutmut"]["pytest_add_cli_args_test_selection"]
    files: list[str] = []
    for entry in selection:
        path = Path(entry)
        files += [str(p) for p in sorted(path.rglob("test_*.py"))] if path.is_dir() else [str(path)]
    return files


def _function_of(mutant: str) -> str:
    return mutant.rsplit("__mutmut_", 1)[0]


def _run_in_child(name: str, args: list[str], cpu_limit: int) -> int:
    """pytest in a forked child with the mutant switched on; its exit code (timeouts count as killed)."""
    pid = os.fork()
    if pid == 0:
        import pytest

        sys.stdout = sys.stderr = open(os.devnull, "w")
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_limit, cpu_limit + 1))
        os.environ["MUTANT_UNDER_TEST"] = name
        os._exit(int(pytest.main(args)))
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)  # SIGXCPU: the CPU limit, a hang
    return os.WEXITSTATUS(status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", help="e.g. mlplab.training.flat_optim")
    parser.add_argument("tests", nargs="*", help="the test files that cover the module (default: mutmut's selection)")
    parser.add_argument("--root", default="mutants", help="mutmut's folder (its .meta files and stats)")
    parser.add_argument("--skip-killed", action="store_true", help="leave out mutants mutmut already killed")
    parser.add_argument("--only", nargs="*", default=None, help="only these mutant names")
    parser.add_argument("--cpu-limit", type=int, default=120, help="CPU seconds per mutant before it counts as a hang")
    args = parser.parse_args()

    import mlplab

    if "mutants" not in Path(mlplab.__file__).parts:
        sys.exit(f"error: mlplab is imported from {mlplab.__file__}, not mutmut's copy: set PYTHONPATH=mutants/src")
    import pytest

    root = Path(args.root)
    stats = json.loads((root / "mutmut-stats.json").read_text())
    by_function, duration = stats["tests_by_mangled_function_name"], stats["duration_by_test"]
    files = [str(Path(t)) for t in args.tests] or _selected_test_files(Path("pyproject.toml"))
    base = ["-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "-m", "not slow and not browser"]

    class Collected:
        ids: list[str] = []

        def pytest_collection_finish(self, session):
            self.ids.extend(item.nodeid for item in session.items)

    os.environ["MUTANT_UNDER_TEST"] = ""
    collected = Collected()
    pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", *base[4:], *files], plugins=[collected])
    known = set(duration)
    new_tests = [t for t in collected.ids if t not in known]  # added after mutmut's stats run: run for every mutant
    print(f"{len(new_tests)} tests unknown to mutmut's stats run for every mutant", flush=True)
    verdicts: dict[str, int] = {}
    controls = {}
    for label, name in (("control (no mutant)", ""),):
        controls[label] = _run_in_child(name, base + files, args.cpu_limit * 10)
        print(f"{label}: exit {controls[label]}", flush=True)
    if any(controls.values()):
        sys.exit("error: the tests fail with no mutant switched on")

    codes = _mutants(args.module, root)
    names = sorted(args.only) if args.only else sorted(codes)
    start = time.time()
    for name in names:
        if args.skip_killed and codes.get(name) in KILLED_CODES:
            continue
        recorded = sorted(
            (t for t in by_function.get(_function_of(name), ()) if t.split("::")[0] in files),
            key=lambda t: duration.get(t, 0.0),
        )
        added = new_tests
        if not recorded and not added:
            verdicts[name] = 33
            print(f"no tests {name}", flush=True)
            continue
        code = _run_in_child(name, base + recorded + added, args.cpu_limit)
        if code == 5 and recorded:  # the added files had nothing to run: the recorded tests passed
            code = 0
        verdicts[name] = code
        print(("survived " if code in (0, 5) else f"killed({code}) ") + name, flush=True)
    elapsed = time.time() - start

    last = _run_in_child(f"{args.module}.x_no_such_function__mutmut_1", base + files, args.cpu_limit * 10)
    print(f"control (a mutant that does not exist): exit {last}", flush=True)
    killed = sum(1 for c in verdicts.values() if c not in (0, 5, 33))
    tested = len(verdicts)
    print(f"{args.module}: {tested} mutants, {killed} killed, {tested - killed} survived or not reached, "
          f"{elapsed:.0f} s ({tested / max(elapsed, 1e-9):.2f} mutants/s)" + ("" if last == 0 else " CONTROL FAILED"))


if __name__ == "__main__":
    main()
