"""write_report: turn in-memory RunResults into the comparison's artefacts in one folder."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import numpy as np

from mlplab.report import html, metrics, plots, table
from mlplab.report.config_view import config_text
from mlplab.report.results import DataFacts, Group, RunResult, group_runs, representative, unique_slugs
from mlplab.safeio import atomic_write_text

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
MIXED_DATASETS_WARNING = (
    "These runs were trained and tested on different datasets; accuracies on different datasets "
    "are not comparable, so compare rows of the same dataset only."
)
MISTAKES_SHOWN = 16
UNITS_SHOWN = 32


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 model', '3 models'."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def _analyse(g: Group, color: str, s: str, out: Path, artefacts: dict[str, Path]) -> dict:
    """Per-model figures and metrics, of the median-accuracy seed."""
    name, runs = g.label, g.runs
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
        "mistakes": artefacts[f"mistakes/{name}"],
        "weights": artefacts[f"weights/{name}"],
        "weights_caption": (
            f"The input weights of the first {units} of {weights.shape[0]} hidden units, "
            f"each drawn as a {h}×{w} image: red positive, blue negative, scaled per unit."
        ),
        "config_text": config_text(r.config()),
        "config_hash": g.config_hash,
    }


def _datasets(groups: list[Group]) -> list[dict]:
    """One entry per dataset the runs used, with the split sizes the runs fitted and validated on."""
    out: dict = {}
    for g in groups:
        for r in g.runs:
            d = r.dataset
            entry = out.setdefault(r.dataset_key, {"facts": d, "splits": set(), "runs": 0})
            entry["runs"] += 1
            if d is not None and r.validated_on == "test":
                entry["splits"].add((d.train_images, "the test set"))
            elif d is not None and d.fit_images is not None:
                entry["splits"].add((d.fit_images, d.validation_images or 0))
    return [{"facts": e["facts"], "splits": sorted(e["splits"], key=str), "runs": e["runs"]} for e in out.values()]


def _data_json(entries: list[dict]) -> list[dict]:
    docs = []
    for e in entries:
        d: DataFacts | None = e["facts"]
        doc = {"recorded": d is not None, "runs": e["runs"]}
        if d is not None:
            doc.update(name=d.name, source=d.source, checksum_verified=d.checksum_verified, limit=d.limit,
                       train_images=d.train_images, test_images=d.test_images)
        doc["fit_validation_splits"] = [{"fit": f, "validation": v} for f, v in e["splits"]]
        docs.append(doc)
    return docs


def data_lines(entries: list[dict]) -> list[str]:
    """One line per dataset for the Markdown summary."""
    lines = []
    for e in entries:
        d: DataFacts | None = e["facts"]
        if d is None:
            lines.append(f"Data: not recorded ({plural(e['runs'], 'run')}).")
            continue
        verified = {True: "yes", False: "no", None: "not recorded"}[d.checksum_verified]
        sizes = ", ".join(f"{n:,} {what}" for n, what in ((d.train_images, "training"), (d.test_images, "test"))
                          if n is not None)
        lines.append(f"Data: {d.label} from {d.source or 'an unrecorded source'}; checksum verified: {verified}"
                     + (f"; {sizes} images" if sizes else "") + ".")
    return lines


def published_note(groups: list[Group], rows: list[dict], source: str) -> str:
    """What the 'published' column means ('' when the table has no such column)."""
    shown = [g for g, r in zip(groups, rows) if r["published_accuracy"] is not None]
    if not shown:
        return ""
    datasets = sorted({g.dataset_name for g in shown})
    who = source or "its publisher"
    text = (f"Published: the test accuracy {who} reports for the model of the same name on "
            f"{', '.join(datasets)}. It is shown only beside runs on the dataset it was published on; "
            "– where nothing was published for that model on that dataset.")
    if any(g.dataset.limit for g in shown):
        text += " These runs used only part of the dataset, so they are not the published setup."
    return text


def stats_note(rows: list[dict]) -> str:
    several = [r for r in rows if r["seeds"] > 1]
    text = ""
    if several:
        text = ("For a model trained with several seeds: mean ± standard deviation over its seeds [95 % "
                "Student-t interval of the mean, clipped to what is possible: accuracy within 0–100 %, "
                "epochs between 1 and the epoch limit]. ")
    if any(r["seeds"] == 1 for r in rows):
        text += "A model trained with one seed shows that run's figures, with no spread. "
    return text + (
        "Epochs run: the epoch at which training stopped (early stopping or the epoch limit); "
        "epoch kept: the epoch whose weights the model holds. Rows are configs: runs of the same model "
        "name, config and dataset that differ only in their seed.")


def write_report(
    results: list[RunResult],
    out_dir: Path,
    *,
    title: str,
    commands: list[str],
    notes: list[str],
    environment: dict,
    published: dict[str, dict[str, float]] | None = None,
    published_source: str = "",
    allow_mixed_datasets: bool = False,
    print_fn: Callable[[str], object] | TextIO = print,
) -> dict[str, Path]:
    """Write the comparison of `results` into `out_dir` and return {artefact name: path}.

    Runs are grouped by dataset, model name and config (seed aside), and counted by distinct
    seed; two runs of one config with the same seed, and runs on different datasets (unless
    `allow_mixed_datasets`), are refused with a ConfigError. `published` maps dataset name ->
    {model name: test accuracy}, and `published_source` says who published them: a figure is shown
    only beside runs of that model on that dataset.

    Artefacts: comparison.png, accuracy_vs_cost.png, summary.csv, summary.json, summary.md,
    report.html, and per model confusion_<model>.png, mistakes_<model>.png, weights_<model>.png
    (keys 'confusion/<model>' etc., <model> the row's label). The text table goes to `print_fn`: a
    callable taking one string (print, list.append, a logger) or a file-like object with `write`.
    """
    if not results:
        raise ValueError("write_report needs at least one RunResult")
    for r in results:
        r.check()
    groups = group_runs(results, allow_mixed_datasets=allow_mixed_datasets)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = table.summary_rows(groups, published)
    labels = [g.label for g in groups]
    colors = plots.model_colors(labels)
    validated_on = "test" if any(r.validated_on == "test" for r in results) else "val"
    seed_counts = [row["seeds"] for row in rows]

    artefacts: dict[str, Path] = {}
    artefacts["comparison"] = plots.comparison(
        {g.label: g.runs for g in groups}, colors, out / "comparison.png", validated_on=validated_on)
    artefacts["accuracy_vs_cost"] = plots.accuracy_vs_cost(rows, colors, out / "accuracy_vs_cost.png")
    slugs = unique_slugs(labels)
    models = [_analyse(g, colors[g.label], slugs[g.label], out, artefacts) for g in groups]
    datasets = _datasets(groups)
    mixed = len(datasets) > 1
    warnings = ([TEST_AS_VAL_WARNING] if validated_on == "test" else []) + ([MIXED_DATASETS_WARNING] if mixed else [])
    pub_note = published_note(groups, rows, published_source)

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
        {"title": title, "flops_counting": FLOPS_TEXT, "published_source": published_source or None,
         "datasets": _data_json(datasets), "per_class": per_class, "commands": list(commands),
         "notes": list(notes), "environment": json.loads(json.dumps(environment, default=str))},
    )
    md = f"# {title}\n\n" + table.to_markdown(rows)
    md += "".join(f"\n{t}\n" for t in (pub_note, stats_note(rows), *data_lines(datasets)) if t)
    md += "".join(f"\n> {w}\n" for w in warnings)
    atomic_write_text(out / "summary.md", md)
    artefacts["summary_md"] = out / "summary.md"

    n_runs = sum(len(g.runs) for g in groups)
    page = html.render(
        title=title,
        subtitle=f"{plural(len(groups), 'model')}, {plural(n_runs, 'run')}"
                 + (f" on {datasets[0]['facts'].label}" if not mixed and datasets[0]["facts"] is not None else ""),
        rows=rows, colors=colors,
        figures={"comparison": (artefacts["comparison"], plots.comparison_caption(seed_counts)),
                 "accuracy_vs_cost": (artefacts["accuracy_vs_cost"], plots.cost_caption(seed_counts))},
        models=[{**m, "per_seed": row["per_seed"]} for m, row in zip(models, rows)],
        datasets=datasets, commands=list(commands), notes=list(notes), environment=dict(environment),
        flops_text=FLOPS_TEXT, warnings=warnings, table_notes=[t for t in (pub_note, stats_note(rows)) if t],
    )
    atomic_write_text(out / "report.html", page)
    artefacts["report_html"] = out / "report.html"

    text = table.to_text(rows).rstrip("\n")
    if pub_note:
        text += "\n" + pub_note
    if callable(getattr(print_fn, "write", None)):
        print_fn.write(text + "\n")
    else:
        print_fn(text)
    return artefacts
