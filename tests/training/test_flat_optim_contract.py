"""The flat optimizers' torch.optim interface beyond the update: defaults, closures, zero_grad, state dicts.

The updates themselves are checked against torch's optimizers in test_optim.py; these are the edges
a resume or a caller relies on (found by mutation testing: nothing checked them).
"""

from __future__ import annotations

import pytest
import torch

from mlplab.training.config import SGD, Adam, RMSprop
from mlplab.training.flat_optim import FlatAdam, FlatRMSprop, FlatSGD, WeightCopy, fused_adam_available, mirror


def _param(n: int = 6) -> torch.nn.Parameter:
    p = torch.nn.Parameter(torch.linspace(-1, 1, n))
    p.grad = torch.linspace(0.5, -0.5, n)
    return p


def test_constructor_defaults_are_the_configs_keras_defaults():
    rms, adam, sgd = RMSprop(), Adam(), SGD()
    assert FlatRMSprop([_param()]).defaults == {
        "lr": rms.learning_rate, "rho": rms.rho, "eps": rms.epsilon, "weight_decay": rms.weight_decay}
    assert FlatAdam([_param()]).defaults == {
        "lr": adam.learning_rate, "betas": (adam.beta_1, adam.beta_2), "eps": adam.epsilon,
        "weight_decay": adam.weight_decay}
    assert FlatSGD([_param()]).defaults == {
        "lr": sgd.learning_rate, "momentum": sgd.momentum, "nesterov": sgd.nesterov,
        "weight_decay": sgd.weight_decay}


def test_sgd_with_default_settings_is_plain_sgd():
    """θ ← θ − lr·g, no momentum, no weight decay (torch.optim.SGD is not built here: it imports torch._dynamo)."""
    p = _param()
    start, grad = p.detach().clone(), p.grad.clone()
    optimizer = FlatSGD([p], lr=0.1)
    optimizer.step()
    optimizer.step()
    torch.testing.assert_close(p.detach(), start - 0.2 * grad, rtol=0, atol=1e-6)  # float32 rounding


def test_nesterov_without_momentum_is_refused():
    with pytest.raises(ValueError, match="^nesterov needs a positive momentum$"):
        FlatSGD([_param()], momentum=0.0, nesterov=True)


def test_step_calls_the_closure_and_returns_its_loss():
    p = _param()
    calls = []
    optimizer = FlatAdam([p])
    assert optimizer.step(lambda: calls.append(1) or torch.tensor(2.5)) == torch.tensor(2.5)
    assert calls == [1]
    assert optimizer.step() is None


def test_zero_grad_zeroes_the_gradient_in_place_and_tolerates_none():
    p = _param()
    grad = p.grad
    FlatRMSprop([p]).zero_grad()
    assert p.grad is grad and torch.equal(grad, torch.zeros(6))
    p.grad = None
    FlatRMSprop([p]).zero_grad()
    assert p.grad is None


def _stepped_adam():
    p = _param()
    optimizer = FlatAdam([p])
    optimizer.step()
    optimizer.step()
    return optimizer


def test_a_state_dict_keyed_by_the_string_0_loads_like_one_keyed_by_0():
    """JSON turns the index 0 into "0": such a state dict must load, not come back empty."""
    saved = _stepped_adam().state_dict()
    by_string = {"state": {"0": saved["state"][0]}, "param_groups": saved["param_groups"]}
    again = FlatAdam([_param()])
    again.load_state_dict(by_string)
    loaded = again.state_dict()["state"][0]
    assert set(loaded) == {"step", "exp_avg", "exp_avg_sq"}
    for slot, value in saved["state"][0].items():
        assert torch.equal(loaded[slot], value)


def test_an_empty_state_loads_as_a_fresh_optimizer():
    fresh = FlatAdam([_param()]).state_dict()
    assert fresh["state"] == {}
    again = FlatAdam([_param()])
    again.load_state_dict(fresh)
    assert again.state_dict()["state"] == {}


def test_the_step_count_is_kept_as_torch_keeps_it_a_float32_scalar():
    saved = _stepped_adam().state_dict()
    slots = dict(saved["state"][0], step=torch.tensor(2))  # an integer count, as a hand-made state would have
    again = FlatAdam([_param()])
    again.load_state_dict({"state": {0: slots}, "param_groups": saved["param_groups"]})
    step = again.state_dict()["state"][0]["step"]
    assert step.dtype == torch.float32 and step.shape == () and step.item() == 2.0


@pytest.mark.parametrize("groups", [
    [{"lr": 1e-3, "params": [0, 1]}],  # two tensors in one group
    [{"lr": 1e-3, "params": [0]}, {"lr": 1e-3, "params": [1]}],  # two groups
    [{"lr": 1e-3}],  # no parameter list at all
], ids=["two-tensors", "two-groups", "no-params"])
def test_a_state_dict_for_other_parameters_is_refused_with_the_reason(groups):
    with pytest.raises(ValueError, match="^the saved optimizer state is not for one flat parameter tensor$"):
        FlatAdam([_param()]).load_state_dict({"state": {}, "param_groups": groups})


def test_loaded_moments_take_the_parameters_dtype():
    saved = _stepped_adam().state_dict()
    slots = {name: value.double() if name != "step" else value for name, value in saved["state"][0].items()}
    again = FlatAdam([_param()])
    again.load_state_dict({"state": {0: slots}, "param_groups": saved["param_groups"]})
    loaded = again.state_dict()["state"][0]
    assert loaded["exp_avg"].dtype == loaded["exp_avg_sq"].dtype == torch.float32
    torch.testing.assert_close(loaded["exp_avg"], saved["state"][0]["exp_avg"], rtol=0, atol=0)


@pytest.mark.parametrize("make", [FlatRMSprop, FlatAdam, FlatSGD])
def test_an_optimizer_loaded_from_an_empty_state_can_step(make):
    settings = {"momentum": 0.9} if make is FlatSGD else {}
    p = _param()
    optimizer = make([p], **settings)
    optimizer.load_state_dict(make([_param()], **settings).state_dict())
    optimizer.step()
    assert not torch.equal(p.detach(), _param().detach())


def test_rmsprop_takes_any_rho_in_0_to_099999_and_refuses_others_with_the_value():
    FlatRMSprop([_param()], rho=0.0).step()  # ρ = 0: v is the last g², still RMSprop
    FlatRMSprop([_param()], rho=0.99999).step()
    for rho in (-0.1, 0.999999, 1.0):
        with pytest.raises(ValueError, match=rf"^rho must be in \[0, 0.99999\] for FlatRMSprop, got {rho}$"):
            FlatRMSprop([_param()], rho=rho)


@pytest.mark.parametrize("kernel", ["_fused_adam_", "_fused_adamw_"])
def test_the_flat_adam_needs_both_private_kernels(monkeypatch, kernel):
    """FlatAdam calls one or the other (Adam or AdamW): a torch without either must not get it."""
    assert fused_adam_available()
    monkeypatch.delattr(torch, kernel)
    assert not fused_adam_available()


def test_flat_adam_is_adam_unless_decoupled_is_asked_for():
    def run(**kw):
        p = _param()
        FlatAdam([p], lr=0.1, weight_decay=0.5, **kw).step()
        return p.detach()

    assert torch.equal(run(), run(decoupled=False))
    assert not torch.equal(run(), run(decoupled=True))


@pytest.mark.parametrize("given", ["none", "two", "not-a-tensor"])
def test_anything_but_one_tensor_is_refused_naming_the_optimizer(given):
    params = {"none": [], "two": [_param(), _param()], "not-a-tensor": [[1.0, 2.0]]}[given]
    with pytest.raises(ValueError, match="^FlatSGD optimizes exactly one \\(flattened\\) parameter tensor$"):
        FlatSGD(params)


def test_the_state_dict_carries_the_settings_as_torch_optims_do():
    optimizer = FlatSGD([_param()], lr=0.2, momentum=0.5)
    optimizer.param_groups[0]["lr"] = 0.05  # as a schedule sets it
    groups = optimizer.state_dict()["param_groups"]
    assert groups == [{"lr": 0.05, "momentum": 0.5, "nesterov": False, "weight_decay": 0.0, "params": [0]}]
    again = FlatSGD([_param()], lr=0.2, momentum=0.5)
    again.load_state_dict(optimizer.state_dict())
    assert again.param_groups[0]["lr"] == 0.05


def test_loaded_moments_move_to_the_parameters_device():
    """A checkpoint written on one device resumes on another ("meta" stands in for a GPU here)."""
    saved = _stepped_adam().state_dict()
    p = torch.nn.Parameter(torch.empty(6, device="meta"))
    again = FlatAdam([p])
    again.load_state_dict(saved)
    assert again.state[p]["exp_avg"].device.type == again.state[p]["exp_avg_sq"].device.type == "meta"
    assert again.state[p]["step"].device.type == "meta"  # the fused kernel reads it there, as torch.optim loads it


@pytest.fixture
def float64_default():
    """torch's default dtype set to float64, as a notebook may, and set back."""
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize("make", [FlatRMSprop, FlatAdam, lambda params: FlatAdam(params, decoupled=True)],
                         ids=["rmsprop", "adam", "adamw"])
def test_the_fused_kernel_gets_every_tensor_on_the_parameters_device(make, monkeypatch, float64_default):
    """Moments, step counts and RMSprop's parked step are made where the parameters live (torch's
    `meta` device stands in for a GPU; the fused kernels accept it and compute nothing): a step
    tensor left on the CPU would fail on a GPU's kernel. Nor do they follow torch's default dtype:
    float32 parameters get float32 steps, as torch.optim makes them."""
    seen = []
    for name in ("_fused_adam_", "_fused_adamw_"):
        def spy(*args, real=getattr(torch, name), **kwargs):
            seen.extend(t for arg in args for t in (arg if isinstance(arg, list) else [arg]) if isinstance(t, torch.Tensor))
            return real(*args, **kwargs)
        monkeypatch.setattr(torch, name, spy)
    p = torch.nn.Parameter(torch.zeros(6, device="meta", dtype=torch.float32))
    p.grad = torch.zeros(6, device="meta", dtype=torch.float32)
    optimizer = make([p])
    optimizer.step()
    optimizer.step()
    assert len(seen) == 10 and all(t.device.type == "meta" for t in seen), [t.device for t in seen]
    assert all(t.dtype == torch.float32 for t in seen), [t.dtype for t in seen]
    assert all(t.dtype == torch.float32 for t in optimizer.state[p].values())


def test_a_weight_copy_lives_on_its_masters_device():
    copy = WeightCopy(torch.zeros(6, device="meta"))
    assert copy.copy.device.type == "meta" and copy.copy.dtype == torch.bfloat16


@pytest.mark.parametrize("make", [FlatRMSprop, FlatAdam], ids=["rmsprop", "adam"])
def test_the_step_count_counts_each_step_once(make):
    """torch.optim's RMSprop and Adam keep `step`, a float32 scalar counting the updates; a resumed
    run's state dict carries it (RMSprop's update does not read it, so only the count shows a slip)."""
    optimizer = make([_param()], lr=0.01)
    for _ in range(3):
        optimizer.step()
    step = optimizer.state_dict()["state"][0]["step"]
    assert step.dtype == torch.float32 and step.shape == () and step.item() == 3.0


def test_a_weight_copy_is_made_of_the_one_flat_contiguous_buffer_only():
    master = torch.linspace(-1, 1, 12)
    copy = WeightCopy(master)
    assert copy.copy.dtype == torch.bfloat16 and torch.equal(copy.copy, master.to(torch.bfloat16))
    message = "^WeightCopy needs the one flat, contiguous parameter buffer$"
    for wrong in (master.view(3, 4), master[::2]):  # a layer's matrix; a strided view
        with pytest.raises(ValueError, match=message):
            WeightCopy(wrong)


def test_mirror_finds_a_views_place_in_the_twin_and_refuses_anything_else():
    """A parameter is a view into the flat buffer; its mirror is the same slice of the twin buffer
    (the bf16 copy, or the packed gradients), shaped like the parameter."""
    base = torch.arange(20.0)
    flat, twin = base[:10], torch.arange(100.0, 110.0)
    assert torch.equal(mirror(flat, twin, flat[2:8].view(2, 3)), torch.arange(102.0, 108.0).view(2, 3))
    assert torch.equal(mirror(flat, twin, flat[6:]), twin[6:])  # the last parameter ends where the buffer does
    message = "^the tensor is not a contiguous view into the flat buffer$"
    not_views = {
        "transposed": flat[:6].view(2, 3).t(),  # in the buffer, not contiguous
        "past the end": base[8:12],  # the same storage, beyond the flat buffer
        "another storage": torch.from_numpy(flat.numpy()[2:5]),  # the same memory, but not a view of flat
    }
    for name, tensor in not_views.items():
        with pytest.raises(ValueError, match=message):
            mirror(flat, twin, tensor)
