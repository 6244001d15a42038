"""Peer: Keras 3 on the TensorFlow backend, running the tutorial's own code.

    KERAS_BACKEND=tensorflow python -m bench.peers.keras_peer --model tutorial-512-512 --epochs 5 [--target-accuracy 0.98]

Prints one JSON object on stdout (the last line). Run it from the repository root, or let
bench/run.py start it with the thread settings pinned.

What is timed, with a callback (no per-batch hooks, so Keras keeps its fast path):
  on_epoch_begin → on_test_begin   the training pass over 60,000 images ("train_s")
  on_test_begin  → on_test_end     the validation pass over the 10,000 test images that the
                                   tutorial's `validation_data=(x_test, y_test)` asks for ("val_s")
  on_epoch_begin → on_epoch_end    both ("epoch_s")
The first epoch also traces the train and test functions (tf.function); it is the warm-up.
Time to accuracy: from just before the model is built (data already in memory, labels one-hot)
to the end of the evaluation that first shows the target ("wall_s"), and the same minus the
evaluation passes ("train_s"); training stops there once the timed epochs are done too.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.common import (  # noqa: E402
    BATCH_SIZE, MODELS, cpu_info, emit, loadavg, peer_arguments, resolve_model, summarize, time_to_accuracy,
)


def main() -> None:
    args = peer_arguments("Keras 3 (TensorFlow backend) running the tutorial's code").parse_args()
    name = resolve_model(args.model)
    spec = MODELS[name]
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as exc:
        emit({"peer": "keras", "model": name, "status": "skipped",
              "reason": f"tensorflow is not installed ({exc}); pip install -e '.[bench]'"})
        return
    # Must precede any op; the env vars TF_NUM_*_THREADS set by run.py say the same.
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras
    from keras import layers

    if keras.backend.backend() != "tensorflow":
        emit({"peer": "keras", "model": name, "status": "error",
              "reason": f"Keras backend is {keras.backend.backend()!r}; set KERAS_BACKEND=tensorflow"})
        sys.exit(1)

    from bench.data import load_mnist

    load_avg_start = loadavg()
    (x_train, y_train), (x_test, y_test) = load_mnist(one_hot=True)
    keras.utils.set_random_seed(args.seed)
    min_epochs = args.warmup + args.epochs
    target = args.target_accuracy

    class Timer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.epochs: list[dict] = []

        def on_epoch_begin(self, epoch, logs=None):
            self._begin = time.perf_counter()
            self._test_begin = self._test_end = None

        def on_test_begin(self, logs=None):
            self._test_begin = time.perf_counter()

        def on_test_end(self, logs=None):
            self._test_end = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            end = time.perf_counter()
            logs = logs or {}
            row = {
                "epoch": epoch + 1,
                "train_s": (self._test_begin or end) - self._begin,
                "val_s": (self._test_end - self._test_begin) if self._test_begin and self._test_end else None,
                "epoch_s": end - self._begin,
                "elapsed_s": end - t0,
                "loss": logs.get("loss"), "accuracy": logs.get("accuracy"),
                "val_loss": logs.get("val_loss"), "val_accuracy": logs.get("val_accuracy"),
            }
            self.epochs.append({k: (float(v) if v is not None and k != "epoch" else v) for k, v in row.items()})
            enough = epoch + 1 >= min_epochs
            if enough and (target is None or (row["val_accuracy"] or 0.0) >= target):
                self.model.stop_training = True

    timer = Timer()
    t0 = time.perf_counter()
    # --- the tutorial's code (Keras 3 spells input_shape=(784,) as an Input layer) --------
    model = keras.Sequential([keras.Input(shape=(784,))])
    for i, units in enumerate(spec["hidden"]):
        model.add(layers.Dense(units, activation="relu"))
        if spec["dropout"]:
            model.add(layers.Dropout(spec["dropout"]))
    model.add(layers.Dense(10, activation="softmax"))
    optimizer = keras.optimizers.RMSprop() if spec["optimizer"] == "rmsprop" else keras.optimizers.Adam()
    model.compile(loss="categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    setup_s = time.perf_counter() - t0
    model.fit(
        x_train, y_train, batch_size=BATCH_SIZE,
        epochs=max(min_epochs, args.max_epochs) if target is not None else min_epochs,
        verbose=0, validation_data=(x_test, y_test), callbacks=[timer],
    )
    # ----------------------------------------------------------------------------------------

    result = {
        "peer": "keras", "model": name, "status": "ok",
        "framework": f"keras {keras.__version__} / tensorflow {tf.__version__}",
        "versions": {"keras": keras.__version__, "tensorflow": tf.__version__},
        "backend": keras.backend.backend(),
        "jit_compile": bool(getattr(model, "jit_compile", False)),
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on for x86 Linux)"),
        "threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                    "inter_op": tf.config.threading.get_inter_op_parallelism_threads()},
        "batch_size": BATCH_SIZE, "train_samples": len(x_train), "val_samples": len(x_test),
        "val_batch_size": BATCH_SIZE,
        "warmup_epochs": args.warmup, "setup_s": setup_s,
        "epochs": timer.epochs,
        "cpu": cpu_info(), "loadavg_start": load_avg_start, "loadavg_end": loadavg(),
    }
    result.update(summarize(timer.epochs, args.warmup, len(x_train), spec["hidden"]))
    if target is not None:
        result["time_to_accuracy"] = time_to_accuracy(timer.epochs, setup_s, target)
    emit(result)


if __name__ == "__main__":
    main()
