"""report.html: one self-contained page (images as base64 data: URIs, inline CSS, no scripts, no network)."""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from mlplab.report.table import display_cells

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;background:#f5f6f8;color:#1d2330;line-height:1.5}
main{max-width:1180px;margin:0 auto;padding:24px 28px 60px}
header{background:#1d2a44;color:#fff;padding:26px 28px}
header h1{margin:0 auto;max-width:1180px;font-size:1.7em}
header p{margin:6px auto 0;max-width:1180px;color:#c8d2e6}
section{background:#fff;border-radius:10px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:18px 24px;margin:20px 0}
h2{margin-top:0;font-size:1.3em;border-bottom:2px solid #e6e9ef;padding-bottom:6px}
h3{font-size:1.05em;margin:18px 0 8px}
table{border-collapse:collapse;font-size:.9em;margin:8px 0}
th,td{padding:5px 10px;border-bottom:1px solid #e6e9ef;text-align:left;vertical-align:top}
th{background:#f0f2f6;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tbody tr:hover{background:#fafbfd}
.scroll{overflow-x:auto}
img{max-width:100%;height:auto;display:block;margin:8px 0;border-radius:4px}
img.narrow{max-width:min(100%,780px)}
td.name{white-space:nowrap}
figure{margin:10px 0}
figcaption{font-size:.88em;color:#555;max-width:900px}
pre{background:#f0f2f6;padding:10px 12px;border-radius:6px;overflow-x:auto;font-size:.85em}
.warn{background:#fff4e0;border-left:4px solid #f0a020;padding:10px 14px;border-radius:4px}
.swatch{display:inline-block;width:.9em;height:.9em;border-radius:2px;margin-right:6px;vertical-align:-1px}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:18px}
nav a{margin-right:14px;color:#2a5db0;text-decoration:none}
"""


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _img(path: Path, alt: str, caption: str = "", *, narrow: bool = False) -> str:
    cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    cls = ' class="narrow"' if narrow else ""
    return f'<figure><img{cls} src="{data_uri(path)}" alt="{escape(alt)}">{cap}</figure>'


def _cls(i: int, numeric) -> str:
    if i in numeric:
        return ' class="num"'
    return ' class="name"' if i == 0 else ""


def _env_value(v) -> str:
    if isinstance(v, dict):
        return "<br>".join(f"{escape(str(k))}: {escape(str(x))}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return "<br>".join(escape(str(x)) for x in v)
    return escape(str(v))


def _table(heads: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in heads)
    body = "".join(
        "<tr>" + "".join(f'<td{_cls(i, numeric)}>{c}</td>' for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f'<div class="scroll"><table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>'


def _anchor(m: dict) -> str:
    return "model-" + m["slug"]


def _summary_table(rows: list[dict], colors: dict[str, str], anchors: dict[str, str]) -> str:
    cells = [display_cells(r) for r in rows]
    heads = list(cells[0])
    out = []
    for r, c in zip(rows, cells):
        sw = f'<span class="swatch" style="background:{colors[r["model"]]}"></span>'
        vals = [escape(c[h]) for h in heads]
        vals[0] = f'{sw}<a href="#{anchors[r["model"]]}">{vals[0]}</a>'
        out.append(vals)
    numeric = {i for i, h in enumerate(heads) if h in {"params", "training FLOPs", "wall s", "samples/s", "test loss", "seeds"}}
    return _table(heads, out, numeric)


def _model_section(m: dict) -> str:
    name = m["name"]
    parts = [f'<section id="{_anchor(m)}"><h2><span class="swatch" style="background:{m["color"]}"></span>{escape(name)}</h2>']
    seeds = _table(
        ["seed", "test acc", "test loss", "epochs run", "epoch kept", "training FLOPs", "wall s", "run directory"],
        [
            [str(s["seed"]), f'{s["test_accuracy"] * 100:.2f} %', f'{s["test_loss"]:.4f}', str(s["epochs_run"]),
             str(s["best_epoch"]), f'{s["train_flops"]:,}', f'{s["wall_seconds"]:.1f}', escape(s["run_dir"] or "–")]
            for s in m["per_seed"]
        ],
        {1, 2, 3, 4, 5, 6},
    )
    parts.append(f"<h3>Runs</h3>{seeds}")
    if len(m["per_seed"]) > 1:
        parts.append(
            f"<p>The analysis below is of seed {m['seed']}, the run with the median test accuracy.</p>"
        )
    prf = m["per_class"]
    prf_rows = [
        [escape(str(cn)), f"{p:.3f}", f"{r:.3f}", f"{f:.3f}", str(s)]
        for cn, p, r, f, s in zip(m["class_names"], prf["precision"], prf["recall"], prf["f1"], prf["support"])
    ]
    pairs = m["confused_pairs"]
    pair_html = (
        _table(["true", "predicted as", "count"], [[escape(a), escape(b), str(n)] for a, b, n in pairs], {2})
        if pairs else "<p>No confusions.</p>"
    )
    parts.append(
        '<div class="grid2"><div><h3>Confusion matrix</h3>'
        + _img(m["confusion"], f"confusion matrix of {name}", "Rows: true class; columns: predicted class; colour: fraction of the row.")
        + "</div><div><h3>Per-class precision, recall and F1</h3>"
        + _table(["class", "precision", "recall", "F1", "support"], prf_rows, {1, 2, 3, 4})
        + "<h3>Most-confused pairs</h3>" + pair_html + "</div></div>"
    )
    parts.append(
        "<h3>Most confident mistakes</h3>"
        + _img(m["mistakes"], f"most confident mistakes of {name}", "Test images the model got wrong with the highest probability: true label, predicted label (probability).")
    )
    parts.append(
        "<h3>First layer's weights</h3>"
        + _img(m["weights"], f"first-layer weights of {name}", m["weights_caption"])
    )
    if m.get("config_text"):
        parts.append(f"<h3>Configuration</h3><pre>{escape(m['config_text'])}</pre>")
    parts.append("</section>")
    return "".join(parts)


def render(
    *,
    title: str,
    rows: list[dict],
    colors: dict[str, str],
    figures: dict[str, tuple[Path, str]],
    models: list[dict],
    commands: list[str],
    notes: list[str],
    environment: dict,
    flops_text: str,
    warnings: list[str],
) -> str:
    nav = "".join(f'<a href="#{_anchor(m)}">{escape(m["name"])}</a>' for m in models)
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<header><h1>{escape(title)}</h1><p>{len(models)} model(s), {sum(r['seeds'] for r in rows)} run(s)</p></header><main>",
        f'<nav><a href="#summary">Summary</a><a href="#curves">Curves</a><a href="#cost">Cost</a>{nav}<a href="#reproduce">Reproduce</a><a href="#environment">Environment</a></nav>',
    ]
    for w in warnings:
        out.append(f'<p class="warn">{escape(w)}</p>')
    if notes:
        out.append("<section><h2>Notes</h2><ul>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul></section>")
    out.append(f'<section id="summary"><h2>Summary</h2>{_summary_table(rows, colors, {m["name"]: _anchor(m) for m in models})}'
               "<p>Test accuracy with several seeds: mean ± standard deviation [95 % Student-t interval]. "
               "Epochs run: the epoch at which training stopped (early stopping or the epoch limit); "
               "epoch kept: the epoch whose weights the model holds.</p></section>")
    path, cap = figures["comparison"]
    out.append(f'<section id="curves"><h2>Learning curves</h2>{_img(path, "learning curves", cap)}</section>')
    path, cap = figures["accuracy_vs_cost"]
    out.append(f'<section id="cost"><h2>Accuracy against cost</h2>{_img(path, "accuracy against training cost", cap, narrow=True)}'
               f"<p><strong>How FLOPs are counted.</strong> {escape(flops_text)}</p></section>")
    out.extend(_model_section(m) for m in models)
    cmds = "".join(f"<pre>{escape(c)}</pre>" for c in commands) or "<p>–</p>"
    out.append(f'<section id="reproduce"><h2>Commands that produced this report</h2>{cmds}</section>')
    env_rows = [[escape(str(k)), _env_value(v)] for k, v in environment.items()]
    out.append(f'<section id="environment"><h2>Environment</h2>{_table(["item", "value"], env_rows) if env_rows else "<p>–</p>"}</section>')
    out.append("</main></body></html>")
    return "\n".join(out) + "\n"
