"""The report's figures, drawn with matplotlib's Agg canvas (no pyplot, no display, no global state).

Every function takes plain arrays or RunResults, writes one PNG at `DPI` and returns its path.
Colours come from `model_colors` so a model keeps its colour across figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlplab.report.metrics import pareto_front
from mlplab.report.results import RunResult

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


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg chosen here, not at import
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=DPI, format="png", bbox_inches="tight", facecolor="white")
    return path


def _curve(runs: list[RunResult], key: str):
    """Epochs, mean, min and max of `key` over seeds, at each epoch some seed reached."""
    by_epoch: dict[int, list[float]] = {}
    for r in runs:
        for i, row in enumerate(r.history):
            v = row.get(key)
            if v is not None and np.isfinite(v):
                by_epoch.setdefault(int(row.get("epoch", i + 1)), []).append(float(v))
    if not by_epoch:
        return None
    ep = np.array(sorted(by_epoch))
    vals = [by_epoch[e] for e in ep]
    return ep, np.array([np.mean(v) for v in vals]), np.array([min(v) for v in vals]), np.array([max(v) for v in vals])


COMPARISON_CAPTION = (
    "Validation accuracy and loss per epoch, one colour per model; solid lines are validation, "
    "dashed lines training, so a widening gap shows over-fitting. The dot marks the epoch whose "
    "weights were kept. With several seeds, each line is the mean over the seeds that reached that "
    "epoch and the shaded band spans their minimum to maximum."
)


def comparison(groups: dict[str, list[RunResult]], colors: dict[str, str], path: Path, *, validated_on: str = "val") -> Path:
    fig = _figure(12, 4.6)
    ax_acc, ax_loss = fig.subplots(1, 2)
    vname = "test set used as validation" if validated_on == "test" else "validation"
    for name, runs in groups.items():
        c = colors[name]
        label = name if len(runs) == 1 else f"{name} (mean of {len(runs)} seeds)"
        for ax, key, scale in ((ax_acc, "accuracy", 100.0), (ax_loss, "loss", 1.0)):
            val = _curve(runs, "val_" + key)
            train = _curve(runs, key)
            if train is not None:
                ep, m, lo, hi = train
                ax.plot(ep, m * scale, color=c, ls="--", lw=1.2, alpha=0.8, label=None if val else label)
            if val is not None:
                ep, m, lo, hi = val
                ax.plot(ep, m * scale, color=c, lw=2, label=label, marker="o" if len(ep) < 3 else None, ms=3)
                if len(runs) > 1:
                    ax.fill_between(ep, lo * scale, hi * scale, color=c, alpha=0.18, lw=0)
                if len(runs) == 1:
                    kept = runs[0].kept_epoch
                    hit = np.flatnonzero(ep == kept)
                    if hit.size:
                        ax.plot(ep[hit], m[hit] * scale, "o", color=c, ms=7, mec="black", mew=0.8, zorder=5)
    ax_acc.set_title(f"Accuracy per epoch ({vname})")
    ax_acc.set_ylabel("accuracy (%)")
    ax_loss.set_title(f"Loss per epoch ({vname})")
    ax_loss.set_ylabel("cross-entropy loss")
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_acc, ax_loss):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
    style = [Line2D([], [], color="gray", lw=2, label="validation"), Line2D([], [], color="gray", ls="--", label="training")]
    ax_acc.legend(loc="lower right", fontsize=8)
    ax_loss.legend(handles=style, loc="upper right", fontsize=8)
    fig.suptitle("Model comparison: learning curves", fontsize=13, fontweight="bold")
    fig.tight_layout()
    return _save(fig, path)


COST_CAPTION = (
    "Test accuracy against training cost (exact training FLOPs, log scale), one point per model. "
    "With several seeds the point is the mean and the vertical bar ±1 standard deviation. The grey "
    "step line joins the Pareto front: the models that no other model beats on both cost and accuracy."
)


def accuracy_vs_cost(rows: list[dict], colors: dict[str, str], path: Path) -> Path:
    """rows: summary rows (model, train_flops, test_accuracy, test_accuracy_std, seeds)."""
    fig = _figure(7.5, 5)
    ax = fig.subplots()
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
    if x.size and x.min() > 0:
        ax.set_xlim(x.min() / 2.5, x.max() * 2.5)
    err = np.array([r["test_accuracy_std"] * 100 if r["seeds"] > 1 else 0.0 for r in rows])
    lo, hi = float((y - err).min()), float((y + err).max())
    pad = max(0.3, (hi - lo) * 0.15)
    ax.set_ylim(max(0.0, lo - pad), min(100.0 + pad / 3, hi + pad))
    ax.set_xlabel("training cost (FLOPs, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy against training cost", fontweight="bold")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


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


def mistakes(images: np.ndarray, y_true, probs, indices, class_names, path: Path, *, title: str, cols: int = 8) -> Path:
    """A grid of test images with true label, predicted label and its probability."""
    n = len(indices)
    cols = max(1, min(cols, n)) if n else 1
    rows = max(1, -(-n // cols))
    fig = _figure(1.45 * cols + 0.4, 1.75 * rows + 0.6)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    names = [str(c) for c in class_names]
    for ax in axes:
        ax.axis("off")
    for ax, idx in zip(axes, indices):
        p = probs[idx]
        pred = int(np.argmax(p))
        ax.imshow(images[idx], cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(f"true: {names[int(y_true[idx])]}\npred: {names[pred]} ({p[pred]:.2f})", fontsize=7.5, color="#a01010")
    if n == 0:
        axes[0].text(0.5, 0.5, "no mistakes on the test set", ha="center", va="center", fontsize=11)
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return _save(fig, path)


def first_layer(weights: np.ndarray, image_shape: tuple[int, int], path: Path, *, title: str, max_units: int = 32, cols: int = 8) -> Path:
    """Each of the first `max_units` hidden units' input weights drawn as an H×W tile of one mosaic
    (red positive, blue negative, each tile scaled to its own largest magnitude)."""
    w = np.asarray(weights, dtype=float)[:max_units]
    n = w.shape[0]
    h, wd = image_shape
    cols = max(1, min(cols, n))
    rows = max(1, -(-n // cols))
    gap = 2
    mosaic = np.full((rows * (h + gap) - gap, cols * (wd + gap) - gap), np.nan)
    for i, unit in enumerate(w):
        r, c = divmod(i, cols)
        lim = float(np.abs(unit).max()) or 1.0
        mosaic[r * (h + gap): r * (h + gap) + h, c * (wd + gap): c * (wd + gap) + wd] = unit.reshape(h, wd) / lim
    fig = _figure(1.25 * cols + 0.3, 1.3 * rows + 0.7)
    ax = fig.subplots()
    from matplotlib import colormaps

    cmap = colormaps["RdBu_r"].with_extremes(bad="white")
    ax.imshow(np.ma.masked_invalid(mosaic), cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    for i in range(n):
        r, c = divmod(i, cols)
        ax.text(c * (wd + gap) + 1, r * (h + gap) + 1, str(i), fontsize=6.5, va="top", ha="left", color="0.25")
    ax.axis("off")
    ax.set_title(title, fontweight="bold")
    fig.tight_layout()
    return _save(fig, path)
