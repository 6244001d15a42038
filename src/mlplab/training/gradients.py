"""One batch's loss and gradients: through autograd, or written out by hand for plain MLPs.

`make_gradients` picks; both are callables `(x, y) -> (mean loss, number correct)` (tensors) that
leave the gradients in the parameters' `.grad` (views into the flat buffer the optimizer reads).

For the tutorial's models most of a step is not arithmetic: autograd records and replays a
graph, allocates every intermediate, accumulates gradients by copying, and the loss backward runs
through two generic kernels. The hand-written step computes the same gradients with a fixed list of
operations on buffers allocated once: matrix products write the gradients straight into the flat
gradient buffer the optimizer reads, the softmax-cross-entropy gradient is `softmax - one_hot`,
and the 1/batch scale rides on the output layer's products (their `alpha`).

It applies to stacks of Linear, ReLU and mlplab's dropout ending in a Linear, trained in fp32 with
categorical cross-entropy: the tutorial's models and most MLPs people build. Everything else
(other activations, batch norm, mean squared error, bf16) uses autograd. `supports` is the one
place that decides; `tests/training/test_gradients.py` checks the gradients against autograd.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from mlplab.model.build import MLP
from mlplab.model.dropout import FastDropout
from mlplab.training.device import Runtime
from mlplab.training.losses import LossFn

Gradients = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def make_gradients(model: MLP, loss: str, loss_fn: LossFn, flat_grad: torch.Tensor, runtime: Runtime,
                   batch_size: int) -> Gradients:
    """The hand-written step where it applies (see `supports`), else autograd."""
    if supports(model, loss, runtime.precision) is None:
        return ManualGradients(model, batch_size)
    return AutogradGradients(model, loss_fn, flat_grad, runtime)


class AutogradGradients:
    """Any model, any loss, any precision: forward under the runtime's autocast, then `backward()`."""

    def __init__(self, model: MLP, loss_fn: LossFn, flat_grad: torch.Tensor, runtime: Runtime) -> None:
        self.model, self.loss_fn, self.flat_grad, self.runtime = model, loss_fn, flat_grad, runtime

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with self.runtime.autocast():
            outputs = self.model(x)
        loss = self.loss_fn(outputs.float(), y, "mean")
        self.flat_grad.zero_()  # every parameter's .grad is a view into it
        loss.backward()
        return loss.detach(), (outputs.detach().argmax(dim=1) == y).sum()


def supports(model: MLP, loss: str, precision: str) -> str | None:
    """None when the hand-written step can train this model, else the reason it cannot."""
    if loss != "categorical_crossentropy":
        return f"loss {loss}"
    if precision != "fp32":
        return f"precision {precision}"
    modules = list(model.layers)
    for module in modules:
        if not isinstance(module, (nn.Linear, nn.ReLU, FastDropout)):
            return f"layer {type(module).__name__}"
        if isinstance(module, nn.Linear) and module.bias is None:
            return "a dense layer without bias"
    if not modules or not isinstance(modules[-1], nn.Linear):
        return "the last layer is not dense"
    return None


class _Linear:
    def __init__(self, module: nn.Linear, rows: int, needs_input_grad: bool) -> None:
        self.module = module
        weight = module.weight
        self.output = weight.new_empty(rows, module.out_features)
        self.input_grad = weight.new_empty(rows, module.in_features) if needs_input_grad else None
        self.ones = weight.new_ones(rows)
        self.input: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.input = x
        out = self.output[: len(x)]
        return torch.addmm(self.module.bias, x, self.module.weight.t(), out=out)

    def backward(self, grad: torch.Tensor, scale: float) -> torch.Tensor | None:
        weight, bias = self.module.weight, self.module.bias
        # beta=0: the old gradient is overwritten, never read (no zeroing pass needed).
        torch.addmm(weight.grad, grad.t(), self.input, beta=0, alpha=scale, out=weight.grad)
        torch.addmv(bias.grad, grad.t(), self.ones[: len(grad)], beta=0, alpha=scale, out=bias.grad)
        if self.input_grad is None:
            return None
        return torch.mm(grad, weight, out=self.input_grad[: len(grad)]) if scale == 1.0 else torch.addmm(
            self.input_grad[: len(grad)], grad, weight, beta=0, alpha=scale, out=self.input_grad[: len(grad)]
        )


class _ReLU:
    """In place on the preceding product's output, which it keeps for the backward pass."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.output = x.relu_()
        return self.output

    def backward(self, grad: torch.Tensor, scale: float) -> torch.Tensor:
        return torch.ops.aten.threshold_backward.grad_input(grad, self.output, 0, grad_input=grad)


class _Dropout:
    def __init__(self, module: FastDropout, rows: int, width: int, like: torch.Tensor) -> None:
        self.module = module
        self.mask = like.new_empty(rows, width)
        self.output = like.new_empty(rows, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = self.module.draw_mask(self.mask[: len(x)])
        return torch.mul(x, mask, out=self.output[: len(x)])

    def backward(self, grad: torch.Tensor, scale: float) -> torch.Tensor:
        return grad.mul_(self.mask[: len(grad)])


class ManualGradients:
    """Forward and backward by hand, on buffers allocated once (for up to `batch_size` rows)."""

    def __init__(self, model: MLP, batch_size: int) -> None:
        reason = supports(model, "categorical_crossentropy", "fp32")
        if reason is not None:
            raise ValueError(f"the hand-written step cannot train this model ({reason})")
        like = next(model.parameters())
        self.rows = batch_size
        self.ops: list[_Linear | _ReLU | _Dropout] = []
        width, seen_linear = model.num_features, False
        for module in model.layers:
            if isinstance(module, nn.Linear):
                self.ops.append(_Linear(module, batch_size, needs_input_grad=seen_linear))
                width, seen_linear = module.out_features, True
            elif isinstance(module, nn.ReLU):
                self.ops.append(_ReLU())
            elif module.p > 0:
                self.ops.append(_Dropout(module, batch_size, width, like))
        # Ops before the first product act on the input, whose gradient nobody needs.
        first = next(i for i, op in enumerate(self.ops) if isinstance(op, _Linear))
        self.backward_ops = self.ops[first:][::-1]
        self.one_hot_rows = torch.eye(model.num_classes, device=like.device, dtype=like.dtype)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if len(x) > self.rows:
            raise ValueError(f"a batch of {len(x)} rows, but the buffers hold {self.rows}")
        h = x
        for op in self.ops:
            h = op.forward(h)
        log_probs = torch.log_softmax(h, dim=1)
        loss = torch.nn.functional.nll_loss(log_probs, y)
        correct = (h.argmax(dim=1) == y).sum()
        # d(mean cross-entropy)/d(logits) = (softmax - one_hot) / rows; the division is the alpha below.
        grad = log_probs.exp_().sub_(self.one_hot_rows.index_select(0, y))
        scale = 1.0 / len(x)
        for op in self.backward_ops:
            grad = op.backward(grad, scale)
            if isinstance(op, _Linear):
                scale = 1.0  # the output layer's products have applied it
        return loss, correct
