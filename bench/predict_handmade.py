"""How well `mlplab predict` reads pictures of digits made the way people make them.

    python bench/predict_handmade.py                    # trains the test fixture's model (seconds), 50 digits
    python bench/predict_handmade.py --run runs/fast --digits 200

Real MNIST test digits are rendered in every style of `tests/use/handmade.py` (a photographed
sheet as JPEG, small in the corner of a large photo, an RGBA canvas export, chalk on black as
WebP, a thick marker as GIF, grey + alpha, a 16-bit scan, a BMP) and predicted three ways: with
the model's preprocessing (what `mlplab predict` does), naively (the whole picture resized to
28×28 and inverted when light), and, for reference, the digits as MNIST gives them. Prints one
row per style. Needs MLPLAB_DATA_DIR (or the cache) to hold MNIST.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "use"))

from handmade import STYLES, write_set  # noqa: E402

import mlplab  # noqa: E402


def naive(path: Path) -> np.ndarray:
    grey = np.asarray(Image.open(path).convert("L").resize((28, 28), Image.Resampling.BILINEAR))
    return 255 - grey if np.median(grey) > 127 else grey


def train_fixture_model(out: Path, dataset) -> Path:
    """The model tests/use/conftest.py trains: fast-256-256, 3 epochs, first 10,000 training images."""
    config = mlplab.load_config("fast-256-256")
    config = config.model_copy(update={"training": config.training.model_copy(update={"epochs": 3, "refit": False})})
    mlplab.train_run(config, out=out, dataset=dataset.subset(train=10_000, test=2000), verbose=0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a trained run (default: train the test fixture's model)")
    parser.add_argument("--digits", type=int, default=50, help="MNIST test digits to render (default: 50)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the renderings' placement and noise")
    args = parser.parse_args()
    dataset = mlplab.load_dataset("mnist")
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or train_fixture_model(Path(tmp) / "run", dataset)
        model = mlplab.load_model(run)
        x, y = dataset.x_test[: args.digits], dataset.y_test[: args.digits]
        files = write_set(Path(tmp) / "pictures", x, y, seed=args.seed)
        paths = [p for p, _ in files]
        labels = np.array([label for _, label in files])
        preprocessed = model.predict(paths) == labels
        naive_right = model.predict(np.stack([naive(p) for p in paths]), preprocess=False) == labels
        clean = model.predict(x) == y
    print(f"model {run if args.run else 'fast-256-256, 3 epochs on 10,000 MNIST images'}; "
          f"{args.digits} MNIST test digits, {len(STYLES)} styles; MNIST form read right: {clean.mean():.1%}")
    print(f"{'style':10s} {'preprocessed':>13s} {'naive':>8s}")
    for style in STYLES:
        mine = np.array([f"-{style}-" in p.name for p in paths])
        print(f"{style:10s} {preprocessed[mine].mean():13.1%} {naive_right[mine].mean():8.1%}")
    print(f"{'all':10s} {preprocessed.mean():13.1%} {naive_right.mean():8.1%}")
    readable = np.repeat(clean, len(STYLES))
    print(f"pictures of digits the model reads right in MNIST form: {preprocessed[readable].mean():.1%} read right")


if __name__ == "__main__":
    main()
