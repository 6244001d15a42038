"""Packed training: several models with the same layer shapes trained together, in one pass.

For the tutorial's small models a training step is mostly fixed per-call overhead, so eight seeds
trained one after another pay it eight times. A pack stacks the members' weights along a model
axis and runs the hand-written step (`mlplab.training.gradients`) with batched matrix products
(`torch.baddbmm`): one call per layer for the whole pack instead of one per model.

Each member follows its solo trajectory; what makes it so:

- its weights, gradients and optimizer are its own: row `k` of the pack's (M, P) weight and
  gradient tensors is exactly the flat buffer `flatten_parameters` gives a solo run (the model's
  parameters are views into it), and the member's own optimizer (same class, same
  hyper-parameters, so learning rate, betas, rho, momentum and weight decay are per model)
  updates it with the same fused kernel, called once for all members whose hyper-parameters are
  equal at that step (`flat_optim.update_together`: the kernel takes lists, bit for bit the same);
- its shuffling comes from its own generator, seeded as `fit` seeds it, and its dropout masks
  from its own dropout layers' generators, drawn in the same order and shape as a solo run
  draws them (so on the CPU they are the solo masks, bit for bit);
- its learning-rate schedule, early stopping, NaN guard, checkpoint and history are the solo
  run's callbacks on a `TrainingState` of its own.

The products sum in a different order than the solo step's, so the weights agree with a solo
run's to float tolerance (`tests/training/test_pack.py`), not bit for bit; packed runs are
bit-reproducible among themselves. When a member stops (early stopping, its last epoch, a NaN),
it finishes as a solo run would (its callbacks put its best weights back) and the pack is
rebuilt without it, so it costs no more time.

`pack_support` says whether members can share a pack (and why not); `fit_pack` trains them,
one after another with `fit` when they cannot.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mlplab.model.build import MLP
from mlplab.model.dropout import FastDropout
from mlplab.model.layers import Support
from mlplab.training.callbacks import Callback, RunningMetrics
from mlplab.training.config import TrainingConfig
from mlplab.training.device import Runtime, flush_denormals, resolve_runtime
from mlplab.training.flat_optim import FlatOptimizer
from mlplab.training.gradients import PrivateOps, private_ops, supports
from mlplab.training.history import History
from mlplab.training.interrupt import stop_on_signals
from mlplab.training.loop import PROBE_ROWS, ArrayPair, checked_data, end_training, evaluate, fit
from mlplab.training.optim import flatten_parameters, learning_rate_at, make_optimizer, set_learning_rate
from mlplab.training.state import TrainingState, apply_updates

__all__ = ["PackMember", "fit_pack", "pack_support"]


@dataclass
class PackMember:
    """One model of a pack, with everything `fit` would be given for it."""

    model: MLP
    config: TrainingConfig
    train: ArrayPair
    validation: ArrayPair | None = None
    callbacks: Sequence[Callback] = ()
    # The training set is these rows of `train`, in this order (None: all of it). Members that
    # hold different rows of the same arrays (each seed its own validation split) then share one
    # copy of the features instead of a copy each.
    train_rows: Any = None

    @property
    def train_size(self) -> int:
        return len(self.train_rows) if self.train_rows is not None else len(self.train[0])


def _layout(model: MLP) -> tuple:
    """What must be equal for models to share a pack: module kinds and shapes, dropout on or off."""
    shape: list[tuple] = [("input", model.num_features)]
    for module in model.layers:
        if isinstance(module, nn.Linear):
            shape.append(("linear", module.in_features, module.out_features))
        elif isinstance(module, FastDropout):
            shape.append(("dropout", module.p > 0))
        else:
            shape.append((type(module).__name__,))
    return tuple(shape)


def _solo_reason(member: PackMember, precision: str) -> str | None:
    """Why this member cannot be trained in a pack at all (None: it can)."""
    config = member.config
    if precision != "fp32":  # the packed step multiplies in float32 only
        return f"precision {precision}"
    support = supports(member.model, config.loss, precision, mode=config.gradients)
    if not support.ok:
        return f"the hand-written step cannot train it ({support.reason})"
    if config.label_smoothing > 0:
        return "label smoothing"
    if config.augment is not None and config.augment.active:
        return "augmentation"
    if config.ema is not None:
        return "the weight average (ema)"
    probe = make_optimizer([nn.Parameter(torch.zeros(1))], config.optimizer)
    if not isinstance(probe, FlatOptimizer):
        return f"optimizer {config.optimizer.name} with these settings has no flat kernel"
    return None


def _decided(runtime: Runtime, members: Sequence[PackMember]) -> Runtime:
    """The runtime with "auto" precision decided, as `fit` decides it (the members share shapes, so the first's do)."""
    return runtime.for_model(members[0].model, members[0].config.batch_size) if members else runtime


def pack_support(members: Sequence[PackMember], runtime: Runtime | None = None) -> Support:
    """Whether these members can be trained as one pack, and if not, why (one line)."""
    if len(members) < 2:
        return Support(False, "a pack needs at least two models")
    precision = _decided(runtime, members).precision if runtime is not None else "fp32"
    for index, member in enumerate(members):
        reason = _solo_reason(member, precision)
        if reason is not None:
            return Support(False, f"model {index + 1} is trained alone: {reason}")
    first = members[0]
    for index, member in enumerate(members[1:], start=2):
        if _layout(member.model) != _layout(first.model):
            return Support(False, f"model {index} has other layer shapes than model 1")
        if member.config.batch_size != first.config.batch_size:
            return Support(False, f"model {index} has another batch size than model 1")
        if member.train_size != first.train_size:
            return Support(False, f"model {index} has another number of training images than model 1")
    return Support(True, f"{len(members)} models with the same layer shapes")


def fit_pack(members: Sequence[PackMember], *, runtime: Runtime | None = None) -> list[History]:
    """Train every member as `fit` would, together where `pack_support` allows; one history each.

    Members that cannot share a pack are trained one after another with `fit`, with the same
    results; `pack_support` says why. Interrupted (Ctrl-C, SIGTERM), every member stops after
    the current step with its history marked, as `fit` stops.
    """
    runtime = _decided(runtime or resolve_runtime(), members)
    if not pack_support(members, runtime).ok:
        return [fit(m.model, m.config, _own_rows(m), m.validation, callbacks=m.callbacks, runtime=runtime)
                for m in members]
    return _Pack(members, runtime).train()


def _own_rows(member: PackMember) -> ArrayPair:
    """The member's training set as `fit` takes it: its `train_rows` of `train`, in their order."""
    rows = _checked_rows(member)
    return member.train if rows is None else (member.train[0][rows], member.train[1][rows])


def _checked_rows(member: PackMember) -> np.ndarray | None:
    """`train_rows` as int64 indices, refused unless each names a row of `train` (None: every row)."""
    if member.train_rows is None:
        return None
    rows, n = np.asarray(member.train_rows, dtype=np.int64), len(member.train[0])
    if rows.ndim != 1 or len(rows) == 0 or int(rows.min()) < 0 or int(rows.max()) >= n:
        raise ValueError(f"train_rows must be a non-empty list of row indices below {n}")
    return rows


@dataclass
class _Seat:
    """A member being trained: its state (as `fit` keeps it), data and place in the pack."""

    member: PackMember
    state: TrainingState
    x: torch.Tensor
    y: torch.Tensor
    rows: torch.Tensor  # its training rows: of `x` at first, then of the pack's features
    validation: tuple[torch.Tensor, torch.Tensor] | None
    callbacks: list[Callback]
    views: list[tuple[torch.Tensor, int]]  # each model parameter and its offset in the flat buffer
    running: RunningMetrics = field(init=False)

    torch_state: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.torch_state = torch.Generator().manual_seed(self.seed).get_state()

    @property
    def seed(self) -> int:
        return self.member.config.seed

    def seed_torch(self) -> None:
        """torch's CPU generator as `fit` leaves it (seeded, never drawn from on the CPU), so that the
        member's callbacks (its checkpoint records the generator) see what they would in a solo run.
        `torch.manual_seed` would do, but also seeds every accelerator: 5 ms a call here."""
        torch.set_rng_state(self.torch_state)

    @property
    def done(self) -> bool:
        state = self.state
        return state.stop_training or state.interrupted is not None or state.epoch >= state.config.epochs


class _Pack:
    def __init__(self, members: Sequence[PackMember], runtime: Runtime) -> None:
        ops = private_ops()
        if not isinstance(ops, PrivateOps):  # pack_support found them a moment ago
            raise RuntimeError(f"internal error: {ops.reason}")
        self.ops, self.runtime = ops, runtime
        checked: dict[tuple, tuple] = {}  # the members' data, converted and checked once per array
        self.seats = [self._seat(member, checked) for member in members]
        self.batch_size = members[0].config.batch_size
        self.n = len(self.seats[0].rows)
        self.steps_per_epoch = math.ceil(self.n / self.batch_size)
        # The members' training arrays, each once (members of one dataset share them), one after
        # another; a member's rows are indices into this concatenation.
        sources: dict[tuple, int] = {}
        parts: list[tuple[torch.Tensor, torch.Tensor]] = []
        for seat in self.seats:
            key = (seat.x.data_ptr(), tuple(seat.x.shape), seat.y.data_ptr())
            if key not in sources:
                sources[key] = sum(len(x) for x, _ in parts)
                parts.append((seat.x, seat.y))
            seat.rows = seat.rows + sources[key]
            seat.x = seat.y = None  # type: ignore[assignment]  # the pack's features are the ones read
        self.features = parts[0][0] if len(parts) == 1 else torch.cat([x for x, _ in parts])
        self.labels = parts[0][1] if len(parts) == 1 else torch.cat([y for _, y in parts])
        self.stack: _Stack | None = None

    def _seat(self, member: PackMember, checked: dict[tuple, tuple]) -> _Seat:
        model, config, runtime = member.model, member.config, self.runtime
        # Seeds of one study hold the same arrays: converting and checking them (a pass over every
        # feature) once instead of once per member saves ~3 ms a member on 20,000 MNIST images.
        es = config.early_stopping  # whether it needs validation data is checked with the data
        key = (*map(id, member.train), *map(id, member.validation or ()), bool(es and es.needs_validation))
        if key not in checked:
            checked[key] = checked_data(model, config, member.train, member.validation, runtime)
        model.to(runtime.device)  # checked_data moved only the first model of each dataset
        x, y, validation = checked[key]
        own = _checked_rows(member)
        rows = torch.arange(len(x), device=runtime.device) if own is None else torch.from_numpy(own).to(runtime.device)
        parameters = flatten_parameters(model)
        state = TrainingState(
            model=model, parameters=parameters, optimizer=make_optimizer([parameters], config.optimizer),
            config=config, runtime=runtime, gradients=_packed_only, history=History(),
            generator=torch.Generator().manual_seed(config.seed),
            steps_per_epoch=math.ceil(len(rows) / config.batch_size), extras={"probe": x[rows[:PROBE_ROWS]]},
        )
        return _Seat(member, state, x, y, rows, validation, list(member.callbacks), _offsets(model))

    def train(self) -> list[History]:
        seats = self.seats
        with torch.random.fork_rng(devices=[]), stop_on_signals(*(s.state for s in seats)), flush_denormals():
            for seat in seats:
                seat.seed_torch()
                seat.member.model.seed_dropout(seat.seed)
                for callback in seat.callbacks:
                    callback.on_train_begin(seat.state)
            active = self._finish_done(seats)
            while active:
                self.stack = _Stack(active, self.ops)
                while active and not self._interrupted(active):
                    if not self._run_epoch(active):
                        break
                    remaining = self._finish_done(active)
                    if len(remaining) != len(active):
                        active = remaining
                        break  # rebuild the stack without the members that stopped
                if self._interrupted(active):  # all stop together, as one Ctrl-C stops one fit
                    signal_name = next(s.state.interrupted for s in active if s.state.interrupted)
                    for seat in active:
                        seat.state.interrupted = seat.state.interrupted or signal_name
                    self._finish_done(active)
                    break
        self.stack = None  # every member ended through `_finish_done`, with its weights in its own buffer
        return [seat.state.history for seat in seats]

    @staticmethod
    def _interrupted(active: list[_Seat]) -> bool:
        return any(seat.state.interrupted for seat in active)

    def _finish_done(self, seats: list[_Seat]) -> list[_Seat]:
        """End the members that are done (as `fit` ends); return those still training."""
        remaining = []
        for seat in seats:
            if not seat.done:
                remaining.append(seat)
                continue
            _own_storage(seat)
            seat.seed_torch()
            end_training(seat.state, seat.callbacks)
        return remaining

    def _epoch_order(self, active: list[_Seat]) -> torch.Tensor:
        """(members, n): the rows of `features` each member reads this epoch, in its order."""
        orders = []
        for seat in active:
            if seat.state.config.shuffle:  # the permutation its solo run draws, from its own generator
                order = torch.randperm(self.n, generator=seat.state.generator).to(self.runtime.device)
                orders.append(seat.rows.index_select(0, order))
            else:
                orders.append(seat.rows)
        return torch.stack(orders)  # (members, n)

    def _run_epoch(self, active: list[_Seat]) -> bool:
        """One epoch for every active member; False when a signal interrupted it."""
        stack = self.stack
        assert stack is not None
        for seat in active:
            for callback in seat.callbacks:
                callback.on_epoch_begin(seat.state)
        start = time.perf_counter()
        order = self._epoch_order(active)
        labels = self.labels.index_select(0, order.reshape(-1)).view(len(active), self.n)
        loss_sum = torch.zeros(len(active), dtype=torch.float64, device=self.runtime.device)
        correct = torch.zeros(len(active), dtype=torch.int64, device=self.runtime.device)
        for k, seat in enumerate(active):
            seat.running = RunningMetrics(self.runtime.device)
            seat.running.loss_sum, seat.running.correct = loss_sum[k], correct[k]  # views: read when shown
        scheduled = [s for s in active if s.state.config.schedule.varies]
        lrs = {id(s): s.state.config.optimizer.learning_rate for s in active}
        for seat in active:
            seat.state.model.train()
        size = self.batch_size
        for batch in range(self.steps_per_epoch):
            for seat in scheduled:
                config, state = seat.state.config, seat.state
                lr = learning_rate_at(config.schedule, config.optimizer.learning_rate, state.step,
                                      state.steps_per_epoch, state.total_steps)
                set_learning_rate(state.optimizer, lr)
                lrs[id(seat)] = lr
            begin, end = batch * size, min((batch + 1) * size, self.n)
            program = stack.program(end - begin)
            losses, hits = program.run(self.features, order[:, begin:end], labels[:, begin:end])
            loss_sum.add_(losses, alpha=end - begin)
            correct.add_(hits)
            apply_updates([seat.state for seat in active])
            for seat in active:
                state = seat.state
                state.step += 1
                seat.running.seen += end - begin
                for callback in seat.callbacks:
                    callback.on_batch_end(state, batch + 1, seat.running)
            if self._interrupted(active):
                return False
        rows = []
        for seat in active:
            row: dict[str, Any] = {"epoch": seat.state.epoch + 1, **seat.running.values()}
            if seat.validation is not None:
                scores = evaluate(seat.state.model, seat.validation, loss=seat.state.config.loss, runtime=self.runtime)
                row.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
            rows.append(row)
        # The pack's epoch: what each member waited for its epoch, trained alongside the others.
        seconds = time.perf_counter() - start
        for seat, row in zip(active, rows):
            state = seat.state
            row.update(lr=lrs[id(seat)], seconds=seconds, samples_per_s=self.n / seconds)
            state.epoch += 1
            state.history.append(row)
            seat.seed_torch()
            for callback in seat.callbacks:
                callback.on_epoch_end(state, row)
        return True


def _packed_only(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    raise RuntimeError("internal error: a packed member's gradients are computed by its pack")


def _offsets(model: MLP) -> list[tuple[torch.Tensor, int]]:
    """Each trainable parameter and where it starts in the flat buffer (`flatten_parameters`'s order)."""
    views, offset = [], 0
    for param in model.parameters():
        if param.requires_grad:
            views.append((param, offset))
            offset += param.numel()
    return views


def _own_storage(seat: _Seat) -> None:
    """Give a member's flat weights and gradients their own memory again (out of the pack's stack)."""
    flat = seat.state.parameters
    _point(seat, flat.data.clone(), flat.grad.clone())


def _point(seat: _Seat, data: torch.Tensor, grad: torch.Tensor) -> None:
    """Make the member's flat buffer, and its model's parameters (views into it), views into `data` and `grad`."""
    flat = seat.state.parameters
    flat.data, flat.grad = data, grad
    for param, offset in seat.views:
        n = param.numel()
        param.data = data[offset : offset + n].view_as(param)
        param.grad = grad[offset : offset + n].view_as(param)


class _Stack:
    """The active members' weights and gradients as (M, P) tensors, and one step program per batch size."""

    def __init__(self, seats: list[_Seat], ops: PrivateOps) -> None:
        self.seats, self.ops = seats, ops
        self.data = torch.stack([seat.state.parameters.data for seat in seats])
        self.grad = torch.zeros_like(self.data)
        for k, seat in enumerate(seats):
            _point(seat, self.data[k], self.grad[k])
        self._programs: dict[int, _PackProgram] = {}

    def program(self, rows: int) -> "_PackProgram":
        program = self._programs.get(rows)
        if program is None:
            program = self._programs[rows] = _PackProgram(self, rows)
        return program


class _PackProgram:
    """One packed step for a fixed number of rows: `gradients._Program`'s operations, batched over members.

    Member k's activations are slice k of (M, rows, width) buffers; its weights, slice k of strided
    (M, out, in) views into the stack, so the batched products read and write the members' flat
    buffers directly (no copies in or out).
    """

    def __init__(self, stack: _Stack, rows: int) -> None:
        seats, ops = stack.seats, stack.ops
        template = seats[0].state.model
        m = len(seats)
        self.ops, self.members, self.rows = ops, m, rows
        new = partial(torch.empty, device=stack.data.device, dtype=stack.data.dtype)
        self.index = torch.empty(m * rows, dtype=torch.int64, device=stack.data.device)
        self.y = torch.empty(m * rows, dtype=torch.int64, device=stack.data.device)
        self.x = new(m, rows, template.num_features)
        offsets = {id(param): offset for param, offset in seats[0].views}
        dropout_layers = [seat.state.model.dropout_layers() for seat in seats]
        self.forward: list[Callable[[], object]] = []
        records: list[tuple] = []
        source = self.x
        dropout_index = -1
        for module in template.layers:
            if isinstance(module, nn.Linear):
                o, i = module.out_features, module.in_features
                w, b = offsets[id(module.weight)], offsets[id(module.bias)]
                weight = stack.data[:, w : w + o * i].unflatten(1, (o, i))
                bias = stack.data[:, b : b + o].unsqueeze(1)
                weight_grad = stack.grad[:, w : w + o * i].unflatten(1, (o, i))
                bias_grad = stack.grad[:, b : b + o].unsqueeze(1)
                out = new(m, rows, o)
                self.forward.append(partial(torch.baddbmm, bias, source, weight.transpose(1, 2), out=out))
                records.append(("linear", weight, weight_grad, bias_grad, source))
                source = out
            elif isinstance(module, nn.ReLU):
                self.forward.append(source.relu_)
                records.append(("relu", source))
            elif isinstance(module, FastDropout):
                dropout_index += 1
                if module.p == 0:  # `_layout`: then every member's rate here is 0
                    continue
                mask, out = new(m, rows, source.shape[2]), new(m, rows, source.shape[2])
                # Each member's mask from its own layer's generator, the shape its solo step draws.
                self.forward.extend(partial(layers[dropout_index].draw_mask, mask[k])
                                    for k, layers in enumerate(dropout_layers))
                self.forward.append(partial(torch.mul, source, mask, out=out))
                records.append(("dropout", mask))
                source = out
            else:
                raise RuntimeError(f"internal error: a pack has no operations for {type(module).__name__}")
        classes = template.num_classes
        self.logits = source
        self.log_probs = new(m * rows, classes)  # becomes the gradient of the loss in place
        self.one_hot = new(m * rows, classes)
        self.eye = torch.eye(classes, device=stack.data.device, dtype=stack.data.dtype)
        self.predicted = torch.empty(m, rows, dtype=torch.int64, device=stack.data.device)
        self.backward = self._backward(records, new)

    def _backward(self, records: list[tuple], new) -> list[Callable[[], object]]:
        m, rows = self.members, self.rows
        calls: list[Callable[[], object]] = []
        grad = self.log_probs.view(m, rows, -1)
        scale = 1.0 / rows  # the output layer's products carry the mean's 1/rows
        ones = new(m, 1, rows).fill_(1.0)
        first = next(i for i, record in enumerate(records) if record[0] == "linear")
        # Operations before the first product (input dropout) need no gradient.
        for index, (kind, *args) in reversed(list(enumerate(records))[first:]):
            if kind == "linear":
                weight, weight_grad, bias_grad, source = args
                calls.append(partial(torch.baddbmm, weight_grad, grad.transpose(1, 2), source, beta=0, alpha=scale,
                                     out=weight_grad))
                calls.append(partial(torch.baddbmm, bias_grad, ones, grad, beta=0, alpha=scale, out=bias_grad))
                if index == first:
                    break  # the first product: nobody needs its input's gradient
                input_grad = new(m, rows, weight.shape[2])
                calls.append(partial(torch.baddbmm, input_grad, grad, weight, beta=0, alpha=scale, out=input_grad))
                grad, scale = input_grad, 1.0
            elif kind == "relu":
                calls.append(partial(self.ops.threshold_backward, grad, args[0], 0, grad_input=grad))
            else:
                calls.append(partial(grad.mul_, args[0]))
        return calls

    @torch.no_grad()
    def run(self, features: torch.Tensor, rows: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step; `rows` and `labels` are (members, rows). Returns each member's mean loss and hits."""
        m = self.members
        self.index.view(m, self.rows).copy_(rows)
        self.y.view(m, self.rows).copy_(labels)
        torch.index_select(features, 0, self.index, out=self.x.view(m * self.rows, -1))
        for call in self.forward:
            call()
        log_probs = self.ops.log_softmax(self.logits.view(m * self.rows, -1), 1, False, out=self.log_probs)
        losses = F.nll_loss(log_probs, self.y, reduction="none").view(m, self.rows).mean(1)
        hits = torch.eq(torch.argmax(self.logits, 2, out=self.predicted), self.y.view(m, self.rows)).sum(1)
        log_probs.exp_().sub_(torch.index_select(self.eye, 0, self.y, out=self.one_hot))
        for call in self.backward:
            call()
        return losses, hits
