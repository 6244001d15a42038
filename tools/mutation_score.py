"""Mutation score per module from mutmut's results in mutants/ (run after `mutmut run`).

    python tools/mutation_score.py            # a Markdown table, one row per mutated module
    python tools/mutation_score.py --survivors  # and the names of the mutants that survived

Score = killed / (killed + survived); timeouts count as killed (the mutant hung the tests), and
mutants no test reached ("no tests") count as survivors, as mutmut's own score does.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

KILLED = {1, 3, -24, 24, 152, 255, 36}  # failed tests, pytest internal error, timeouts (as mutmut)
SURVIVED = {0, 5, 33}  # tests passed, or no test ran the function


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="mutants/src", help="where mutmut keeps its .meta files")
    parser.add_argument("--survivors", action="store_true", help="list surviving mutants by name")
    args = parser.parse_args()
    rows, survivors, totals = [], [], Counter()
    for meta in sorted(Path(args.root).rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        count = Counter()
        for name, code in codes.items():
            if code in KILLED:
                count["killed"] += 1
            elif code in SURVIVED:
                count["survived"] += 1
                survivors.append(name)
            else:
                count["not run" if code is None else "other"] += 1
        if not codes:
            continue
        totals.update(count)
        module = str(meta.relative_to(args.root)).removesuffix(".py.meta").replace("/", ".")
        rows.append((module, count))
    print("| module | mutants | killed | survived | not run | score |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for module, c in [*rows, ("**all**", totals)]:
        tested = c["killed"] + c["survived"]
        score = f"{100 * c['killed'] / tested:.1f} %" if tested else "–"
        print(f"| {module} | {sum(c.values())} | {c['killed']} | {c['survived']} | {c['not run'] + c['other']} | {score} |")
    if args.survivors:
        print()
        print("\n".join(sorted(survivors)))


if __name__ == "__main__":
    main()
