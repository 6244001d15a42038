"""One batch's loss and gradients: through autograd, or written out by hand for plain MLPs.

`make_gradients` picks; both are callables `(x, y) -> (mean loss, number correct)` (tensors) that
leave the gradients in the parameters' `.grad` (views into the flat buffer the optimizer reads).

For the tutorial's models most of a step is not arithmetic: autograd records and replays a
graph, allocates every intermediate, accumulates gradients by copying, and the loss backward runs
through two generic kernels. The hand-written step computes the same gradients with a fixed list of
operations bound once to buffers allocated once: matrix products write the gradients into the flat
gradient buffer the optimizer reads, the softmax-cross-entropy gradient is `softmax - one_hot`,
and the 1/batch scale rides on the output layer's products (their `alpha`).

Its contracts, each checked:

- `supports` is the one place that decides, and answers `Support(ok, reason)`. Each layer kind says
  whether the step can run it (`LayerKind.fast_step` in `mlplab.model.layers`); beyond that the step
  needs categorical cross-entropy, fp32 or bf16, `training.gradients = "auto"`, torch's private operations
  it calls (looked up when needed, see `private_ops`), and modules of exactly the types it has
  operations for (`nn.Linear`, `nn.ReLU`, mlplab's dropout). Everything else uses autograd.
- The gradients it writes must be views into the flat gradient buffer the optimizer reads: checked
  when a program is built (`GradientContractError`, an internal error, otherwise).
- `tests/training/test_gradients.py` checks the gradients against autograd's.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from mlplab.model.build import MLP
from mlplab.model.dropout import FastDropout
from mlplab.model.layers import Support
from mlplab.training.device import Runtime
from mlplab.training.flat_optim import WeightCopy, mirror
from mlplab.training.losses import LossFn

__all__ = [
    "AutogradGradients", "GradientContractError", "Gradients", "ManualGradients", "Support", "describe",
    "make_gradients", "private_ops", "supports",
]

Gradients = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

# The module types the hand-written step has operations for; any other module means autograd.
FAST_MODULES = (nn.Linear, nn.ReLU, FastDropout)


class GradientContractError(RuntimeError):
    """A bug in mlplab: the hand-written step's preconditions do not hold (never a user's error)."""


@dataclass(frozen=True)
class PrivateOps:
    """torch operations outside its public API that the hand-written step calls."""

    log_softmax: Callable  # torch._log_softmax, for its out= form
    threshold_backward: Callable  # aten.threshold_backward.grad_input: ReLU's backward, in place


def _lookup_private_ops() -> PrivateOps:
    return PrivateOps(
        log_softmax=getattr(torch, "_log_softmax"),
        threshold_backward=torch.ops.aten.threshold_backward.grad_input,
    )


def private_ops() -> PrivateOps | Support:
    """The private torch operations, or the reason they are missing (a torch release may drop them).

    Looked up when a step is chosen, not when mlplab is imported, so that a torch without them
    costs the hand-written step, not `import mlplab.training`.
    """
    try:
        return _lookup_private_ops()
    except (AttributeError, RuntimeError) as exc:
        return Support(False, f"torch {torch.__version__} lacks an operation it needs ({type(exc).__name__}: {exc})")


def make_gradients(model: MLP, loss: str, loss_fn: LossFn, flat_grad: torch.Tensor, runtime: Runtime,
                   batch_size: int, *, mode: str = "auto", label_smoothing: float = 0.0,
                   parameters: torch.Tensor | None = None) -> Gradients:
    """The hand-written step where it applies (see `supports`), else autograd.

    `loss_fn` must already include the label smoothing (see `mlplab.training.losses.make_loss`).
    In bf16 the hand-written step needs `parameters`, the flat fp32 buffer (the master weights),
    to keep its bf16 copy; the step's `weight_copy` must be refreshed after every update.
    """
    runtime = runtime.for_model(model, batch_size)  # fit passes a decided runtime; a caller may not
    if supports(model, loss, runtime.precision, mode=mode).ok:
        weights = None
        if runtime.precision == "bf16":
            if parameters is None:
                raise GradientContractError("internal error: the bf16 hand-written step needs the flat parameters")
            weights = WeightCopy(parameters.detach(), torch.bfloat16)
        return ManualGradients(model, batch_size, flat_grad, label_smoothing, weights=weights)
    return AutogradGradients(model, loss_fn, flat_grad, runtime)


def describe(model: MLP, loss: str, precision: str, *, mode: str) -> str:
    """Which step trains this model, for run records: 'hand-written' or 'autograd (<reason>)'.

    `mode` is the config's `training.gradients`: it must be passed, so that the record cannot say
    hand-written when the config forced autograd.
    """
    support = supports(model, loss, precision, mode=mode)
    return "hand-written" if support.ok else f"autograd ({support.reason})"


class AutogradGradients:
    """Any model, any loss, any precision: forward under the runtime's autocast, then `backward()`."""

    weight_copy = None  # autocast casts the weights itself, every step

    def __init__(self, model: MLP, loss_fn: LossFn, flat_grad: torch.Tensor, runtime: Runtime) -> None:
        self.model, self.loss_fn, self.flat_grad, self.runtime = model, loss_fn, flat_grad, runtime

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with self.runtime.autocast():
            outputs = self.model(x)
        loss = self.loss_fn(outputs.float(), y, "mean")
        self.flat_grad.zero_()  # every parameter's .grad is a view into it
        loss.backward()
        return loss.detach(), (outputs.detach().argmax(dim=1) == y).sum()


def supports(model: MLP, loss: str, precision: str, *, mode: str = "auto") -> Support:
    """Whether the hand-written step can train this model, with the reason."""
    if mode != "auto":
        return Support(False, f"training.gradients = {mode!r}")
    if loss != "categorical_crossentropy":
        return Support(False, f"loss {loss}")
    if precision not in ("fp32", "bf16"):
        return Support(False, f"precision {precision}")
    built = [module for block in model.blocks for module in block.modules]
    if len(built) != len(model.layers) or any(a is not b for a, b in zip(built, model.layers)):
        return Support(False, "the model's modules were changed after it was built")
    for block in model.blocks:
        support = block.placed.layer.fast_step()
        if not support.ok:
            return support
        for module in block.modules:
            if type(module) not in FAST_MODULES:  # exactly: a subclass may compute something else
                return Support(False, f"no hand-written operations for {type(module).__name__}")
    ops = private_ops()
    if isinstance(ops, Support):
        return ops
    return Support(True, "every layer has hand-written operations")


def check_gradient_views(model: MLP, flat_grad: torch.Tensor) -> None:
    """Every parameter's `.grad` is a view into `flat_grad`, and together they cover it.

    The hand-written step writes gradients into the parameters' `.grad` and the optimizer reads
    `flat_grad`: if one were a separate tensor, that layer would silently stop learning.
    """
    if flat_grad is None or flat_grad.dim() != 1 or not flat_grad.is_contiguous():
        raise GradientContractError("internal error: the flat gradient buffer must be one contiguous 1-d tensor")
    start = flat_grad.data_ptr()
    end = start + flat_grad.numel() * flat_grad.element_size()
    covered = 0
    for name, param in model.named_parameters():
        grad = param.grad
        if (grad is None or grad.untyped_storage().data_ptr() != flat_grad.untyped_storage().data_ptr()
                or not grad.is_contiguous() or not start <= grad.data_ptr() < end):
            raise GradientContractError(
                f"internal error: the gradient of {name} is not a view into the flat gradient buffer "
                "(call mlplab.training.optim.flatten_parameters before building the step)")
        covered += grad.numel()
    if covered != flat_grad.numel():
        raise GradientContractError(
            f"internal error: the parameters' gradients cover {covered} of the flat buffer's {flat_grad.numel()} values")


class _Program:
    """One step for a fixed number of rows, as a list of zero-argument calls on buffers allocated once.

    Everything an operation needs (output buffers, views, transposes, scale factors) is bound when
    the program is built, so a step is the C++ calls and nothing else: for the 50-25 model that
    saves ~30 % of a step's Python and view-making compared with computing the arguments each time.
    Only the batch changes between steps; the calls that read it find it in `self.x`.

    With `weights` (a bf16 `WeightCopy`) the products run in bf16, as autocast runs them: the
    batch is cast to bf16 once, every product reads the weights' bf16 copy and writes bf16
    activations (ReLU and dropout stay in bf16); the logits are cast back, so log-softmax, the
    loss and its gradient are fp32. The backward products write their gradients into a bf16 twin
    of the flat gradient buffer, and one cast at the end puts them into the fp32 flat buffer the
    optimizer reads (torch's CPU products cannot write fp32 from bf16 inputs).
    """

    def __init__(self, model: MLP, rows: int, flat_grad: torch.Tensor, ops: PrivateOps,
                 label_smoothing: float = 0.0, weights: WeightCopy | None = None) -> None:
        check_gradient_views(model, flat_grad)
        self.label_smoothing = label_smoothing
        self.ops = ops
        like = next(model.parameters())
        new = partial(torch.empty, device=like.device, dtype=like.dtype)
        low = weights is not None
        new_low = partial(torch.empty, device=like.device, dtype=weights.copy.dtype) if low else new
        self.flat_grad = flat_grad
        self.grad_twin = torch.zeros(flat_grad.shape, dtype=weights.copy.dtype, device=like.device) if low else None
        self.x: torch.Tensor | None = None
        self.forward: list[Callable[[], object]] = []
        records: list[tuple] = []  # what the backward pass needs, op by op
        source: torch.Tensor | None = None  # the activations so far; None stands for the batch `x` (fp32)
        first_product = True
        for module in (module for block in model.blocks for module in block.modules):
            kind = type(module)  # exactly: `supports` admitted only these types
            if kind is nn.Linear:
                if low and source is None:  # the batch, cast for the products (autocast casts it too)
                    x_low = new_low(rows, model.num_features)
                    self.forward.append(lambda: x_low.copy_(self.x))
                    source = x_low
                out = new_low(rows, module.out_features)
                weight, bias = (weights.view(module.weight), weights.view(module.bias)) if low else (module.weight, module.bias)
                weight_t = weight.t()
                self.forward.append(
                    (lambda b=bias, w=weight_t, o=out: torch.addmm(b, self.x, w, out=o)) if source is None
                    else partial(torch.addmm, bias, source, weight_t, out=out))
                records.append(("linear", module, weight, source, first_product))
                source, first_product = out, False
            elif kind is nn.ReLU:
                self.forward.append(source.relu_)  # in place on the product's output, kept for backward
                records.append(("relu", source))
            elif kind is FastDropout:
                if module.p == 0:
                    continue
                width = model.num_features if source is None else source.shape[1]
                mask, out = new(rows, width), new_low(rows, width)
                self.forward.append(partial(module.draw_mask, mask))  # fp32: the masks of an fp32 run
                # bf16 activations are multiplied by the mask cast to bf16, as autocast's dropout does;
                # the fp32 batch by the fp32 mask, written as bf16 (the cast before the first product).
                if low and source is not None:
                    mask_low = new_low(rows, width)
                    self.forward.append(partial(mask_low.copy_, mask))
                    mask = mask_low
                self.forward.append(
                    (lambda m=mask, o=out: torch.mul(self.x, m, out=o)) if source is None
                    else partial(torch.mul, source, mask, out=out))
                records.append(("dropout", mask))
                source = out
            else:
                raise GradientContractError(f"internal error: the hand-written step has no operations for {kind.__name__}")
        if low:  # log-softmax and the loss in fp32
            logits = new(rows, model.num_classes)
            self.forward.append(partial(logits.copy_, source))
            source = logits
        self.logits = source
        self.log_probs = new(rows, model.num_classes)  # becomes the gradient of the loss in place
        self.one_hot = new(rows, model.num_classes)
        self.eye = torch.eye(model.num_classes, device=like.device, dtype=like.dtype)
        if label_smoothing > 0:  # the targets' rows: (1 - ε)·one-hot + ε/K, so the gradient is p - target
            self.eye.mul_(1 - label_smoothing).add_(label_smoothing / model.num_classes)
        self.predicted = torch.empty(rows, dtype=torch.int64, device=like.device)
        self.backward = self._backward(records, rows, new_low)

    def _gradient_of(self, param: torch.Tensor) -> torch.Tensor:
        """Where a product writes `param`'s gradient: its view in the flat buffer, or in the bf16 twin."""
        if self.grad_twin is None:
            return param.grad
        return mirror(self.flat_grad, self.grad_twin, param.grad)

    def _backward(self, records: list[tuple], rows: int, new) -> list[Callable[[], object]]:
        calls: list[Callable[[], object]] = []
        grad = self.log_probs
        scale = 1.0 / rows  # d(mean loss)/d(logits) = (softmax - one_hot) / rows: the output layer's alpha
        if self.grad_twin is not None:  # the products take bf16: scale and cast the fp32 gradient at once,
            grad = new(rows, self.log_probs.shape[1])  # rounding (softmax - one_hot) / rows as autograd does
            calls.append(partial(torch.mul, self.log_probs, scale, out=grad))
            scale = 1.0
        for kind, *args in reversed(records):  # ends at the first product: what comes before needs no gradient
            if kind == "linear":
                module, weight, source, first_product = args
                weight_grad, bias_grad = self._gradient_of(module.weight), self._gradient_of(module.bias)
                grad_t = grad.t()
                # beta=0: the previous gradient is overwritten, never read (no zeroing pass).
                calls.append(
                    (lambda w=weight_grad, g=grad_t, a=scale: torch.addmm(w, g, self.x, beta=0, alpha=a, out=w))
                    if source is None
                    else partial(torch.addmm, weight_grad, grad_t, source, beta=0, alpha=scale, out=weight_grad))
                calls.append(partial(torch.addmv, bias_grad, grad_t, new(rows).fill_(1.0), beta=0, alpha=scale,
                                     out=bias_grad))
                if first_product:
                    break  # nobody needs the input's gradient
                input_grad = new(rows, module.in_features)
                calls.append(partial(torch.addmm, input_grad, grad, weight, beta=0, alpha=scale, out=input_grad))
                grad, scale = input_grad, 1.0
            elif kind == "relu":
                calls.append(partial(self.ops.threshold_backward, grad, args[0], 0, grad_input=grad))
            else:
                calls.append(partial(grad.mul_, args[0]))
        if self.grad_twin is not None:  # every gradient at once into the fp32 buffer the optimizer reads
            calls.append(partial(self.flat_grad.copy_, self.grad_twin))
        return calls

    def run(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.x = x
        for call in self.forward:
            call()
        log_probs = self.ops.log_softmax(self.logits, 1, False, out=self.log_probs)
        loss = F.nll_loss(log_probs, y)
        if self.label_smoothing > 0:  # (1 - ε)·NLL + ε·mean over classes of -log p (torch's definition)
            loss = loss.mul(1 - self.label_smoothing).sub_(log_probs.mean(), alpha=self.label_smoothing)
        correct = torch.eq(torch.argmax(self.logits, 1, out=self.predicted), y).sum()
        log_probs.exp_().sub_(torch.index_select(self.eye, 0, y, out=self.one_hot))
        for call in self.backward:
            call()
        self.x = None
        return loss, correct


class ManualGradients:
    """Forward and backward by hand, on buffers allocated once (for up to `batch_size` rows).

    With `weights`, a bf16 `WeightCopy` of the flat parameters, the products run in bf16 (see
    `_Program`); whoever updates the parameters must then call `weight_copy.refresh()` after each
    update (`TrainingState.apply_update` does), or the products would read stale weights.
    """

    def __init__(self, model: MLP, batch_size: int, flat_grad: torch.Tensor, label_smoothing: float = 0.0,
                 *, weights: WeightCopy | None = None) -> None:
        support = supports(model, "categorical_crossentropy", "fp32" if weights is None else "bf16")
        if not support.ok:
            raise ValueError(f"the hand-written step cannot train this model ({support.reason})")
        ops = private_ops()
        if not isinstance(ops, PrivateOps):  # `supports` found them a moment ago
            raise GradientContractError(f"internal error: {ops.reason}")
        check_gradient_views(model, flat_grad)  # early; each program checks again when it is built
        self.model, self.rows, self.flat_grad, self.ops = model, batch_size, flat_grad, ops
        self.label_smoothing = label_smoothing
        self.weight_copy = weights
        self._programs: dict[int, _Program] = {}  # by batch rows: the full batches and the last one

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows = len(x)
        program = self._programs.get(rows)
        if program is None:
            if rows > self.rows:
                raise ValueError(f"a batch of {rows} rows, but the buffers hold {self.rows}")
            program = self._programs[rows] = _Program(self.model, rows, self.flat_grad, self.ops,
                                                          self.label_smoothing, self.weight_copy)
        return program.run(x, y)
