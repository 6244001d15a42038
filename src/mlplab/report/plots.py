"""The report's figures, drawn with matplotlib's Agg canvas (no pyplot, no display, no global state).

Every function takes plain arrays or RunResults, writes one PNG at `DPI` and returns its path.
Colours come from `model_colors` so a model keeps its colour across figures.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from mlplab.report.metrics import pareto_front
from mlplab.report.results import RunResult
from mlplab.report.table import si
from mlplab.safeio import atomic_write_with

DPI = 130
_PALETTE = (
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)


def model_colors(names) -> dict[str, str]:
    """A fixed colour per model, in order of first appearance (cycling after ten)."""
    out: dict[str, str] = {}
    for n in names:
        if n not in out:
            out[n] = _PALETTE[len(out) % len(_PALETTE)]
    return out


def literal_text(draw):
    """Draw with matplotlib's math text off: model and class names are user text, and one holding
    ``$...$`` must show as written (not be parsed, which also crashes on invalid math)."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context({"text.parse_math": False}):
            return draw(*args, **kwargs)

    return wrapper


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg chosen here, not at import
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    return atomic_write_with(Path(path), lambda handle: fig.savefig(
        handle, dpi=DPI, format="png", bbox_inches="tight", facecolor="white"))


def _series(run: RunResult, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, values) of `key` in one run's history, rows without a finite value left out."""
    ep, vals = [], []
    for i, row in enumerate(run.history):
        v = row.get(key)
        if v is not None and np.isfinite(v):
            ep.append(int(row.get("epoch", i + 1)))
            vals.append(float(v))
    return np.array(ep, dtype=int), np.array(vals, dtype=float)


def _common_mean(runs: list[RunResult], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean of `key` over the seeds, at the epochs every seed reached (so the mean never jumps
    where a seed stopped early)."""
    series = []
    for r in runs:
        ep, v = _series(r, key)
        series.append(dict(zip(ep.tolist(), v.tolist())))
    common = sorted(set.intersection(*(set(s) for s in series))) if series else []
    return np.array(common, dtype=int), np.array([np.mean([s[e] for s in series]) for e in common])


def comparison_caption(seed_counts: list[int]) -> str:
    """The learning-curve figure's caption; it explains seed lines only where a model has several."""
    text = ("Validation accuracy and loss per epoch, one colour per model; solid lines are validation, "
            "dashed lines training, so a widening gap shows over-fitting. A dot marks the epoch whose "
            "weights were kept.")
    if any(n > 1 for n in seed_counts):
        text += (" For a model trained with several seeds, each seed is a thin line ending where that seed "
                 "stopped, and the thick line is the mean over its seeds, drawn up to the last epoch all of "
                 "them reached.")
    return text


@literal_text
def comparison(groups: dict[str, list[RunResult]], colors: dict[str, str], path: Path, *, validated_on: str = "val") -> Path:
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    fig = _figure(12, 4.6)
    ax_acc, ax_loss = fig.subplots(1, 2)
    vname = "test set used as validation" if validated_on == "test" else "validation"
    handles = []
    for name, runs in groups.items():
        c = colors[name]
        several = len(runs) > 1
        has_val = any(_series(r, "val_loss")[0].size or _series(r, "val_accuracy")[0].size for r in runs)
        for ax, key, scale in ((ax_acc, "accuracy", 100.0), (ax_loss, "loss", 1.0)):
            for r in runs:
                ep, v = _series(r, "val_" + key)
                if ep.size:
                    ax.plot(ep, v * scale, color=c, lw=0.9 if several else 2, alpha=0.45 if several else 1,
                            marker="o" if ep.size < 3 else None, ms=3)
                    hit = np.flatnonzero(ep == r.kept_epoch)
                    if hit.size:
                        ax.plot(ep[hit], v[hit] * scale, "o", color=c, ms=5 if several else 7,
                                mec="black", mew=0.7, zorder=5)
                if not several:
                    ep, v = _series(r, key)
                    ax.plot(ep, v * scale, color=c, ls="--", lw=1.2, alpha=0.8)
            if several:
                for k, style in (("val_" + key, {"lw": 2.2}), (key, {"ls": "--", "lw": 1.2, "alpha": 0.8})):
                    ep, m = _common_mean(runs, k)
                    if ep.size:
                        ax.plot(ep, m * scale, color=c, **style)
        label = name + (f" ({len(runs)} seeds)" if several else "")
        handles.append(Line2D([], [], color=c, lw=2, ls="-" if has_val else "--", label=label))
    ax_acc.set_title(f"Accuracy per epoch ({vname})")
    ax_acc.set_ylabel("accuracy (%)")
    ax_loss.set_title(f"Loss per epoch ({vname})")
    ax_loss.set_ylabel("cross-entropy loss (nats)")
    for ax in (ax_acc, ax_loss):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
    style = [Line2D([], [], color="gray", lw=2, label="validation"),
             Line2D([], [], color="gray", ls="--", label="training"),
             Line2D([], [], color="gray", ls="", marker="o", mec="black", label="epoch kept")]
    if any(len(runs) > 1 for runs in groups.values()):
        style[:1] = [Line2D([], [], color="gray", lw=2.2, label="validation, mean of seeds"),
                     Line2D([], [], color="gray", lw=0.9, alpha=0.6, label="validation, one seed")]
    ax_acc.legend(handles=handles, loc="best", fontsize=8)
    ax_loss.legend(handles=style, loc="best", fontsize=8)
    fig.suptitle("Model comparison: learning curves", fontsize=13, fontweight="bold")
    fig.tight_layout()
    return _save(fig, path)


def cost_caption(seed_counts: list[int]) -> str:
    """The accuracy-against-cost figure's caption."""
    text = "Test accuracy against training cost (exact training FLOPs, log scale), one point per model."
    if any(n > 1 for n in seed_counts):
        text += (" For a model trained with several seeds the point is the mean and the vertical bar ±1 "
                 "standard deviation.")
    return text + (" The grey step line joins the Pareto front: the models that no other model beats on both "
                   "cost and accuracy.")


@literal_text
def accuracy_vs_cost(rows: list[dict], colors: dict[str, str], path: Path) -> Path:
    """rows: summary rows (model, train_flops, test_accuracy, test_accuracy_std, seeds). Models
    without a positive FLOP count cannot sit on a log axis: they are named under the plot instead."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fig = _figure(7.5, 5)
    ax = fig.subplots()
    missing = [r["model"] for r in rows if not (np.isfinite(r["train_flops"]) and r["train_flops"] > 0)]
    rows = [r for r in rows if r["model"] not in missing]
    x = np.array([r["train_flops"] for r in rows], dtype=float)
    y = np.array([r["test_accuracy"] * 100 for r in rows])
    front = pareto_front(x, y)
    if len(front) > 1:
        ax.step(x[front], y[front], where="post", color="0.55", lw=1.5, ls="-", zorder=1, label="Pareto front")
    elif front:
        ax.plot(x[front], y[front], "s", mfc="none", mec="0.55", ms=14, label="Pareto front")
    for r, xi, yi in zip(rows, x, y):
        c = colors[r["model"]]
        err = r["test_accuracy_std"] * 100 if r["seeds"] > 1 else None
        ax.errorbar(xi, yi, yerr=err, fmt="o", color=c, ms=8, capsize=4, lw=1.5, mec="black", mew=0.6,
                    zorder=3, label=r["model"] + (f" ({r['seeds']} seeds)" if r["seeds"] > 1 else ""))
        ax.annotate(f"{yi:.2f} %", (xi, yi), textcoords="offset points", xytext=(8, -12), fontsize=8, color=c)
    ax.set_xscale("log")
    if x.size:
        ax.set_xlim(x.min() / 2.5, x.max() * 2.5)
        decades = np.log10(x.max() / x.min()) + 0.8
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0,) if decades > 3 else (1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: si(v)))
        ax.xaxis.set_minor_formatter(NullFormatter())
        err = np.array([r["test_accuracy_std"] * 100 if r["seeds"] > 1 else 0.0 for r in rows])
        lo, hi = float((y - err).min()), float((y + err).max())
        pad = max(0.3, (hi - lo) * 0.15)
        ax.set_ylim(max(0.0, lo - pad), min(100.0 + pad / 3, hi + pad))
        ax.legend(loc="lower right", fontsize=8)
    if missing:
        ax.text(0.5, -0.2, "not drawn (no training FLOP count): " + ", ".join(missing), transform=ax.transAxes,
                ha="center", va="top", fontsize=8, color="0.35", wrap=True)
    ax.set_xlabel("training cost (FLOPs, log scale; k, M, G, T = 10³, 10⁶, 10⁹, 10¹²)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy against training cost", fontweight="bold")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


@literal_text
def confusion(cm: np.ndarray, class_names, path: Path, *, title: str, color: str = "#1f77b4") -> Path:
    """Counts in each cell; the colour is the row-normalised fraction (so rare classes show too)."""
    from matplotlib.colors import LinearSegmentedColormap

    cm = np.asarray(cm)
    k = cm.shape[0]
    size = max(4.5, 0.5 * k + 2)
    fig = _figure(size + 0.8, size)
    ax = fig.subplots()
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    cmap = LinearSegmentedColormap.from_list("m", ["#ffffff", color])
    im = ax.imshow(frac, cmap=cmap, vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8 if k <= 12 else 6,
                        color="white" if frac[i, j] > 0.6 else "black")
    names = [str(n) for n in class_names]
    ax.set_xticks(range(k), names, rotation=45 if max(map(len, names)) > 2 else 0, ha="right" if max(map(len, names)) > 2 else "center")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontweight="bold")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    fig.tight_layout()
    return _save(fig, path)


def _mosaic(tiles: np.ndarray, cols: int, gap: int, top: int = 0) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Tiles (n, h, w) laid out `cols` to a row on a NaN background, `gap` pixels apart and `top`
    pixels of room above each tile (for its label); returns the mosaic and each tile's (row, col) origin."""
    n, h, w = tiles.shape
    cols = max(1, min(cols, n))
    rows = max(1, -(-n // cols))
    ch, cw = top + h + gap, w + gap
    mosaic = np.full((rows * ch - gap, cols * cw - gap), np.nan)
    origins = []
    for i, tile in enumerate(tiles):
        y, x = (i // cols) * ch + top, (i % cols) * cw
        mosaic[y:y + h, x:x + w] = tile
        origins.append((y, x))
    return mosaic, origins


def _grid_figure(mosaic: np.ndarray, inches_per_px: float, title: str):
    """One axes holding the whole mosaic, filling the figure below the title (no tight_layout: one
    axes of known size needs none, and a figure of many small axes is slow to lay out)."""
    rows, cols = mosaic.shape
    head = 0.45
    fig = _figure(cols * inches_per_px + 0.2, rows * inches_per_px + head + 0.1)
    width, height = fig.get_size_inches()
    ax = fig.add_axes((0.1 / width, 0.1 / height, 1 - 0.2 / width, 1 - (head + 0.1) / height))
    ax.axis("off")
    fig.suptitle(title, fontweight="bold", y=1 - 0.08 / height, va="top")
    return fig, ax


@literal_text
def mistakes(images: np.ndarray, y_true, probs, indices, class_names, path: Path, *, title: str, cols: int = 8) -> Path:
    """A grid of test images with true label, predicted label and its probability, drawn as one
    mosaic (dark ink on white, as the digits are written), each tile framed in grey."""
    from matplotlib.patches import Rectangle

    images = np.asarray(images)
    h, w = images.shape[1:3]
    idx = np.asarray(indices, dtype=int)
    names = [str(c) for c in class_names]
    gap = max(3, w // 6)
    ipp = 1.3 / (w + gap)  # inches per pixel: a tile and its gap take 1.3 in
    tiles = np.full((max(cols, idx.size), h, w), np.nan)  # a full first row, so every grid is as wide
    tiles[: idx.size] = images[idx]
    mosaic, origins = _mosaic(tiles, cols, gap=gap, top=round(0.34 / ipp))
    fig, ax = _grid_figure(mosaic, ipp, title)
    ax.imshow(np.ma.masked_invalid(mosaic), cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
    for (y, x), i in zip(origins, idx):
        p = probs[i]
        pred = int(np.argmax(p))
        ax.add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, ec="0.7", lw=0.6, clip_on=False))
        ax.text(x + w / 2, y - 1.5, f"true: {names[int(y_true[i])]}\npred: {names[pred]} ({p[pred]:.2f})",
                ha="center", va="bottom", fontsize=7.5, color="#a01010", linespacing=1.15)
    if not idx.size:
        ax.text(mosaic.shape[1] / 2, mosaic.shape[0] / 2, "no mistakes on the test set", ha="center", va="center", fontsize=11)
    return _save(fig, path)


@literal_text
def first_layer(weights: np.ndarray, image_shape: tuple[int, int], path: Path, *, title: str, max_units: int = 32, cols: int = 8) -> Path:
    """Each of the first `max_units` hidden units' input weights drawn as an H×W tile of one mosaic
    (red positive, blue negative, each tile scaled to its own largest magnitude), unit number above."""
    from matplotlib import colormaps

    w = np.asarray(weights, dtype=float)[:max_units]
    h, wd = image_shape
    lim = np.abs(w).max(axis=1, keepdims=True)
    tiles = (w / np.where(lim > 0, lim, 1.0)).reshape(-1, h, wd)
    gap = 3
    ipp = 1.15 / (wd + gap)  # inches per pixel: a tile and its gap take 1.15 in
    mosaic, origins = _mosaic(tiles, cols, gap=gap, top=round(0.16 / ipp))
    fig, ax = _grid_figure(mosaic, ipp, title)
    cmap = colormaps["RdBu_r"].with_extremes(bad="white")
    ax.imshow(np.ma.masked_invalid(mosaic), cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    for i, (y, x) in enumerate(origins):
        ax.text(x + wd / 2, y - 1, f"unit {i}", ha="center", va="bottom", fontsize=6.5, color="0.3")
    return _save(fig, path)
