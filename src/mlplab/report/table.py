"""The comparison table: one row per config (aggregated over its seeds) → CSV, JSON, Markdown and text."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np

from collections.abc import Mapping

from mlplab.report.results import Group, RunResult
from mlplab.report.stats import summarize
from mlplab.safeio import atomic_write_text

Published = Mapping[str, Mapping[str, float]]  # dataset name -> model name -> published test accuracy

# (key, header) of the flat row, in table order
COLUMNS = (
    ("model", "model"),
    ("dataset", "dataset"),
    ("config_hash", "config"),
    ("seeds", "seeds"),
    ("params", "params"),
    ("train_flops", "training FLOPs"),
    ("epochs_run", "epochs run"),
    ("best_epoch", "epoch kept"),
    ("wall_seconds", "wall s"),
    ("samples_per_s", "samples/s"),
    ("test_loss", "test loss"),
    ("test_accuracy", "test acc"),
    ("test_accuracy_std", "test acc std"),
    ("test_accuracy_ci_low", "test acc 95% CI low"),
    ("test_accuracy_ci_high", "test acc 95% CI high"),
    ("epochs_run_std", "epochs run std"),
    ("epochs_run_ci_low", "epochs run 95% CI low"),
    ("epochs_run_ci_high", "epochs run 95% CI high"),
    ("epochs_run_min", "epochs run min"),
    ("epochs_run_max", "epochs run max"),
    ("epochs_limit", "epoch limit"),
    ("published_accuracy", "published test acc"),
    ("validated_on", "validated on"),
)


def _mean_samples_per_s(run: RunResult) -> float:
    vals = [float(r["samples_per_s"]) for r in run.history if r.get("samples_per_s") is not None]
    return float(np.mean(vals)) if vals else float("nan")


def published_for(group: Group, published: Published | None) -> float | None:
    """The figure published for this model on this group's dataset (None: none, or dataset not recorded)."""
    if not published or group.dataset is None:
        return None
    value = published.get(group.dataset.name, {}).get(group.name)
    return None if value is None else float(value)


def check_published(published) -> dict[str, dict[str, float]]:
    """`published` as {dataset: {model: accuracy}}; a flat {model: accuracy} is refused, since it
    would show one dataset's figures beside another's runs."""
    if not published:
        return {}
    out: dict[str, dict[str, float]] = {}
    for dataset, figures in dict(published).items():
        if not isinstance(figures, Mapping):
            raise ValueError(
                f"published must map dataset -> {{model: accuracy}}, got {dataset!r}: {figures!r} "
                "(say which dataset the figures were published on)")
        for model, acc in figures.items():
            if not 0.0 <= float(acc) <= 1.0:
                raise ValueError(f"published accuracy of {model!r} on {dataset!r} must be in [0, 1], got {acc!r}")
        out[str(dataset)] = {str(m): float(a) for m, a in figures.items()}
    return out


def model_row(group: Group, published: Published | None = None) -> dict:
    """One config's row. Means over its seeds; std and 95 % CI (NaN with one seed) for accuracy and
    the epoch at which training stopped, each interval clipped to what is possible; per-seed values
    under 'per_seed'."""
    runs = group.runs
    limit = runs[0].max_epochs()
    acc = summarize((r.test_accuracy for r in runs), lower=0.0, upper=1.0)
    stop = summarize((r.epochs_run for r in runs), lower=1.0, upper=None if limit is None else float(limit))
    row = {
        "model": group.label,
        "name": group.name,
        "model_label": group.model_label,
        "dataset": group.dataset.label if group.dataset is not None else None,
        "config_hash": group.config_hash,
        "seeds": len(set(group.seeds)),
        "params": int(runs[0].params),
        "train_flops": int(round(np.mean([r.train_flops for r in runs]))),
        "epochs_run": stop.mean,
        "best_epoch": float(np.mean([r.kept_epoch for r in runs])),
        "wall_seconds": float(np.mean([r.wall_seconds for r in runs])),
        "samples_per_s": float(np.mean([_mean_samples_per_s(r) for r in runs])),
        "test_loss": float(np.mean([r.test_loss for r in runs])),
        "test_accuracy": acc.mean,
        "test_accuracy_std": acc.std,
        "test_accuracy_ci_low": acc.ci_low,
        "test_accuracy_ci_high": acc.ci_high,
        "epochs_run_std": stop.std,
        "epochs_run_ci_low": stop.ci_low,
        "epochs_run_ci_high": stop.ci_high,
        "epochs_run_min": stop.min,
        "epochs_run_max": stop.max,
        "epochs_limit": limit,
        "published_accuracy": published_for(group, published),
        "validated_on": ",".join(sorted({r.validated_on for r in runs})),
    }
    row["per_seed"] = [
        {
            "seed": r.seed,
            "test_accuracy": float(r.test_accuracy),
            "test_loss": float(r.test_loss),
            "epochs_run": int(r.epochs_run),
            "best_epoch": int(r.kept_epoch),
            "train_flops": int(r.train_flops),
            "wall_seconds": float(r.wall_seconds),
            "run_dir": r.run_dir,
        }
        for r in runs
    ]
    return row


def summary_rows(groups: list[Group], published: Published | None = None) -> list[dict]:
    """One row per group (see `results.group_runs`)."""
    published = check_published(published)
    return [model_row(g, published) for g in groups]


def _clean(v):
    """JSON-safe: NaN becomes null."""
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_clean(x) for x in v]
    return v


def write_csv(rows: list[dict], path: Path) -> Path:
    text = io.StringIO(newline="")
    w = csv.writer(text)
    w.writerow([k for k, _ in COLUMNS])
    for row in rows:
        w.writerow(["" if (v := _clean(row[k])) is None else v for k, _ in COLUMNS])
    atomic_write_text(path, text.getvalue())
    return path


def write_json(rows: list[dict], path: Path, extra: dict | None = None) -> Path:
    doc = {"models": _clean(rows), **(extra or {})}
    atomic_write_text(path, json.dumps(doc, indent=2, allow_nan=False) + "\n")
    return path


# ---- human-readable cells -------------------------------------------------------------------


def _num(v, fmt: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return fmt.format(v)


def _epochs(v: float) -> str:
    return _num(v, "{:.0f}" if float(v).is_integer() else "{:.1f}")


def si(v: float) -> str:
    """1.32e11 → '132 G' (three significant figures, SI prefix)."""
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= factor:
            return f"{v / factor:.3g} {prefix}"
    return f"{v:.3g}"


def display_cells(row: dict) -> dict[str, str]:
    """The row as short strings for the Markdown, text and HTML tables (every column; see
    `display_table` for the columns a table shows)."""
    acc = f"{row['test_accuracy'] * 100:.2f} %"
    if row["seeds"] > 1:
        acc += (
            f" ± {row['test_accuracy_std'] * 100:.2f}"
            f" [{row['test_accuracy_ci_low'] * 100:.2f}, {row['test_accuracy_ci_high'] * 100:.2f}]"
        )
    stop = _epochs(row["epochs_run"])
    if row["seeds"] > 1:
        stop += (
            f" ± {row['epochs_run_std']:.1f} [{row['epochs_run_ci_low']:.1f}, {row['epochs_run_ci_high']:.1f}]"
            f" (range {row['epochs_run_min']:.0f}–{row['epochs_run_max']:.0f})"
        )
    pub = row["published_accuracy"]
    return {
        "model": row["model"],
        "dataset": row["dataset"] or "not recorded",
        "seeds": str(row["seeds"]),
        "params": f"{row['params']:,}",
        "training FLOPs": si(row["train_flops"]),
        "epochs run": stop,
        "epoch kept": _epochs(row["best_epoch"]),
        "wall s": _num(row["wall_seconds"], "{:.1f}"),
        "samples/s": _num(row["samples_per_s"], "{:,.0f}"),
        "test loss": _num(row["test_loss"], "{:.4f}"),
        "test acc": acc,
        "published": "–" if pub is None else f"{pub * 100:.2f} %",
    }


NUMERIC = {"seeds", "params", "training FLOPs", "wall s", "samples/s", "test loss"}


def display_table(rows: list[dict]) -> list[dict[str, str]]:
    """Display cells of every row, without the columns that say nothing here: 'dataset' when all
    rows share one, 'published' when no row has a published figure."""
    cells = [display_cells(r) for r in rows]
    drop = set()
    if len({r["dataset"] for r in rows}) <= 1:
        drop.add("dataset")
    else:  # the dataset has its own column: the model column need not repeat it
        for c, r in zip(cells, rows):
            c["model"] = r["model_label"]
    if all(r["published_accuracy"] is None for r in rows):
        drop.add("published")
    return [{h: v for h, v in c.items() if h not in drop} for c in cells]


def to_markdown(rows: list[dict]) -> str:
    cells = display_table(rows)
    heads = list(cells[0]) if cells else []
    lines = ["| " + " | ".join(heads) + " |", "|" + "|".join("---:" if h in NUMERIC else "---" for h in heads) + "|"]
    lines += ["| " + " | ".join(c[h].replace("|", "\\|") for h in heads) + " |" for c in cells]
    return "\n".join(lines) + "\n"


def to_text(rows: list[dict]) -> str:
    """A fixed-width table for the terminal."""
    cells = display_table(rows)
    if not cells:
        return "(no results)\n"
    heads = list(cells[0])
    widths = {h: max(len(h), *(len(c[h]) for c in cells)) for h in heads}
    fmt = lambda d: "  ".join(d[h].ljust(widths[h]) for h in heads).rstrip()  # noqa: E731
    sep = "  ".join("-" * widths[h] for h in heads)
    return "\n".join([fmt({h: h for h in heads}), sep, *(fmt(c) for c in cells)]) + "\n"
