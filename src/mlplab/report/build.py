"""write_report: turn in-memory RunResults into the comparison's artefacts in one folder."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import numpy as np

from mlplab.report import html, metrics, plots, table
from mlplab.report.results import RunResult, group_by_model, representative, unique_slugs

FLOPS_TEXT = (
    "Training FLOPs count the forward and backward matrix products: 2·in·out per weight forward, "
    "the same for the weight gradient and for the input gradient except the first layer; biases, "
    "activations, dropout and optimizer updates not counted. The total is that per-sample count "
    "times the number of training samples seen (epochs run × training-set size)."
)
TEST_AS_VAL_WARNING = (
    "These runs used the test set as validation data (the tutorial's literal setup): early stopping "
    "and the kept epoch were chosen on the test set, so the test figures are optimistic."
)
MISTAKES_SHOWN = 16
UNITS_SHOWN = 32


def _analyse(name: str, runs: list[RunResult], color: str, s: str, out: Path, artefacts: dict[str, Path]) -> dict:
    """Per-model figures and metrics, of the median-accuracy seed."""
    r = representative(runs)
    y_true, probs = np.asarray(r.y_true, dtype=np.int64), np.asarray(r.probs)
    images, weights = np.asarray(r.test_images), np.asarray(r.first_layer_weights)
    k = len(r.class_names)
    names = [str(c) for c in r.class_names]
    cm = metrics.confusion_matrix(y_true, probs.argmax(axis=1), k)
    seed_note = f" (seed {r.seed})" if len(runs) > 1 else ""
    artefacts[f"confusion/{name}"] = plots.confusion(
        cm, names, out / f"confusion_{s}.png", title=f"Confusion matrix: {name}{seed_note}", color=color)
    idx = metrics.confident_mistakes(y_true, probs, MISTAKES_SHOWN)
    artefacts[f"mistakes/{name}"] = plots.mistakes(
        images, y_true, probs, idx, names, out / f"mistakes_{s}.png",
        title=f"Most confident mistakes: {name}{seed_note}")
    h, w = images.shape[1:3]
    units = min(UNITS_SHOWN, weights.shape[0])
    artefacts[f"weights/{name}"] = plots.first_layer(
        weights, (h, w), out / f"weights_{s}.png",
        title=f"First-layer weights: {name}{seed_note}", max_units=UNITS_SHOWN)
    return {
        "name": name,
        "slug": s,
        "color": color,
        "seed": r.seed,
        "class_names": names,
        "confusion_matrix": cm,
        "per_class": metrics.per_class(cm),
        "confused_pairs": [(names[i], names[j], n) for i, j, n in metrics.most_confused_pairs(cm, 5)],
        "confusion": artefacts[f"confusion/{name}"],
        "mistakes": artefacts[f"mistakes/{name}"],
        "weights": artefacts[f"weights/{name}"],
        "weights_caption": (
            f"The input weights of the first {units} of {weights.shape[0]} hidden units, "
            f"each drawn as a {h}×{w} image: red positive, blue negative, scaled per unit."
        ),
        "config_text": r.config_text,
    }


def write_report(
    results: list[RunResult],
    out_dir: Path,
    *,
    title: str,
    commands: list[str],
    notes: list[str],
    environment: dict,
    published: dict[str, float] | None = None,
    print_fn: Callable[[str], object] | TextIO = print,
) -> dict[str, Path]:
    """Write the comparison of `results` into `out_dir` and return {artefact name: path}.

    Artefacts: comparison.png, accuracy_vs_cost.png, summary.csv, summary.json, summary.md,
    report.html, and per model confusion_<model>.png, mistakes_<model>.png, weights_<model>.png
    (keys 'confusion/<model>' etc.). The text table goes to `print_fn`: a callable taking one
    string (print, list.append, a logger) or a file-like object with `write`.
    """
    if not results:
        raise ValueError("write_report needs at least one RunResult")
    for r in results:
        r.check()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    published = dict(published or {})
    groups = group_by_model(results)
    colors = plots.model_colors(groups)
    rows = table.summary_rows(results, published)
    validated_on = "test" if any(r.validated_on == "test" for r in results) else "val"

    artefacts: dict[str, Path] = {}
    artefacts["comparison"] = plots.comparison(groups, colors, out / "comparison.png", validated_on=validated_on)
    artefacts["accuracy_vs_cost"] = plots.accuracy_vs_cost(rows, colors, out / "accuracy_vs_cost.png")
    slugs = unique_slugs(groups)
    models = [_analyse(name, runs, colors[name], slugs[name], out, artefacts) for name, runs in groups.items()]

    per_class = {
        m["name"]: {
            "seed": m["seed"],
            "classes": m["class_names"],
            "confusion_matrix": m["confusion_matrix"].tolist(),
            **{k: v.tolist() for k, v in m["per_class"].items()},
            "most_confused": [{"true": a, "predicted": b, "count": n} for a, b, n in m["confused_pairs"]],
        }
        for m in models
    }
    artefacts["summary_csv"] = table.write_csv(rows, out / "summary.csv")
    artefacts["summary_json"] = table.write_json(
        rows, out / "summary.json",
        {"title": title, "flops_counting": FLOPS_TEXT, "per_class": per_class, "commands": list(commands),
         "notes": list(notes), "environment": json.loads(json.dumps(environment, default=str))},
    )
    md = f"# {title}\n\n" + table.to_markdown(rows)
    if validated_on == "test":
        md += f"\n> {TEST_AS_VAL_WARNING}\n"
    (out / "summary.md").write_text(md, encoding="utf-8")
    artefacts["summary_md"] = out / "summary.md"

    warnings = [TEST_AS_VAL_WARNING] if validated_on == "test" else []
    page = html.render(
        title=title, rows=rows, colors=colors,
        figures={"comparison": (artefacts["comparison"], plots.COMPARISON_CAPTION),
                 "accuracy_vs_cost": (artefacts["accuracy_vs_cost"], plots.COST_CAPTION)},
        models=[{**m, "per_seed": row["per_seed"]} for m, row in zip(models, rows)],
        commands=list(commands), notes=list(notes), environment=dict(environment),
        flops_text=FLOPS_TEXT, warnings=warnings,
    )
    (out / "report.html").write_text(page, encoding="utf-8")
    artefacts["report_html"] = out / "report.html"

    text = table.to_text(rows).rstrip("\n")
    if callable(getattr(print_fn, "write", None)):
        print_fn.write(text + "\n")
    else:
        print_fn(text)
    return artefacts
