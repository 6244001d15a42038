"""mlplab's flat-buffer optimizers against torch.optim's (the reference), and the schedules."""

from __future__ import annotations

import math

import pytest
import torch

from mlplab.config import load_config
from mlplab.model import build_model
from mlplab.model.spec import ModelSpec
from mlplab.training.config import SGD, Adam, AdamW, RMSprop, Schedule
from mlplab.training.flat_optim import FlatAdam, FlatRMSprop, FlatSGD, update_together
from mlplab.training.optim import flatten_parameters, learning_rate_at, make_optimizer


def _run(make, steps=25, zeros=True):
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(1000))
    optimizer = make(p)
    for i in range(steps):
        p.grad = torch.randn(1000) * (1 + i % 3)
        if zeros:
            p.grad[:200] = 0  # like MNIST's blank border pixels: moments stay exactly zero
        optimizer.step()
    return p.detach()


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
@pytest.mark.parametrize("rho", [0.9, 0.99999])
def test_flat_rmsprop_matches_torch_to_the_last_bits(weight_decay, rho):
    ours = _run(lambda p: FlatRMSprop([p], lr=1e-3, rho=rho, eps=1e-7, weight_decay=weight_decay))
    ref = _run(lambda p: torch.optim.RMSprop([p], lr=1e-3, alpha=rho, eps=1e-7, weight_decay=weight_decay, foreach=False))
    # The fused kernel rounds in another order: a few float32 ulps after 25 steps, no more.
    torch.testing.assert_close(ours, ref, rtol=2e-7, atol=1e-6)
    assert not torch.equal(ours, _run(lambda p: torch.optim.SGD([p], lr=1e-3)))


@pytest.mark.parametrize(("decoupled", "reference"), [(False, torch.optim.Adam), (True, torch.optim.AdamW)])
def test_flat_adam_matches_torchs_fused_adam_exactly(decoupled, reference):
    ours = _run(lambda p: FlatAdam([p], lr=1e-3, eps=1e-7, weight_decay=0.01, decoupled=decoupled))
    ref = _run(lambda p: reference([p], lr=1e-3, eps=1e-7, weight_decay=0.01, fused=True))
    assert torch.equal(ours, ref)
    single = _run(lambda p: reference([p], lr=1e-3, eps=1e-7, weight_decay=0.01, foreach=False))
    assert torch.allclose(ours, single, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("momentum", "nesterov", "weight_decay"), [(0.0, False, 0.0), (0.9, False, 0.01), (0.9, True, 0.0)])
def test_flat_sgd_matches_torchs_fused_sgd_exactly(momentum, nesterov, weight_decay):
    kw = {"lr": 0.05, "momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay}
    ours = _run(lambda p: FlatSGD([p], **kw))
    assert torch.equal(ours, _run(lambda p: torch.optim.SGD([p], fused=True, **kw)))
    torch.testing.assert_close(ours, _run(lambda p: torch.optim.SGD([p], foreach=False, **kw)), rtol=0, atol=1e-6)


UPDATE_TOGETHER = [  # equal hyper-parameters share a kernel call; the others each get their own group
    lambda p: FlatRMSprop([p], lr=1e-3, rho=0.9),
    lambda p: FlatRMSprop([p], lr=1e-3, rho=0.9),
    lambda p: FlatRMSprop([p], lr=3e-3, rho=0.8, weight_decay=0.01),
    lambda p: FlatAdam([p], lr=1e-3),
    lambda p: FlatAdam([p], lr=1e-3),
    lambda p: FlatAdam([p], lr=1e-3, betas=(0.8, 0.99)),
    lambda p: FlatAdam([p], lr=1e-3, weight_decay=0.01, decoupled=True),
    lambda p: FlatSGD([p], lr=0.05, momentum=0.9, nesterov=True),
    lambda p: FlatSGD([p], lr=0.05, momentum=0.9, nesterov=True),
    lambda p: FlatSGD([p], lr=0.05),
]


def test_update_together_is_each_optimizers_own_update_bit_for_bit():
    """A pack steps its members' optimizers in grouped kernel calls: the same bits as one call each,
    state and step counters included, with a learning rate that changes for some members midway."""
    def train(together: bool) -> list[tuple[torch.Tensor, dict]]:
        torch.manual_seed(0)
        params = [torch.nn.Parameter(torch.randn(300)) for _ in UPDATE_TOGETHER]
        optimizers = [make(p) for make, p in zip(UPDATE_TOGETHER, params)]
        for step in range(12):
            for p in params:
                p.grad = torch.randn(300)
                p.grad[:50] = 0
            if step == 6:  # a schedule moves two members of a shared group apart
                optimizers[0].param_groups[0]["lr"] = optimizers[4].param_groups[0]["lr"] = 5e-4
            if together:
                update_together(optimizers)
            else:
                for optimizer in optimizers:
                    optimizer.update()
        return [(p.detach().clone(), o.state_dict()) for p, o in zip(params, optimizers)]

    for (p_together, state_together), (p_alone, state_alone) in zip(train(True), train(False), strict=True):
        assert torch.equal(p_together, p_alone)
        for name, value in state_alone["state"].get(0, {}).items():
            assert torch.equal(state_together["state"][0][name], value), name
    learned = train(True)
    assert not torch.equal(learned[0][0], learned[1][0])  # each member's own gradients, not a shared one


def test_rmsprop_follows_kerass_formula():
    """Keras: v ← ρv + (1−ρ)g²; θ ← θ − lr·g/(√v + ε), computed here in float64."""
    p = torch.nn.Parameter(torch.tensor([0.5, -1.0, 2.0]))
    opt = FlatRMSprop([p], lr=0.01, rho=0.9, eps=1e-7)
    theta, v = p.detach().double().clone(), torch.zeros(3, dtype=torch.float64)
    for g in ([0.1, 0.0, -3.0], [0.2, 0.0, 1.0], [-0.5, 0.0, 0.5]):
        p.grad = torch.tensor(g)
        opt.step()
        g64 = torch.tensor(g, dtype=torch.float64)
        v = 0.9 * v + 0.1 * g64**2
        theta = theta - 0.01 * g64 / (v.sqrt() + 1e-7)
    assert torch.allclose(p.detach().double(), theta, rtol=1e-6, atol=1e-7)


def test_flattened_model_computes_what_it_did_and_shares_one_gradient_buffer():
    model = build_model(load_config("tutorial-128-64").model, 784, 10).eval()
    x = torch.rand(16, 784)
    before = model(x).detach()
    flat = flatten_parameters(model)
    assert flat.numel() == sum(p.numel() for p in model.parameters()) == 109_386
    assert torch.equal(model(x), before)
    model(x).sum().backward()
    assert all(p.grad.data_ptr() >= flat.grad.data_ptr() for p in model.parameters())
    manual = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    assert torch.equal(manual, flat.grad)
    optimizer = make_optimizer([flat], Adam())
    optimizer.step()
    assert not torch.equal(model(x), before)  # the update reached the model through the views


def test_make_optimizer_picks_flat_versions_for_one_flat_tensor():
    flat = torch.nn.Parameter(torch.zeros(10))
    assert isinstance(make_optimizer([flat], RMSprop()), FlatRMSprop)
    assert isinstance(make_optimizer([flat], Adam()), FlatAdam)
    assert isinstance(make_optimizer([flat], AdamW()), FlatAdam)
    assert isinstance(make_optimizer([flat], SGD(momentum=0.9, nesterov=True)), FlatSGD)
    assert isinstance(make_optimizer([flat], RMSprop(momentum=0.5)), torch.optim.RMSprop)


def test_schedules():
    base = 0.1
    assert learning_rate_at(Schedule(), base, 500, 10, 1000) == base
    step = Schedule(name="step", step_size=2, gamma=0.5)
    assert learning_rate_at(step, base, 19, 10, 100) == base
    assert learning_rate_at(step, base, 20, 10, 100) == pytest.approx(0.05)
    cosine = Schedule(name="cosine", min_learning_rate=0.0)
    assert learning_rate_at(cosine, base, 0, 10, 101) == pytest.approx(base)
    assert learning_rate_at(cosine, base, 50, 10, 101) == pytest.approx(base / 2)
    assert learning_rate_at(cosine, base, 100, 10, 101) == pytest.approx(0.0, abs=1e-12)
    cycle = Schedule(name="one_cycle", max_learning_rate=1.0, warmup_fraction=0.25)
    rates = [learning_rate_at(cycle, base, s, 10, 101) for s in range(101)]
    assert rates[0] == pytest.approx(1.0 / 25) and max(rates) == pytest.approx(1.0) and rates.index(max(rates)) == 25
    assert rates[-1] == pytest.approx(0.0, abs=1e-12) and all(math.isfinite(r) for r in rates)


@pytest.mark.parametrize("config", [RMSprop(), Adam(), AdamW(), SGD(momentum=0.9)], ids=["rmsprop", "adam", "adamw", "sgd"])
def test_flat_optimizer_state_round_trips_like_torch_optims(config):
    model = build_model(ModelSpec(), 5, 3)
    flat = flatten_parameters(model)
    optimizer = make_optimizer([flat], config)
    flat.grad.normal_()
    optimizer.step()
    saved = optimizer.state_dict()
    assert saved["param_groups"][0]["params"] == [0] and set(saved["state"]) == {0}
    again = make_optimizer([torch.nn.Parameter(flat.detach().clone())], config)
    again.load_state_dict(saved)
    for slot, value in saved["state"][0].items():
        assert torch.equal(again.state_dict()["state"][0][slot], value)
    with pytest.raises(ValueError, match="shape"):
        slot = {RMSprop: "square_avg", SGD: "momentum_buffer"}.get(type(config), "exp_avg")
        bad = {"state": {0: {slot: torch.zeros(2)}},
               "param_groups": saved["param_groups"]}
        again.load_state_dict(bad)


def test_training_does_not_import_torch_dynamo(tmp_path):
    """torch.optim.Optimizer's constructor imports torch._dynamo (1.7 s here); the flat optimizers must not."""
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from mlplab.config import load_config\n"
        "from mlplab.model import build_model\n"
        "from mlplab.training import fit, standard_callbacks\n"
        "for name in ('tutorial-512-512', 'tutorial-50-25', 'tutorial-50-25+sgd'):\n"
        "    sgd = name.endswith('+sgd'); name = name.removesuffix('+sgd')\n"
        "    cfg = load_config(name).with_overrides({'training.epochs': 2, 'training.validation_split': 0, 'training.early_stopping': None})\n"
        "    if sgd: cfg = cfg.with_overrides({'training.optimizer': {'name': 'sgd', 'momentum': 0.9}})\n"
        f"    callbacks = standard_callbacks(cfg.training, checkpoint_path={str(tmp_path / 'ck.safetensors')!r}, verbose=0)\n"
        "    fit(build_model(cfg.model, 8, 3), cfg.training, (torch.rand(64, 8), torch.randint(0, 3, (64,))), callbacks=callbacks)\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", ["constant", "step", "cosine"])
def test_warmup_rises_linearly_then_hands_over_to_the_schedule(name):
    base, steps_per_epoch, total = 0.1, 10, 100
    plain = Schedule(name=name, step_size=5, gamma=0.5)
    warm = Schedule(name=name, step_size=5, gamma=0.5, warmup_epochs=1.5)  # 15 steps
    rates = [learning_rate_at(warm, base, s, steps_per_epoch, total) for s in range(total)]
    assert rates[:15] == pytest.approx([base * (s + 1) / 15 for s in range(15)])
    assert rates[14] == pytest.approx(base) and rates[15] == pytest.approx(base)  # no jump at the hand-over
    if name == "cosine":  # the cosine runs over the steps after the warm-up, down to its minimum
        assert rates[-1] == pytest.approx(0.0, abs=1e-12)
        assert rates[15 + 42] == pytest.approx(base / 2)
    else:  # constant and step read the step counter from the start, as without warm-up
        assert rates[15:] == [learning_rate_at(plain, base, s, steps_per_epoch, total) for s in range(15, total)]
    assert learning_rate_at(Schedule(name=name, warmup_epochs=0.01), base, 0, steps_per_epoch, total) == pytest.approx(base)


@pytest.mark.parametrize("bad", [{"warmup_epochs": -1.0}, {"warmup_epochs": float("nan")},
                                 {"name": "one_cycle", "warmup_epochs": 1.0}])
def test_bad_warmups_are_refused(bad):
    with pytest.raises(ValueError, match="warmup"):
        Schedule(**bad)


def test_warmup_must_end_before_training_does():
    from mlplab.config import config_from_dict
    from mlplab.errors import MlplabError

    with pytest.raises(MlplabError, match="warmup_epochs"):
        config_from_dict({"name": "t", "model": {"layers": []}, "training": {"epochs": 2, "schedule": {"name": "cosine", "warmup_epochs": 2}}})
    config_from_dict({"name": "t", "model": {"layers": []}, "training": {"epochs": 3, "schedule": {"name": "cosine", "warmup_epochs": 2}}})
