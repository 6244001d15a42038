"""One batch's loss and gradients: through autograd, or written out by hand for plain MLPs.

`make_gradients` picks; both are callables `(x, y) -> (mean loss, number correct)` (tensors) that
leave the gradients in the parameters' `.grad` (views into the flat buffer the optimizer reads).

For the tutorial's models most of a step is not arithmetic: autograd records and replays a
graph, allocates every intermediate, accumulates gradients by copying, and the loss backward runs
through two generic kernels. The hand-written step computes the same gradients with a fixed list of
operations bound once to buffers allocated once: matrix products write the gradients into the flat
gradient buffer the optimizer reads, the softmax-cross-entropy gradient is `softmax - one_hot`,
and the 1/batch scale rides on the output layer's products (their `alpha`).

It applies to stacks of Linear, ReLU and mlplab's dropout ending in a Linear, trained in fp32 with
categorical cross-entropy: the tutorial's models and most MLPs people build. Everything else
(other activations, batch norm, mean squared error, bf16) uses autograd. `supports` is the one
place that decides; `tests/training/test_gradients.py` checks the gradients against autograd.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import torch
import torch.nn.functional as F
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


def describe(model: MLP, loss: str, precision: str) -> str:
    """Which step trains this model, for run records: 'hand-written' or 'autograd (<reason>)'."""
    reason = supports(model, loss, precision)
    return "hand-written" if reason is None else f"autograd ({reason})"


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


class _Program:
    """One step for a fixed number of rows, as a list of zero-argument calls on buffers allocated once.

    Everything an operation needs (output buffers, views, transposes, scale factors) is bound when
    the program is built, so a step is the C++ calls and nothing else: for the 50-25 model that
    saves ~30 % of a step's Python and view-making compared with computing the arguments each time.
    Only the batch changes between steps; the calls that read it find it in `self.x`.
    """

    def __init__(self, model: MLP, rows: int) -> None:
        like = next(model.parameters())
        new = partial(torch.empty, device=like.device, dtype=like.dtype)
        self.x: torch.Tensor | None = None
        self.forward: list[Callable[[], object]] = []
        records: list[tuple] = []  # what the backward pass needs, op by op
        source: torch.Tensor | None = None  # the activations so far; None stands for the batch `x`
        for module in model.layers:
            if isinstance(module, nn.Linear):
                out = new(rows, module.out_features)
                weight_t, bias = module.weight.t(), module.bias
                self.forward.append(
                    (lambda b=bias, w=weight_t, o=out: torch.addmm(b, self.x, w, out=o)) if source is None
                    else partial(torch.addmm, bias, source, weight_t, out=out))
                records.append(("linear", module, source))
                source = out
            elif isinstance(module, nn.ReLU):
                self.forward.append(source.relu_)  # in place on the product's output, kept for backward
                records.append(("relu", source))
            elif module.p > 0:  # dropout
                width = model.num_features if source is None else source.shape[1]
                mask, out = new(rows, width), new(rows, width)
                self.forward.append(partial(module.draw_mask, mask))
                self.forward.append(
                    (lambda m=mask, o=out: torch.mul(self.x, m, out=o)) if source is None
                    else partial(torch.mul, source, mask, out=out))
                records.append(("dropout", mask))
                source = out
        self.logits = source
        self.log_probs = new(rows, model.num_classes)  # becomes the gradient of the loss in place
        self.one_hot = new(rows, model.num_classes)
        self.eye = torch.eye(model.num_classes, device=like.device, dtype=like.dtype)
        self.predicted = torch.empty(rows, dtype=torch.int64, device=like.device)
        self.backward = self._backward(records, rows, new)

    def _backward(self, records: list[tuple], rows: int, new) -> list[Callable[[], object]]:
        calls: list[Callable[[], object]] = []
        grad = self.log_probs
        scale = 1.0 / rows  # d(mean loss)/d(logits) = (softmax - one_hot) / rows: the output layer's alpha
        first = next(i for i, record in enumerate(records) if record[0] == "linear")
        for kind, *args in reversed(records[first:]):  # ops before the first product need no gradient
            if kind == "linear":
                module, source = args
                weight, bias = module.weight, module.bias
                grad_t = grad.t()
                # beta=0: the previous gradient is overwritten, never read (no zeroing pass).
                calls.append(
                    (lambda w=weight.grad, g=grad_t, a=scale: torch.addmm(w, g, self.x, beta=0, alpha=a, out=w))
                    if source is None
                    else partial(torch.addmm, weight.grad, grad_t, source, beta=0, alpha=scale, out=weight.grad))
                calls.append(partial(torch.addmv, bias.grad, grad_t, new(rows).fill_(1.0), beta=0, alpha=scale,
                                     out=bias.grad))
                if source is None:
                    break  # the first product: nobody needs the input's gradient
                input_grad = new(rows, module.in_features)
                calls.append(partial(torch.addmm, input_grad, grad, weight, beta=0, alpha=scale, out=input_grad))
                grad, scale = input_grad, 1.0
            elif kind == "relu":
                calls.append(partial(_threshold_backward, grad, args[0], 0, grad_input=grad))
            else:
                calls.append(partial(grad.mul_, args[0]))
        return calls

    def run(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.x = x
        for call in self.forward:
            call()
        log_probs = torch._log_softmax(self.logits, 1, False, out=self.log_probs)
        loss = F.nll_loss(log_probs, y)
        correct = torch.eq(torch.argmax(self.logits, 1, out=self.predicted), y).sum()
        log_probs.exp_().sub_(torch.index_select(self.eye, 0, y, out=self.one_hot))
        for call in self.backward:
            call()
        self.x = None
        return loss, correct


_threshold_backward = torch.ops.aten.threshold_backward.grad_input


class ManualGradients:
    """Forward and backward by hand, on buffers allocated once (for up to `batch_size` rows)."""

    def __init__(self, model: MLP, batch_size: int) -> None:
        reason = supports(model, "categorical_crossentropy", "fp32")
        if reason is not None:
            raise ValueError(f"the hand-written step cannot train this model ({reason})")
        self.model = model
        self.rows = batch_size
        self._programs: dict[int, _Program] = {}  # by batch rows: the full batches and the last one

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows = len(x)
        program = self._programs.get(rows)
        if program is None:
            if rows > self.rows:
                raise ValueError(f"a batch of {rows} rows, but the buffers hold {self.rows}")
            program = self._programs[rows] = _Program(self.model, rows)
        return program.run(x, y)
