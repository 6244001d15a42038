"""Contender: mlplab, called the way a user calls it.

    python -m bench.peers.mlplab_peer --model tutorial-512-512 --epochs 5 [--precision fp32|bf16]
    python -m bench.peers.mlplab_peer --recipe fast --target-accuracy 0.98

Prints one JSON object on stdout (the last line); status "skipped" when mlplab (or the API this
peer needs) cannot be imported.

The API used (the public one; falls back to the same functions in mlplab.config / mlplab.model /
mlplab.training while the top-level names are being written):

    cfg = mlplab.load_config("tutorial-512-512").with_overrides({"training.epochs": 6, "training.early_stopping": None})
    model = mlplab.build_model(cfg.model, num_features=784, num_classes=10)
    history = mlplab.fit(model, cfg.training, (x_train, y_train), validation=(x_test, y_test), verbose=0)

Trained on all 60,000 training images with the 10,000 test images as validation data, as the
tutorial and the peers do (validation_split is set to 0 so nothing is held out).
What is timed: fit's own `history.rows[i]["seconds"]` is the whole epoch (training pass +
validation pass) = "epoch_s". Where fit accepts callbacks, a callback also notes the end of the
last training batch, which splits the epoch into "train_s" and "val_s" like the peers; without
it only epoch_s is known and the table says so.
Time to accuracy: from just before build_model (data in memory as numpy) to the end of the
epoch whose evaluation first shows the target.
"""

from __future__ import annotations

import inspect
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.common import (  # noqa: E402
    MODELS, cpu_info, emit, loadavg, peer_arguments, resolve_model, summarize, time_to_accuracy,
)

# Time-to-accuracy recipes: (config, overrides, precision). `tutorial` is the tutorial's 512-512
# model trained as the tutorial trains it; `fast` is mlplab's candidate fastest recipe (any option
# mlplab offers users) — the training engineers change it as the recipe improves.
RECIPES: dict[str, tuple[str, dict, str]] = {
    "tutorial": ("tutorial-512-512", {}, "fp32"),
    # The shipped config mlplab offers users for this: 256-256, batch 256, one-cycle Adam, 3 epochs.
    "fast": ("fast-256-256", {}, "fp32"),
}


def resolve_api():
    """(load_config, build_model, fit, where) from the public API, else from the submodules."""
    import mlplab

    if all(hasattr(mlplab, n) for n in ("load_config", "build_model", "fit")):
        return mlplab.load_config, mlplab.build_model, mlplab.fit, "mlplab"
    from mlplab.config import load_config
    from mlplab.model import build_model
    from mlplab.training import fit

    return load_config, build_model, fit, "mlplab.config/model/training (top-level API not there yet)"


def main() -> None:
    p = peer_arguments("mlplab")
    p.set_defaults(model="tutorial-512-512")
    for action in p._actions:  # --model is optional here (recipes choose their own)
        if action.dest == "model":
            action.required = False
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--recipe", choices=sorted(RECIPES), default=None,
                   help="time-to-accuracy recipe (implies --target-accuracy 0.98 unless given)")
    p.add_argument("--overrides", default="{}", help="JSON dict of extra dotted-key config overrides")
    args = p.parse_args()

    try:
        import torch

        torch.set_num_threads(args.threads)
        import mlplab

        load_config, build_model, fit, api = resolve_api()
    except Exception as exc:  # noqa: BLE001 - any import failure means "no mlplab column"
        emit({"peer": "mlplab", "model": args.model, "status": "skipped",
              "reason": f"cannot import the mlplab training API: {type(exc).__name__}: {exc}"})
        return

    from bench.data import load_mnist

    target = args.target_accuracy
    if args.recipe is not None:
        name, recipe_overrides, precision = RECIPES[args.recipe]
        target = target if target is not None else 0.98
    else:
        name, recipe_overrides, precision = resolve_model(args.model), {}, args.precision
    spec = MODELS.get(name)
    min_epochs = args.warmup + args.epochs
    if args.recipe == "fast":
        # a schedule is laid out over the recipe's own epochs
        epochs = int(recipe_overrides.get("training.epochs", load_config(name).training.epochs))
    else:
        epochs = max(min_epochs, args.max_epochs) if target is not None else min_epochs
    overrides = {"training.epochs": epochs, "training.early_stopping": None, "training.validation_split": 0.0,
                 **{k: v for k, v in recipe_overrides.items() if k != "training.epochs"},
                 **json.loads(args.overrides)}

    load_avg_start = loadavg()
    (x_train, y_train), (x_test, y_test) = load_mnist()
    try:
        cfg = load_config(name).with_overrides(overrides)
    except Exception as exc:  # noqa: BLE001
        emit({"peer": "mlplab", "model": name, "status": "error", "reason": f"config: {type(exc).__name__}: {exc}"})
        sys.exit(1)

    params = inspect.signature(fit).parameters
    kwargs: dict = {}
    if "verbose" in params:
        kwargs["verbose"] = 0
    notes: list[str] = []
    if precision != "fp32":
        if "precision" in params:
            kwargs["precision"] = precision
        elif "runtime" in params:
            from mlplab.training import resolve_runtime

            kwargs["runtime"] = resolve_runtime("cpu", precision)
        else:
            emit({"peer": "mlplab", "model": name, "status": "skipped", "precision": precision,
                  "reason": "fit() takes neither precision= nor runtime="})
            return
    elif "runtime" in params and "precision" not in params:
        from mlplab.training import resolve_runtime

        kwargs["runtime"] = resolve_runtime("cpu", "fp32")  # CPU even where a GPU is visible

    marks: dict[int, float] = {}  # epoch → perf_counter at its last batch; -epoch → seconds since t0 at its end
    t0 = 0.0  # set just before build_model; read by the callback
    if "callbacks" in params:
        try:
            from mlplab.training import Callback

            class Marks(Callback):
                """Notes when the last training batch of each epoch ends; stops at the target."""

                def on_epoch_begin(self, state) -> None:
                    self.steps = getattr(state, "steps_per_epoch", None)

                def on_batch_end(self, state, batch, running) -> None:
                    if batch == self.steps:
                        marks[state.epoch + 1] = time.perf_counter()

                def on_epoch_end(self, state, row) -> None:
                    marks[-row["epoch"]] = time.perf_counter() - t0
                    if (row["epoch"] >= min_epochs and target is not None and args.recipe != "fast"
                            and (row.get("val_accuracy") or 0.0) >= target):
                        state.stop_training = True

            kwargs["callbacks"] = [Marks()]
        except Exception as exc:  # noqa: BLE001
            notes.append(f"no train/val split of the epoch time: {exc}")
    else:
        notes.append("fit() takes no callbacks: only whole-epoch seconds (training + validation) are known")

    t0 = time.perf_counter()
    try:
        model = build_model(cfg.model, num_features=784, num_classes=10)
        setup_s = time.perf_counter() - t0
        history = fit(model, cfg.training, (x_train, y_train), validation=(x_test, y_test), **kwargs)
    except Exception as exc:  # noqa: BLE001
        emit({"peer": "mlplab", "model": name, "status": "error", "precision": precision,
              "reason": f"{type(exc).__name__}: {exc}"})
        sys.exit(1)
    rows = history.rows if hasattr(history, "rows") else list(history)

    epochs: list[dict] = []
    for r in rows:
        e = int(r["epoch"])
        row = {"epoch": e, "epoch_s": float(r["seconds"]), "train_s": None, "val_s": None,
               "loss": r.get("loss"), "accuracy": r.get("accuracy"),
               "val_loss": r.get("val_loss"), "val_accuracy": r.get("val_accuracy"), "lr": r.get("lr")}
        if e in marks and -e in marks:
            # fit's own seconds run from its epoch start to after validation; the callback's end
            # mark follows within microseconds, so val_s = end mark − last-batch mark.
            row["val_s"] = max(0.0, (marks[-e] + t0) - marks[e])
            row["train_s"] = row["epoch_s"] - row["val_s"]
            row["elapsed_s"] = marks[-e]
        epochs.append(row)

    hidden = spec["hidden"] if spec else [layer.units for layer in cfg.model.layers if hasattr(layer, "units")]
    result = {
        "peer": "mlplab", "model": name, "status": "ok", "api": api, "precision": precision,
        "framework": f"mlplab {getattr(mlplab, '__version__', '?')} / torch {torch.__version__}",
        "versions": {"mlplab": getattr(mlplab, "__version__", "?"), "torch": torch.__version__},
        "threads": {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()},
        "batch_size": cfg.training.batch_size, "train_samples": len(x_train), "val_samples": len(x_test),
        "warmup_epochs": args.warmup, "setup_s": setup_s, "overrides": overrides, "notes": notes,
        "epochs": epochs,
        "cpu": cpu_info(), "loadavg_start": load_avg_start, "loadavg_end": loadavg(),
    }
    if args.recipe:
        result["recipe"] = args.recipe
    result.update(summarize(epochs, args.warmup, len(x_train), hidden))
    if target is not None:
        result["time_to_accuracy"] = time_to_accuracy(epochs, setup_s, target)
    emit(result)


if __name__ == "__main__":
    main()
