"""RMSprop, Adam and SGD for one flat parameter tensor, on torch's fused kernels.

`flatten_parameters` puts a model's weights into one buffer, so an update is one kernel call.
Adam calls the kernel `torch.optim.Adam(fused=True)` runs, directly, skipping torch.optim's
Python bookkeeping (about 0.2 ms per step, a fifth of a 128-64 step here).

RMSprop is the same kernel with β1 = 0 and its step counter parked at 10^9, where 1 − β1^t and
1 − β2^t round to exactly 1, so both bias corrections vanish and Adam's update
θ ← θ − lr·m/(√v + ε) with m = g and v ← ρv + (1−ρ)g² is Keras's (and torch's) RMSprop.
Measured on this 2-core CPU: 15 µs per step for the 50-25 model's 40,785 parameters against
77 µs for the same update written as five torch ops, and 34 against 180 µs for 109,386. The
results agree with torch.optim.RMSprop to the last bit or two (tested): the kernel rounds in a
different order. (Written as torch ops, the update also met a square root over exact zeros, the
moments of MNIST's blank border pixels, which this AMD CPU computes 5× slower; the vectorised
kernel does not.)
"""

from __future__ import annotations

from collections import defaultdict

import torch


class FlatOptimizer:
    """An optimizer of exactly one (flattened) parameter tensor, with torch.optim's interface.

    `param_groups`, `state`, `state_dict()`, `load_state_dict()`, `step()` and `zero_grad()` work
    as torch.optim's do, and the state dicts have its format. It does not subclass
    torch.optim.Optimizer, whose constructor imports torch._dynamo: 1.7 s on this machine, more
    than a whole training run of the 50-25 model. `update()` is the update itself.
    """

    STEP_DEVICE: str | None = "cpu"  # where a loaded step counter goes (None: the parameters' device)

    def __init__(self, params, defaults: dict) -> None:
        params = list(params)
        if len(params) != 1 or not torch.is_tensor(params[0]):
            raise ValueError(f"{type(self).__name__} optimizes exactly one (flattened) parameter tensor")
        self.defaults = dict(defaults)
        self.param_groups = [{"params": params, **defaults}]
        self.state: defaultdict[torch.Tensor, dict[str, torch.Tensor]] = defaultdict(dict)

    @property
    def param(self) -> torch.Tensor:
        return self.param_groups[0]["params"][0]

    def step(self, closure=None):  # noqa: D102 - torch.optim's interface
        loss = closure() if closure is not None else None
        self.update()
        return loss

    @torch.no_grad()
    def update(self) -> None:
        key, slots = self._prepare()
        self._apply(key, [slots])

    def _prepare(self) -> tuple[tuple, tuple[torch.Tensor, ...]]:
        """Ready this step (state made, counter counted): (the kernel's arguments, this tensor's slots).

        Optimizers whose keys are equal run as one kernel call over all their slots (`update_together`).
        """
        raise NotImplementedError

    @staticmethod
    def _apply(key: tuple, slots: list[tuple[torch.Tensor, ...]]) -> None:
        raise NotImplementedError

    def zero_grad(self, set_to_none: bool = False) -> None:
        if self.param.grad is not None:
            self.param.grad.zero_()

    def state_dict(self) -> dict:
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        state = self.state.get(self.param)
        return {"state": {0: dict(state)} if state else {}, "param_groups": [{**group, "params": [0]}]}

    def load_state_dict(self, state_dict: dict) -> None:
        groups = state_dict["param_groups"]
        if len(groups) != 1 or list(groups[0].get("params", ())) != [0]:
            raise ValueError("the saved optimizer state is not for one flat parameter tensor")
        param = self.param
        saved = state_dict["state"].get(0, state_dict["state"].get("0", {}))
        state = {}
        for name, value in saved.items():
            value = torch.as_tensor(value)
            if name == "step":  # kept as torch.optim keeps it: a float32 scalar, where update() makes it
                state[name] = value.to(self.STEP_DEVICE or param.device, torch.float32).clone()
            elif value.shape != param.shape:
                raise ValueError(f"optimizer slot {name!r} has shape {tuple(value.shape)}, the parameters {tuple(param.shape)}")
            else:
                state[name] = value.to(param.device, param.dtype).clone()
        self.state = defaultdict(dict, {param: state} if state else {})
        self.param_groups[0].update({k: v for k, v in groups[0].items() if k != "params"})


class FlatRMSprop(FlatOptimizer):
    STEP_DEVICE = "cpu"  # only counted: the kernel reads the parked step, which lives on the device
    # At t = 10^9, β^t < 2^-53 for every β ≤ 0.99999, so 1 − β^t is exactly 1 (in float64 too).
    PARKED_STEP = 1e9
    MAX_RHO = 0.99999

    def __init__(self, params, lr: float = 1e-3, rho: float = 0.9, eps: float = 1e-7, weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "rho": rho, "eps": eps, "weight_decay": weight_decay})
        if not 0.0 <= rho <= self.MAX_RHO:
            raise ValueError(f"rho must be in [0, {self.MAX_RHO}] for FlatRMSprop, got {rho}")
        # Adam's first moment: with β1 = 0 it is each step's gradient, so it is scratch, not state.
        self._momentum: torch.Tensor | None = None
        self._parked_step: torch.Tensor | None = None

    def _prepare(self) -> tuple[tuple, tuple[torch.Tensor, ...]]:
        group = self.param_groups[0]
        param = self.param
        state = self.state[param]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float32)
            state["square_avg"] = torch.zeros_like(param)
        if self._momentum is None:
            self._momentum = torch.zeros_like(param)
            self._parked_step = torch.full((), self.PARKED_STEP, dtype=torch.float32, device=param.device)
        state["step"] += 1
        key = (group["lr"], group["rho"], group["weight_decay"], group["eps"])
        return key, (param, param.grad, self._momentum, state["square_avg"], self._parked_step)

    @staticmethod
    def _apply(key: tuple, slots: list[tuple[torch.Tensor, ...]]) -> None:
        lr, rho, weight_decay, eps = key
        params, grads, momenta, squares, steps = (list(column) for column in zip(*slots))
        torch._fused_adam_(
            params, grads, momenta, squares, [], steps,
            lr=lr, beta1=0.0, beta2=rho, weight_decay=weight_decay, eps=eps, amsgrad=False, maximize=False,
        )


class FlatAdam(FlatOptimizer):
    """Adam (or AdamW with `decoupled=True`) on one flat tensor, calling torch's fused kernel directly.

    The kernel is the one `torch.optim.Adam(fused=True)` runs (so are the results); calling it
    directly skips about 0.2 ms of Python bookkeeping per step, which is a fifth of a step for the
    128-64 model.
    """

    STEP_DEVICE = None  # the fused kernel reads the step: on the parameters' device, as torch.optim loads it

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-7,
                 weight_decay: float = 0.0, decoupled: bool = False) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})
        self._kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_

    def _prepare(self) -> tuple[tuple, tuple[torch.Tensor, ...]]:
        group = self.param_groups[0]
        param = self.param
        state = self.state[param]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float32, device=param.device)
            state["exp_avg"] = torch.zeros_like(param)
            state["exp_avg_sq"] = torch.zeros_like(param)
        state["step"] += 1
        beta1, beta2 = group["betas"]
        key = (self._kernel, group["lr"], beta1, beta2, group["weight_decay"], group["eps"])
        return key, (param, param.grad, state["exp_avg"], state["exp_avg_sq"], state["step"])

    @staticmethod
    def _apply(key: tuple, slots: list[tuple[torch.Tensor, ...]]) -> None:
        kernel, lr, beta1, beta2, weight_decay, eps = key
        params, grads, exp_avgs, exp_avg_sqs, steps = (list(column) for column in zip(*slots))
        kernel(params, grads, exp_avgs, exp_avg_sqs, [], steps,
               lr=lr, beta1=beta1, beta2=beta2, weight_decay=weight_decay, eps=eps, amsgrad=False, maximize=False)


class FlatSGD(FlatOptimizer):
    """SGD with momentum and Nesterov on one flat tensor, calling the kernel `torch.optim.SGD(fused=True)` runs."""

    def __init__(self, params, lr: float = 1e-2, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay})
        if nesterov and momentum <= 0:
            raise ValueError("nesterov needs a positive momentum")

    def _prepare(self) -> tuple[tuple, tuple[torch.Tensor, ...]]:
        group = self.param_groups[0]
        param = self.param
        state = self.state[param]
        momentum = group["momentum"]
        first_step = momentum != 0 and "momentum_buffer" not in state
        if first_step:  # the kernel starts the buffer from this step's gradient
            state["momentum_buffer"] = torch.empty_like(param)
        key = (group["lr"], momentum, group["nesterov"], group["weight_decay"], first_step)
        return key, (param, param.grad, *([state["momentum_buffer"]] if momentum != 0 else []))

    @staticmethod
    def _apply(key: tuple, slots: list[tuple[torch.Tensor, ...]]) -> None:
        lr, momentum, nesterov, weight_decay, first_step = key
        torch._fused_sgd_(
            [s[0] for s in slots], [s[1] for s in slots], [s[2] for s in slots] if momentum != 0 else [],
            weight_decay=weight_decay, momentum=momentum, lr=lr, dampening=0.0,
            nesterov=nesterov, maximize=False, is_first_step=first_step,
        )


@torch.no_grad()
def update_together(optimizers: "list[FlatOptimizer]") -> None:
    """`update()` every optimizer, with one kernel call per group of equal class and hyper-parameters.

    torch's fused kernels take lists of tensors and treat each on its own, so a packed run's
    members (each its own optimizer, state and step) are updated exactly as their own `update()`
    would, bit for bit, at the cost of one call instead of one per member.
    """
    groups: dict[tuple, list[tuple[torch.Tensor, ...]]] = {}
    for optimizer in optimizers:
        key, slots = optimizer._prepare()
        groups.setdefault((type(optimizer), key), []).append(slots)
    for (cls, key), slots in groups.items():
        cls._apply(key, slots)


def fused_adam_available() -> bool:
    return hasattr(torch, "_fused_adam_") and hasattr(torch, "_fused_adamw_")


def fused_sgd_available() -> bool:
    return hasattr(torch, "_fused_sgd_")


class WeightCopy:
    """A low-precision (bf16) copy of the flat fp32 parameters, for the matrix products.

    The optimizer updates the fp32 master weights; `refresh` casts all of them into this copy in
    one pass over the flat buffer, as the last part of every optimizer step (`TrainingState.apply_update`)
    and whenever the master weights are loaded (a resumed run). torch's fused Adam kernel has no
    form that also writes a bf16 copy, so the cast cannot ride inside the update itself; one
    vectorised pass over the flat buffer is the next best thing. `view(param)` is a parameter's
    slice of the copy, shaped like it.
    """

    def __init__(self, master: torch.Tensor, dtype: torch.dtype = torch.bfloat16) -> None:
        if master.dim() != 1 or not master.is_contiguous():
            raise ValueError("WeightCopy needs the one flat, contiguous parameter buffer")
        self.master = master
        self.copy = torch.empty(master.shape, dtype=dtype, device=master.device)
        self.refresh()

    @torch.no_grad()
    def refresh(self) -> None:
        self.copy.copy_(self.master)

    def view(self, tensor: torch.Tensor) -> torch.Tensor:
        """The slice of the copy that mirrors `tensor`, a view into the master buffer."""
        return mirror(self.master, self.copy, tensor)


def mirror(flat: torch.Tensor, twin: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
    """The part of `twin` (a flat buffer shaped like `flat`) at `tensor`'s place in `flat`, shaped like `tensor`."""
    offset, rest = divmod(tensor.data_ptr() - flat.data_ptr(), flat.element_size())
    if (rest or tensor.untyped_storage().data_ptr() != flat.untyped_storage().data_ptr()
            or not tensor.is_contiguous() or not 0 <= offset <= flat.numel() - tensor.numel()):
        raise ValueError("the tensor is not a contiguous view into the flat buffer")
    return twin[offset : offset + tensor.numel()].view(tensor.shape)
