"""Peer: a plain PyTorch loop with TensorDataset + DataLoader, as most tutorials write it.

    python -m bench.peers.torch_dataloader_peer --model tutorial-50-25 --epochs 5 [--target-accuracy 0.98]

Prints one JSON object on stdout (the last line).

The model is an nn.Sequential of the same layers ending in logits, trained with
nn.CrossEntropyLoss (= softmax + categorical cross-entropy), torch's default initialisation, and
the optimizers set to Keras's defaults: RMSprop(lr=1e-3, alpha=0.9, eps=1e-7),
Adam(lr=1e-3, eps=1e-7), torch's default (for-each) implementations.
DataLoader(batch_size=128, shuffle=True), num_workers=0. The loop reads loss and accuracy with
`.item()` each step, as such loops usually do (on a CPU that costs almost nothing).
Validation: the 10,000 test images through DataLoader(batch_size=1000) under torch.no_grad()
in eval mode (the pytorch/examples MNIST convention).
What is timed: "train_s" the training pass, "val_s" the validation pass, "epoch_s" both.
Time to accuracy as in keras_peer: from just before the model is built.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.common import (  # noqa: E402
    BATCH_SIZE, MODELS, cpu_info, emit, loadavg, peer_arguments, resolve_model, summarize, time_to_accuracy,
)

VAL_BATCH_SIZE = 1000


def build(hidden: list[int], dropout: float, num_features: int = 784, num_classes: int = 10):
    from torch import nn

    modules: list = []
    width = num_features
    for units in hidden:
        modules += [nn.Linear(width, units), nn.ReLU()]
        if dropout:
            modules.append(nn.Dropout(dropout))
        width = units
    modules.append(nn.Linear(width, num_classes))
    return nn.Sequential(*modules)


def make_optimizer(name: str, params):
    import torch

    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=1e-3, alpha=0.9, eps=1e-7)
    return torch.optim.Adam(params, lr=1e-3, eps=1e-7)


def train_epoch(model, loader, optimizer, loss_fn) -> tuple[float, float]:
    """One pass; returns (mean loss, accuracy) over the samples seen."""
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    for xb, yb in loader:
        optimizer.zero_grad()
        out = model(xb)
        loss = loss_fn(out, yb)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(yb)
        correct += (out.argmax(dim=1) == yb).sum().item()
        seen += len(yb)
    return total_loss / seen, correct / seen


def validate(model, loader, loss_fn) -> tuple[float, float]:
    import torch

    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    with torch.no_grad():
        for xb, yb in loader:
            out = model(xb)
            total_loss += loss_fn(out, yb).item() * len(yb)
            correct += (out.argmax(dim=1) == yb).sum().item()
            seen += len(yb)
    return total_loss / seen, correct / seen


def main() -> None:
    args = peer_arguments("plain PyTorch DataLoader loop").parse_args()
    name = resolve_model(args.model)
    spec = MODELS[name]
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    torch.set_num_threads(args.threads)
    from bench.data import load_mnist

    load_avg_start = loadavg()
    (x_train, y_train), (x_test, y_test) = load_mnist()
    torch.manual_seed(args.seed)
    min_epochs = args.warmup + args.epochs
    max_epochs = max(min_epochs, args.max_epochs) if args.target_accuracy is not None else min_epochs

    t0 = time.perf_counter()
    model = build(spec["hidden"], spec["dropout"])
    optimizer = make_optimizer(spec["optimizer"], model.parameters())
    loss_fn = nn.CrossEntropyLoss()
    train_loader = DataLoader(TensorDataset(torch.from_numpy(x_train), torch.from_numpy(y_train)),
                              batch_size=BATCH_SIZE, shuffle=True)
    test_loader = DataLoader(TensorDataset(torch.from_numpy(x_test), torch.from_numpy(y_test)),
                             batch_size=VAL_BATCH_SIZE)
    setup_s = time.perf_counter() - t0

    epochs: list[dict] = []
    for epoch in range(max_epochs):
        begin = time.perf_counter()
        loss, acc = train_epoch(model, train_loader, optimizer, loss_fn)
        mid = time.perf_counter()
        val_loss, val_acc = validate(model, test_loader, loss_fn)
        end = time.perf_counter()
        epochs.append({"epoch": epoch + 1, "train_s": mid - begin, "val_s": end - mid, "epoch_s": end - begin,
                       "elapsed_s": end - t0, "loss": loss, "accuracy": acc,
                       "val_loss": val_loss, "val_accuracy": val_acc})
        if epoch + 1 >= min_epochs and (args.target_accuracy is None or val_acc >= args.target_accuracy):
            break

    result = {
        "peer": "torch_dataloader", "model": name, "status": "ok",
        "framework": f"torch {torch.__version__} (DataLoader loop)",
        "versions": {"torch": torch.__version__},
        "threads": {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()},
        "batch_size": BATCH_SIZE, "train_samples": len(x_train), "val_samples": len(x_test),
        "val_batch_size": VAL_BATCH_SIZE,
        "warmup_epochs": args.warmup, "setup_s": setup_s,
        "epochs": epochs,
        "cpu": cpu_info(), "loadavg_start": load_avg_start, "loadavg_end": loadavg(),
    }
    result.update(summarize(epochs, args.warmup, len(x_train), spec["hidden"]))
    if args.target_accuracy is not None:
        result["time_to_accuracy"] = time_to_accuracy(epochs, setup_s, args.target_accuracy)
    emit(result)


if __name__ == "__main__":
    main()
