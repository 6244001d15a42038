"""Augmentation: training batches only, deterministic, part of the checkpoint, and it still learns."""

from __future__ import annotations

import pytest
import torch

from mlplab.config import config_from_dict
from mlplab.errors import ConfigError, MlplabError
from mlplab.model import build_model
from mlplab.training import fit, standard_callbacks
from mlplab.training.augment import Augmenter, resolve_image_shape
from mlplab.training.callbacks import Callback
from mlplab.training.config import Augment, TrainingConfig
from mlplab.training.gradients import ManualGradients
from mlplab.training.loop import evaluate

ON = {"shift": 1.5, "rotate": 12.0, "scale": 0.1, "shear": 5.0, "elastic_alpha": 8.0, "elastic_sigma": 2.0}


@pytest.fixture
def images():
    """A learnable 3-class problem of 8×8 images in [0, 1]: a bright bar in one of three places."""
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (360,), generator=g)
    x = torch.rand(360, 8, 8, generator=g) * 0.3
    for label in range(3):
        x[y == label, :, 1 + 2 * label:3 + 2 * label] += 0.7
    x = x.reshape(360, 64).clamp(0, 1)
    return (x[:300], y[:300]), (x[300:], y[300:])


def config(activation="relu", **training):
    return config_from_dict({
        "name": "t",
        "model": {"layers": [{"type": "dense", "units": 16, "activation": "relu"}, {"type": "dropout", "rate": 0.2},
                             {"type": "dense", "units": 8, "activation": activation}]},
        "training": {"batch_size": 32, "epochs": 4, "optimizer": {"name": "adam", "learning_rate": 0.01}, **training},
    })


@pytest.mark.parametrize("bad", [
    {"rotate": 181.0}, {"scale": 1.0}, {"shear": 90.0}, {"shift": -1.0}, {"elastic_sigma": 0.0},
    {"elastic_alpha": float("nan")}, {"flip": True},
])
def test_bad_augment_values_are_config_errors(bad):
    with pytest.raises(MlplabError, match="augment"):
        config(augment=bad)


def test_an_all_zero_augment_is_off():
    assert not Augment().active and Augment(shift=1.0).active


def test_non_square_images_are_refused():
    with pytest.raises(ConfigError, match="square"):
        resolve_image_shape(20, None)
    with pytest.raises(ConfigError, match="square"):
        resolve_image_shape(12, (3, 4))
    assert resolve_image_shape(784, None) == (28, 28) and resolve_image_shape(784, (28, 28)) == (28, 28)


def test_non_square_data_with_augment_on_is_a_config_error(images):
    (x, y), _ = images
    cfg = config(augment=ON)
    with pytest.raises(ConfigError, match="square"):
        fit(build_model(cfg.model, 60, 3), cfg.training, (x[:, :60], y))


def test_augmented_images_keep_shape_and_range_and_change():
    x = torch.rand(64, 784)
    out = Augmenter(Augment(**ON), (28, 28), "cpu", seed=0)(x)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    changed = (out - x).abs().amax(dim=1) > 0.05
    assert bool(changed.all())


@pytest.mark.parametrize("kind", ["shift", "rotate", "scale", "shear", "elastic_alpha"])
def test_each_distortion_alone_changes_images(kind):
    x = torch.zeros(16, 28, 28)
    x[:, 8:20, 12:16] = 1.0  # a bar: every distortion moves some of its edge
    amount = {"shift": 2.0, "rotate": 20.0, "scale": 0.2, "shear": 20.0, "elastic_alpha": 30.0}[kind]
    out = Augmenter(Augment(**{kind: amount}), (28, 28), "cpu", seed=1)(x.reshape(16, 784))
    assert float((out - x.reshape(16, 784)).abs().sum(dim=1).min()) > 0.5


def test_augmentation_is_deterministic_for_a_seed():
    x = torch.rand(32, 784)
    a = Augmenter(Augment(**ON), (28, 28), "cpu", seed=5)
    b = Augmenter(Augment(**ON), (28, 28), "cpu", seed=5)
    c = Augmenter(Augment(**ON), (28, 28), "cpu", seed=6)
    first = a(x)
    assert torch.equal(first, b(x))
    assert not torch.equal(first, c(x))
    assert not torch.equal(first, a(x))  # the generator moves on: each epoch sees new distortions


def test_augment_off_trains_bit_identically(images):
    train, val = images
    plain, zero = config(), config(augment={})
    a, b = build_model(plain.model, 64, 3), build_model(zero.model, 64, 3)
    fit(a, plain.training, train, val)
    fit(b, zero.training, train, val)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key


class Spy(Callback):
    """Counts the rows the augmenter sees and records which gradient step ran."""

    def __init__(self):
        self.rows, self.step = 0, None

    def on_train_begin(self, state):
        self.step = type(state.gradients)
        inner = state.augmenter

        def counting(x):
            self.rows += len(x)
            return inner(x)
        state.augmenter = counting


def test_only_training_batches_are_augmented_and_the_fast_step_still_runs(images):
    train, val = images
    cfg = config(augment=ON, epochs=3)
    model = build_model(cfg.model, 64, 3)
    spy = Spy()
    history = fit(model, cfg.training, train, val, callbacks=[spy])
    assert spy.rows == 3 * len(train[0])  # not one validation row
    assert spy.step is ManualGradients
    scores = evaluate(model, val)
    assert history[-1]["val_loss"] == scores["loss"] and history[-1]["val_accuracy"] == scores["accuracy"]


def test_augmentation_changes_training(images):
    train, val = images
    plain, augmented = config(), config(augment=ON)
    a, b = build_model(plain.model, 64, 3), build_model(augmented.model, 64, 3)
    fit(a, plain.training, train, val)
    fit(b, augmented.training, train, val)
    assert not torch.equal(next(a.parameters()), next(b.parameters()))



class InterruptMidEpoch(Callback):
    def on_batch_end(self, state, batch, running):
        if state.epoch == 2 and batch == 3:
            state.interrupted = "SIGINT"


@pytest.mark.parametrize("activation", ["tanh", "relu"], ids=["autograd", "hand-written"])
@pytest.mark.parametrize("where", ["mid-epoch", "epoch-boundary"])
def test_interrupted_then_resumed_equals_uninterrupted_with_augmentation(images, interrupt_after, tmp_path, activation,
                                                                       where):
    train, val = images
    cfg = config(activation, augment=ON, epochs=5)
    straight = build_model(cfg.model, 64, 3)
    fit(straight, cfg.training, train, val, callbacks=standard_callbacks(cfg.training, verbose=0))

    path = tmp_path / "checkpoint.safetensors"
    first = build_model(cfg.model, 64, 3)
    stopper = InterruptMidEpoch() if where == "mid-epoch" else interrupt_after(1)
    history = fit(first, cfg.training, train, val,
                  callbacks=[*standard_callbacks(cfg.training, checkpoint_path=path, verbose=0), stopper])
    assert history.interrupted == "SIGINT"

    resumed = build_model(cfg.model, 64, 3, seed=99)
    history = fit(resumed, cfg.training, train, val, resume_from=path,
                  callbacks=standard_callbacks(cfg.training, checkpoint_path=path, verbose=0))
    assert [r["epoch"] for r in history] == list(range(1, 6))
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_a_short_real_mnist_run_with_augmentation_learns(mnist):
    from mlplab.data.preprocess import flatten_scale

    x = torch.from_numpy(flatten_scale(mnist.x_train[:6000]))
    y = torch.from_numpy(mnist.y_train[:6000])
    x_test = torch.from_numpy(flatten_scale(mnist.x_test[:2000]))
    y_test = torch.from_numpy(mnist.y_test[:2000])
    cfg = config_from_dict({
        "name": "aug",
        "model": {"layers": [{"type": "dense", "units": 128, "activation": "relu"}]},
        "training": {"batch_size": 128, "epochs": 5, "optimizer": {"name": "adam"},
                     "augment": {"shift": 2.0, "rotate": 10.0, "scale": 0.1, "elastic_alpha": 20.0,
                                 "elastic_sigma": 4.0}},
    })
    model = build_model(cfg.model, 784, 10)
    fit(model, cfg.training, (x, y), None, image_shape=mnist.image_shape)
    # Without augmentation this gets about 0.90; chance is 0.10.
    assert evaluate(model, (x_test, y_test))["accuracy"] >= 0.87


def test_the_smoothing_matrix_equals_a_zero_padded_gaussian_convolution():
    from mlplab.training.augment import gaussian_matrix
    sigma, size = 2.0, 28
    field = torch.rand(3, size, size, dtype=torch.float64)
    radius = 6
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float64) / sigma) ** 2)
    taps /= taps.sum()
    conv = torch.nn.functional.conv2d(field.unsqueeze(1), taps.view(1, 1, 1, -1), padding=(0, radius))
    conv = torch.nn.functional.conv2d(conv, taps.view(1, 1, -1, 1), padding=(radius, 0)).squeeze(1)
    k = gaussian_matrix(sigma, size, torch.device("cpu")).double()
    torch.testing.assert_close(k @ field @ k.t(), conv, rtol=1e-5, atol=1e-6)


def test_the_sampling_grid_is_affine_grids():
    import torch.nn.functional as F

    a = Augmenter(Augment(**ON), (28, 28), "cpu", seed=3)
    theta = a.theta(5)
    ours = torch.matmul(a.base, theta.transpose(1, 2)).view(5, 28, 28, 2)
    torch.testing.assert_close(ours, F.affine_grid(theta, [5, 1, 28, 28], align_corners=False), rtol=1e-6, atol=1e-6)
