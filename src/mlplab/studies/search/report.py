"""The search report: one self-contained HTML page built from the study alone (any machine can build it).

Everything it shows is in the study's storage: each trial's figures and config (user attrs), the
front's refit test scores and the reference models' figures (study attrs). Validation figures and
test figures are labelled as such; only the refit front models were ever scored on the test set.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any, Callable

from mlplab.report.html import data_uri
from mlplab.safeio import atomic_write_text, write_json
from mlplab.studies.search.objectives import COSTS

def _css() -> str:
    """The comparison report's stylesheet, so that both pages look alike."""
    from importlib import resources

    return (resources.files("mlplab.report") / "templates" / "report.css").read_text(encoding="utf-8")


SORT_JS = """
document.querySelectorAll('table.sortable th').forEach((th, col) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0], rows = Array.from(body.rows), asc = th.dataset.asc !== '1';
  th.closest('tr').querySelectorAll('th').forEach(h => delete h.dataset.asc); th.dataset.asc = asc ? '1' : '0';
  const key = r => { const c = r.cells[col]; const v = c.dataset.v ?? c.textContent; const n = parseFloat(v);
                     return isNaN(n) ? v : n; };
  rows.sort((a, b) => { const x = key(a), y = key(b); return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1); });
  rows.forEach(r => body.appendChild(r));
}));
"""


def collect(study) -> dict[str, Any]:
    from optuna.trial import TrialState

    meta = study.user_attrs.get("mlplab", {})
    costs = list(meta.get("costs", ["train_flops"]))
    trials = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        trials.append({"number": t.number, "values": list(t.values), "params": dict(t.params),
                       "figures": t.user_attrs.get("figures", {}), "run_dir": t.user_attrs.get("run_dir"),
                       "host": t.user_attrs.get("host"), "retry_of": t.system_attrs.get("failed_trial")})
    front = sorted({t.number for t in study.best_trials}) if trials else []
    attrs = study.user_attrs
    refits = {int(k.split(":")[1]): v for k, v in attrs.items() if k.startswith("refit:")}
    references = {k.split(":", 1)[1]: v for k, v in attrs.items() if k.startswith("reference:")}
    failed = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))]
    return {"study": study.study_name, "meta": meta, "costs": costs, "trials": trials, "front": front,
            "refits": refits, "references": references, "failed": failed}


def build_search_report(study, out: Path, *, print_fn: Callable[[str], None] = print, command: str = "") -> Path:
    """Write OUT/report.html (and search.json, the figures) from the study's storage."""
    out = Path(out)
    data = collect(study)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    importances = _importances(study)
    paths = {"pareto": _pareto_plot(data, figures / "pareto.png"),
             "history": _history_plot(data, figures / "history.png")}
    if importances:
        paths["importance"] = _importance_plot(importances, figures / "importance.png")
    write_json(out / "search.json", {**data, "importances": importances})
    html = render(data, paths, importances, command)
    atomic_write_text(out / "report.html", html)
    print_fn(f"Search report: {out / 'report.html'}")
    return out / "report.html"


def _importances(study) -> dict[str, float]:
    """Optuna's parameter importances for validation accuracy (empty when too few trials)."""
    import warnings

    import optuna

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # negated: the default evaluator ranks what drives the target down, and accuracy should go up
            found = optuna.importance.get_param_importances(study, target=lambda t: -t.values[0])
        return {k: float(v) for k, v in found.items()}
    except (ValueError, RuntimeError, ZeroDivisionError):
        return {}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _pareto_plot(data: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    cost = data["costs"][0]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=130)
    trials = data["trials"]
    if trials:
        ax.scatter([t["values"][1] for t in trials], [t["values"][0] for t in trials], s=18, color="#9aa7bd",
                   label="trial (validation accuracy)", zorder=2)
        front = sorted((t for t in trials if t["number"] in data["front"]), key=lambda t: t["values"][1])
        ax.plot([t["values"][1] for t in front], [t["values"][0] for t in front], "-o", color="#1f77b4", ms=6, drawstyle="steps-post",
                label="Pareto front", zorder=3)
        for t in front:
            ax.annotate(str(t["number"]), (t["values"][1], t["values"][0]), textcoords="offset points", xytext=(4, -10),
                        fontsize=7, color="#1f77b4")
    for name, ref in sorted(data["references"].items()):
        ax.scatter([ref[cost]], [ref["val_accuracy"]], marker="*", s=160, color="#d62728", zorder=4)
        ax.annotate(name, (ref[cost], ref["val_accuracy"]), textcoords="offset points", xytext=(6, 4), fontsize=8,
                    color="#d62728")
    if data["references"]:
        ax.scatter([], [], marker="*", s=100, color="#d62728", label="tutorial model, trained as the trials were")
    ax.set_xscale("log")
    ax.set_xlabel(COSTS[cost] + " (log scale)")
    ax.set_ylabel("validation accuracy")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Validation accuracy against cost")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _history_plot(data: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    trials = sorted(data["trials"], key=lambda t: t["number"])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=130)
    xs = [t["number"] for t in trials]
    acc = [t["values"][0] for t in trials]
    best, run = [], float("-inf")
    for a in acc:
        run = max(run, a)
        best.append(run)
    a1.scatter(xs, acc, s=14, color="#9aa7bd", label="trial")
    a1.step(xs, best, where="post", color="#1f77b4", label="best so far")
    a1.set_xlabel("trial")
    a1.set_ylabel("validation accuracy")
    a1.legend(fontsize=8)
    a1.grid(True, alpha=0.3)
    a2.scatter(xs, [t["values"][1] for t in trials], s=14, color="#ff7f0e")
    a2.set_yscale("log")
    a2.set_xlabel("trial")
    a2.set_ylabel(COSTS[data["costs"][0]])
    a2.grid(True, alpha=0.3)
    fig.suptitle("Optimisation history")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _importance_plot(importances: dict[str, float], path: Path) -> Path:
    plt = _pyplot()
    names = list(importances)[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(names) + 1.2), dpi=130)
    ax.barh(names, [importances[n] for n in names], color="#1f77b4")
    ax.set_xlabel("importance for validation accuracy (Optuna, fANOVA)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.3e}"
    if isinstance(value, int) and abs(value) >= 1e6:
        return f"{value:.3e}"
    return escape(str(value))


def _cell(value: Any) -> str:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    attr = f' data-v="{value}" class="num"' if numeric else ""
    return f"<td{attr}>{_fmt(value) if value is not None else '–'}</td>"


def _figure(path: Path, alt: str, caption: str) -> str:
    return f'<figure><img src="{data_uri(path)}" alt="{escape(alt)}"><figcaption>{escape(caption)}</figcaption></figure>'


def render(data: dict[str, Any], paths: dict[str, Path], importances: dict[str, float], command: str) -> str:
    meta, costs, trials = data["meta"], data["costs"], data["trials"]
    limit = meta.get("limit")
    title = f"Search {data['study']}: validation accuracy against {COSTS[costs[0]]}"
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{escape(title)}</title><style>{_css()}th{{cursor:pointer}}tr.front td{{font-weight:600}}</style></head><body>",
           f"<header><h1>{escape(title)}</h1><p>{len(trials)} complete trial(s) of space {escape(str(meta.get('space')))} "
           f"on {escape(str(meta.get('dataset')))}{f' (first {limit} images)' if limit else ''}; "
           f"front: {len(data['front'])} trial(s)</p></header><main>",
           '<nav><a href="#front">Front</a><a href="#test">Test</a><a href="#trials">Trials</a>'
           '<a href="#importance">Importances</a><a href="#history">History</a></nav>',
           "<section><h2>How to read this</h2><ul>"
           "<li><strong>Validation</strong> figures: every trial trained on the training images less a validation split "
           "and was judged on that split only. The test set chose nothing.</li>"
           "<li><strong>Test</strong> figures: only the front's refit models (trained afresh on all training images for "
           "the epochs their validation run kept) were scored on the test set, once, after the search.</li>"
           f"<li>Costs are exact: training FLOPs count every matrix product of the forward and backward passes over the "
           f"samples each trial saw (as the comparison reports count them); the objectives were validation accuracy "
           f"(up) and {escape(', '.join(costs))} (down).</li></ul></section>"]
    ref_note = ("The red stars are the tutorial's three models trained exactly as the trials were (same data, split, "
                "seed and epoch cap), so their validation accuracy is comparable." if data["references"] else
                "The tutorial's models were not trained for this search (--no-reference).")
    out.append(f'<section id="front"><h2>Pareto front (validation)</h2>'
               f'{_figure(paths["pareto"], "Pareto front", "Every complete trial is a dot; the front (no trial is both more accurate and cheaper) is joined. " + ref_note)}'
               "</section>")
    rows = []
    for number, ref in sorted(data["refits"].items()):
        trial = next((t for t in trials if t["number"] == number), None)
        val = trial["figures"].get("val_accuracy") if trial else None
        rows.append(f"<tr><td>{number}</td>{_cell(val)}{_cell(ref['test_accuracy'])}{_cell(ref['epochs'])}"
                    f"{_cell(ref['train_flops'])}<td><details><summary>config (mlplab train)</summary>"
                    f"<pre>{escape(ref['config_toml'])}</pre></details></td></tr>")
    test = ("<table><thead><tr><th>trial</th><th>validation accuracy (trial)</th><th>test accuracy (refit)</th>"
            "<th>epochs</th><th>refit training FLOPs</th><th>config</th></tr></thead><tbody>" + "".join(rows)
            + "</tbody></table><p>Each config is also in <code>front/trial-NNNN.toml</code> beside this report.</p>"
            if rows else "<p>No front model has been refit yet.</p>")
    out.append(f'<section id="test"><h2>Front models on the test set (test)</h2>{test}</section>')
    if data["references"]:
        ref_rows = "".join(f"<tr><td>{escape(n)}</td>{_cell(r['val_accuracy'])}{_cell(r['kept_epoch'])}"
                           f"{''.join(_cell(r.get(c)) for c in costs)}</tr>" for n, r in sorted(data["references"].items()))
        out.append("<section><h2>Tutorial models (validation)</h2><table><thead><tr><th>model</th><th>validation accuracy</th>"
                   f"<th>epoch kept</th>{''.join(f'<th>{escape(COSTS[c])}</th>' for c in costs)}</tr></thead>"
                   f"<tbody>{ref_rows}</tbody></table></section>")
    params = sorted({k for t in trials for k in t["params"]})
    heads = ["trial", "front", "validation accuracy", *[COSTS[c] for c in costs], "epoch kept", "epochs run",
             "seconds", *params, "run directory"]
    body = []
    for t in sorted(trials, key=lambda t: t["number"]):
        f = t["figures"]
        on_front = t["number"] in data["front"]
        cells = [_cell(t["number"]), f"<td>{'yes' if on_front else ''}</td>", _cell(t["values"][0]),
                 *[_cell(v) for v in t["values"][1:]], _cell(f.get("kept_epoch")), _cell(f.get("epochs_run")),
                 _cell(f.get("seconds")), *[_cell(t["params"].get(p)) for p in params],
                 f"<td>{escape(str(t['run_dir']))}{' (re-run of trial ' + str(t['retry_of']) + ')' if t['retry_of'] is not None else ''}</td>"]
        body.append(f'<tr class="{"front" if on_front else ""}">{"".join(cells)}</tr>')
    failed = f"<p>{len(data['failed'])} failed or interrupted trial(s) not shown (re-queued ones ran again).</p>" if data["failed"] else ""
    out.append(f'<section id="trials"><h2>All trials (validation; click a heading to sort)</h2><div class="scroll">'
               f'<table class="sortable"><thead><tr>{"".join(f"<th>{escape(h)}</th>" for h in heads)}</tr></thead>'
               f'<tbody>{"".join(body)}</tbody></table></div>{failed}</section>')
    if "importance" in paths:
        out.append(f'<section id="importance"><h2>Parameter importances</h2>'
                   f'{_figure(paths["importance"], "importances", "Which searched values explained most of the variation in validation accuracy (Optuna get_param_importances).")}</section>')
    else:
        out.append('<section id="importance"><h2>Parameter importances</h2><p>Too few trials to estimate them.</p></section>')
    out.append(f'<section id="history"><h2>Optimisation history</h2>'
               f'{_figure(paths["history"], "history", "Validation accuracy and cost of each trial in the order they were numbered.")}</section>')
    if command:
        out.append(f"<section><h2>Command</h2><pre>{escape(command)}</pre></section>")
    out.append(f"<script>{SORT_JS}</script></main></body></html>")
    return "\n".join(out) + "\n"
