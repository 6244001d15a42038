"""Pictures of dataset images: one image with its label, or a grid of them (``mlplab data show``)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from mlplab.data.dataset import Dataset
from mlplab.errors import DataError, StorageError
from mlplab.safeio import atomic_write_with


def save_images(dataset: Dataset, out: str | Path, *, split: str = "train", index: int = 0,
                grid: tuple[int, int] | None = None,
                transform: Callable[[np.ndarray], np.ndarray] | None = None) -> Path:
    """Write image ``index`` of a split (or a rows×cols grid starting there) with labels, to ``out``.

    The format follows the file's extension (png, pdf, svg, ...). Returns the path written.
    ``transform`` maps the chosen uint8 images (N, H, W) to images of that shape in 0-255 (an
    augmentation, say) before they are drawn.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    if split not in ("train", "test"):
        raise DataError(f"split must be train or test, got {split!r}")
    images, labels = (dataset.x_train, dataset.y_train) if split == "train" else (dataset.x_test, dataset.y_test)
    rows, cols = grid or (1, 1)
    count = rows * cols
    if index < 0 or index + count > len(images):
        shown = f"images {index}-{index + count - 1}" if count > 1 else f"image {index}"
        raise DataError(f"{dataset.name} {split} has {len(images)} images; cannot show {shown}")
    out = Path(out)
    shown = images[index:index + count]
    if transform is not None:
        shown = transform(shown)
    with matplotlib.rc_context({"text.parse_math": False}):  # class names are shown as written, "$" included
        _draw(plt, dataset, shown, labels[index:index + count], out, index, rows, cols)
    return out


def _draw(plt, dataset: Dataset, images, labels, out: Path, index: int, rows: int, cols: int) -> None:
    """Draw `images` (those from `index` on) and their `labels`."""
    count = rows * cols
    fig, axes = plt.subplots(rows, cols, figsize=(max(3.0, 1.2 * cols), max(3.0, 1.3 * rows)), squeeze=False)
    try:
        supported = fig.canvas.get_supported_filetypes()
        fmt = out.suffix.lstrip(".").lower()
        if fmt not in supported:
            raise DataError(f"{out}: cannot write .{fmt} files; use one of .{', .'.join(sorted(supported))}")
        for k, ax in enumerate(axes.flat):
            ax.imshow(images[k], cmap="gray", vmin=0, vmax=255)
            ax.set_title(_label(dataset, int(labels[k]), index + k if count > 1 else None),
                         fontsize=8 if count > 1 else 10)
            ax.axis("off")
        fig.tight_layout()
        atomic_write_with(out, lambda handle: fig.savefig(handle, dpi=100, format=fmt))
    except StorageError as exc:
        raise DataError(str(exc)) from None
    finally:
        plt.close(fig)


def _label(dataset: Dataset, label: int, index: int | None) -> str:
    name = dataset.class_names[label]
    text = f"label {label}" if name == str(label) else f"{label}: {name}"
    return text if index is None else f"#{index} {text}"


def parse_grid(text: str) -> tuple[int, int]:
    """'4x8' -> (4, 8); rows and columns at least 1 and at most 50."""
    parts = text.lower().replace("×", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"grid must look like ROWSxCOLS (e.g. 4x8), got {text!r}")
    rows, cols = (int(p) for p in parts)
    if not (1 <= rows <= 50 and 1 <= cols <= 50):
        raise ValueError(f"grid rows and columns must be between 1 and 50, got {text!r}")
    return rows, cols

