"""report.html: one self-contained page (images as base64 data: URIs, inline CSS, no scripts, no
network), rendered from the Jinja2 template in templates/ with autoescaping on: every name,
config string and note the runs bring is escaped by the template engine, not by hand."""

from __future__ import annotations

import base64
import struct
from pathlib import Path

from mlplab.report.table import NUMERIC, display_table

TEMPLATE = "report.html.j2"


# On a narrow screen a figure is drawn at least this fraction of its pixel width (and scrolls
# sideways inside its frame): shrunk to a phone's width, its 8-point labels would be 4 px tall.
PHONE_SCALE = 0.65


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def png_width(path: Path) -> int:
    """Pixel width from the PNG header (IHDR is the first chunk)."""
    with open(path, "rb") as f:
        head = f.read(24)
    return struct.unpack(">I", head[16:20])[0]


def _figure(path: Path, caption: str = "") -> dict:
    return {"src": data_uri(path), "caption": caption, "phone_width": round(png_width(path) * PHONE_SCALE)}


def _environment():
    import jinja2  # imported when a page is rendered, not with the report layer

    return jinja2.Environment(
        loader=jinja2.PackageLoader("mlplab.report", "templates"),
        autoescape=True,  # every template here is HTML
        undefined=jinja2.StrictUndefined,  # a misspelt name fails the render instead of vanishing
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _rgb(color: str) -> tuple[int, int, int]:
    c = color.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def _luminance(rgb) -> float:
    def lin(v: float) -> float:
        v /= 255
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def heat_cell(fraction: float, color: str) -> tuple[str, str]:
    """(background, text colour) of a confusion-matrix cell: white blended towards the model's
    colour by `fraction`, and black or white text, whichever contrasts more (WCAG ratio)."""
    base = _rgb(color)
    mixed = tuple(round(255 + (c - 255) * fraction) for c in base)
    lum = _luminance(mixed)
    text = "#000000" if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else "#ffffff"
    return "#{:02x}{:02x}{:02x}".format(*mixed), text


def _confusion(m: dict) -> dict:
    cm = m["confusion_matrix"]
    rows = []
    for i, name in enumerate(m["class_names"]):
        total = int(cm[i].sum())
        cells = []
        for j in range(cm.shape[1]):
            n = int(cm[i, j])
            bg, fg = heat_cell(n / total if total else 0.0, m["color"])
            cells.append({"count": n, "bg": bg, "fg": fg, "diagonal": i == j})
        rows.append({"name": name, "cells": cells, "total": total})
    # Names longer than a few characters are set vertically, so ten columns still fit a phone.
    return {"classes": m["class_names"], "rows": rows, "long": max(map(len, m["class_names"])) > 3}


def _model(m: dict) -> dict:
    prf = m["per_class"]
    return {
        "name": m["name"],
        "anchor": "model-" + m["slug"],
        "color": m["color"],
        "seed": m["seed"],
        "several": len(m["per_seed"]) > 1,
        "per_seed": [
            [str(s["seed"]), f'{s["test_accuracy"] * 100:.2f} %', f'{s["test_loss"]:.4f}', str(s["epochs_run"]),
             str(s["best_epoch"]), f'{s["train_flops"]:,}', f'{s["wall_seconds"]:.1f}', s["run_dir"] or "–"]
            for s in m["per_seed"]
        ],
        "confusion": _confusion(m),
        "per_class": [
            [str(c), f"{p:.3f}", f"{r:.3f}", f"{f:.3f}", str(n)]
            for c, p, r, f, n in zip(m["class_names"], prf["precision"], prf["recall"], prf["f1"], prf["support"])
        ],
        "pairs": [[a, b, str(n)] for a, b, n in m["confused_pairs"]],
        "mistakes": _figure(m["mistakes"]),
        "weights": _figure(m["weights"], m["weights_caption"]),
        "config_text": m["config_text"],
        "config_hash": m["config_hash"],
    }


def _count(n) -> str:
    return "–" if n is None else f"{n:,}"


def _dataset(entry: dict) -> dict:
    d = entry["facts"]
    if d is None:
        return {"recorded": False, "runs": entry["runs"]}
    verified = {True: "yes: every file matched its pinned SHA-256", False: "no: no pinned checksum matched this copy",
                None: "not recorded"}[d.checksum_verified]
    splits = [f"{_count(f)} fitted, validated on {v}" if isinstance(v, str)
              else f"{_count(f)} fitted, {_count(v)} held out for validation" for f, v in entry["splits"]]
    return {
        "recorded": True, "runs": entry["runs"], "label": d.label, "source": d.source or "–", "verified": verified,
        "train": _count(d.train_images), "test": _count(d.test_images), "splits": splits,
    }


def _environment_rows(environment: dict) -> list[tuple[str, list[str]]]:
    rows = []
    for k, v in environment.items():
        if isinstance(v, dict):
            lines = [f"{a}: {b}" for a, b in v.items()]
        elif isinstance(v, (list, tuple)):
            lines = [str(x) for x in v]
        else:
            lines = [str(v)]
        rows.append((str(k), lines))
    return rows


def render(
    *,
    title: str,
    subtitle: str,
    rows: list[dict],
    colors: dict[str, str],
    figures: dict[str, tuple[Path, str]],
    models: list[dict],
    datasets: list[dict],
    commands: list[str],
    notes: list[str],
    environment: dict,
    flops_text: str,
    warnings: list[str],
    table_notes: list[str],
) -> str:
    views = [_model(m) for m in models]
    anchors = {v["name"]: v["anchor"] for v in views}
    cells = display_table(rows)
    heads = list(cells[0])
    summary = [
        {"anchor": anchors[r["model"]], "color": colors[r["model"]], "cells": [c[h] for h in heads]}
        for r, c in zip(rows, cells)
    ]
    return _environment().get_template(TEMPLATE).render(
        title=title, subtitle=subtitle, warnings=warnings, notes=notes,
        heads=heads, numeric=[h in NUMERIC for h in heads], summary=summary, table_notes=table_notes,
        datasets=[_dataset(e) for e in datasets],
        figures={k: _figure(p, cap) for k, (p, cap) in figures.items()},
        flops_text=flops_text, models=views, commands=commands, environment=_environment_rows(environment),
    )
