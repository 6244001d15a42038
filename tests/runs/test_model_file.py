"""Saved models: exact round trip, strict checks on load, and no unpickling, ever."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from mlplab.cli.main import main
from mlplab.config import load_config
from mlplab.errors import ModelFileError
from mlplab.model import build_model
from mlplab.runs import load_model, save_model


@pytest.fixture
def saved(tmp_path):
    model = build_model(load_config("tutorial-128-64").model, 784, 10, seed=5)
    save_model(tmp_path, model, name="m", class_names=[str(i) for i in range(10)], image_shape=(28, 28),
               extra={"metrics": {"test_accuracy": 0.5}})
    return tmp_path, model


def test_round_trip_is_exact_and_the_file_alone_rebuilds_the_model(saved):
    path, model = saved
    loaded = load_model(path)
    assert loaded.description["architecture"] == model.spec.model_dump(mode="json")
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.model.state_dict()[key])
    x = torch.rand(7, 784)
    assert torch.equal(model.eval()(x), loaded.model(x))
    assert loaded.class_names == [str(i) for i in range(10)] and loaded.metrics == {"test_accuracy": 0.5}
    assert load_model(path / "model.json").description == load_model(path / "model.safetensors").description
    assert set(loaded.description["versions"]) >= {"mlplab", "torch", "numpy", "python"}


def test_a_shape_that_disagrees_with_the_architecture_is_refused(saved):
    path, _ = saved
    desc = json.loads((path / "model.json").read_text())
    desc["architecture"]["layers"][0]["units"] = 100
    (path / "model.json").write_text(json.dumps(desc))
    with pytest.raises(ModelFileError, match=r"tensor layers.0.weight is torch.float32 \(128, 784\), the architecture needs torch.float32 \(100, 784\)"):
        load_model(path)


def test_non_finite_weights_are_refused(tmp_path):
    model = build_model(load_config("tutorial-50-25").model)
    with torch.no_grad():
        model.layers[0].weight[3, 3] = float("nan")
    save_model(tmp_path, model, name="m", class_names=list("0123456789"), image_shape=(28, 28))
    with pytest.raises(ModelFileError, match="layers.0.weight holds non-finite values"):
        load_model(tmp_path)


def test_truncated_weights_are_a_clear_error(saved):
    path, _ = saved
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="not a valid safetensors file"):
        load_model(path)


def test_missing_description_is_a_clear_error(tmp_path):
    with pytest.raises(ModelFileError, match="no model.json here"):
        load_model(tmp_path)


class Payload:
    """Unpickling this writes a marker file: the proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("name", ["evil.pt", "evil.pkl", "model.safetensors"])
def test_a_malicious_pickle_is_refused_and_its_payload_never_runs(tmp_path, name, capsys):
    marker = tmp_path / "pwned"
    target = tmp_path / name
    target.write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(ModelFileError, match="pickle|refusing|not a valid"):
        load_model(target)
    assert main(["evaluate", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert not marker.exists()
    # sanity check: the payload really is live when unpickled
    pickle.loads(target.read_bytes())
    assert marker.exists()


def test_torch_save_archives_are_refused(tmp_path):
    path = tmp_path / "weights.bin"
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(ModelFileError, match="pickle"):
        load_model(path)


def test_safetensors_whose_header_length_starts_with_0x80_are_not_mistaken_for_pickles(tmp_path):
    from mlplab.safeio import load_tensors, save_tensors

    for size in range(1, 400):
        path = tmp_path / "t.safetensors"
        save_tensors(path, {"x" * size: torch.zeros(1)})
        if path.read_bytes()[0] == 0x80:
            tensors, _ = load_tensors(path)
            assert list(tensors) == ["x" * size]
            return
    pytest.fail("no header length with a 0x80 first byte was produced")


def test_the_input_style_follows_the_dataset_unless_given(tmp_path):
    model = build_model(load_config("tutorial-50-25").model)
    names = list("0123456789")
    for dataset, given, expected in (("mnist", None, "digit"), ("fashion-mnist", None, "object"),
                                     ("kmnist", None, "digit"), (None, None, "digit"), ("mnist", "none", "none")):
        extra = {"dataset": {"name": dataset}} if dataset else None
        save_model(tmp_path / expected / str(dataset), model, name="m", class_names=names, image_shape=(28, 28),
                   input_style=given, extra=extra)
        assert json.loads((tmp_path / expected / str(dataset) / "model.json").read_text())["input_style"] == expected
    with pytest.raises(ValueError, match="input_style must be one of digit, object, none, got 'photo'"):
        save_model(tmp_path / "bad", model, name="m", class_names=names, image_shape=(28, 28), input_style="photo")


def test_a_loaded_model_predicts_with_its_network_and_preprocesses_by_default(saved):
    """SavedModel.predict_proba / predict: softmax of the network on the pixels / 255, argmax per image."""
    import numpy as np

    path, model = saved
    loaded = load_model(path)
    rng = np.random.default_rng(0)
    images = np.full((5, 28, 28), 255, dtype=np.uint8)  # dark strokes on paper: preprocessing inverts them
    images[:, 2:12, 1:9] = rng.integers(0, 100, (5, 10, 8))
    with torch.no_grad():
        expected = torch.softmax(model.eval()(torch.from_numpy(images.reshape(5, 784) / 255).float()), 1).numpy()
    raw = loaded.predict_proba(images, preprocess=False, batch_size=2)
    np.testing.assert_allclose(raw, expected, rtol=1e-5, atol=1e-6)
    assert list(loaded.predict(images, preprocess=False, batch_size=2)) == list(expected.argmax(axis=1))
    default = loaded.predict_proba(images)
    np.testing.assert_array_equal(default, loaded.predict_proba(images, preprocess=True))
    assert not np.allclose(default, raw)  # so the default really is "preprocess"
    assert list(loaded.predict(images)) == list(default.argmax(axis=1))
    assert loaded.input_style == "digit"
    for predict in (loaded.predict, loaded.predict_proba):  # the batch size reaches the network's loop
        with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
            predict(images, batch_size=0)


def test_each_refusal_names_the_file_it_is_about(saved):
    """Messages start with the path of the file at fault: model.json for the description, model.safetensors for tensors."""
    from safetensors.torch import load_file, save_file

    path, _ = saved
    loaded = load_model(path / "model.json")
    assert loaded.path == path
    description, weights = path / "model.json", path / "model.safetensors"
    tensors = load_file(weights)

    save_file({**tensors, "extra": torch.zeros(2)}, weights)
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert str(info.value) == f"{weights}: tensors do not match the architecture (missing [], unexpected ['extra'])"
    save_file({k: v for k, v in tensors.items() if k != "layers.0.bias"}, weights)
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert str(info.value) == f"{weights}: tensors do not match the architecture (missing ['layers.0.bias'], unexpected [])"
    save_file({**tensors, "layers.0.bias": torch.zeros(3)}, weights)
    with pytest.raises(ModelFileError, match=f"^{weights}: tensor layers.0.bias is torch.float32 \\(3,\\)"):
        load_model(path)

    text = description.read_text()
    description.write_text(text.replace('"mlplab.model/1"', '"mlplab.model/2"'))
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert str(info.value) == f"{description}: not an mlplab model description (format mlplab.model/1 expected)"
    desc = json.loads(text)
    for key in ("num_features", "num_classes"):
        desc.pop(key)
    description.write_text(json.dumps(desc))
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert str(info.value) == f"{description}: invalid architecture (missing num_features, num_classes)"


def test_the_description_holds_what_rebuilds_and_feeds_the_model(saved, tmp_path):
    path, model = saved
    description = json.loads((path / "model.json").read_text())
    assert {key: description[key] for key in ("format", "name", "num_features", "num_classes", "image_shape",
                                               "input_style", "class_names")} == {
        "format": "mlplab.model/1", "name": "m", "num_features": 784, "num_classes": 10, "image_shape": [28, 28],
        "input_style": "digit", "class_names": [str(i) for i in range(10)]}
    assert description["architecture"] == model.spec.model_dump(mode="json")
    assert description["preprocessing"] == {"flatten": True, "dtype": "float32", "scale": 1 / 255,
                                            "input": "uint8 pixels 0-255"}
    assert description["tensors"]["layers.0.weight"] == {"shape": [128, 784], "dtype": "float32"}
    import datetime as dt

    from safetensors import safe_open

    created = dt.datetime.fromisoformat(description["created"])  # when, in UTC, to the second
    assert created.utcoffset() == dt.timedelta(0) and created.microsecond == 0
    with safe_open(path / "model.safetensors", "pt") as weights:
        assert weights.metadata() == {"format": "mlplab.model/1"}
    assert load_model(path, device="meta").model.layers[0].weight.device.type == "meta"  # the device asked for


def test_a_path_that_is_not_a_model_says_which_case_it_is(tmp_path):
    with pytest.raises(ModelFileError) as info:
        load_model(tmp_path / "absent.json")
    assert str(info.value) == f"{tmp_path / 'absent.json'}: no such file or directory"
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(ModelFileError) as info:
        load_model(other)
    assert str(info.value) == f"{other}: not an mlplab model (expected a run directory, model.json or model.safetensors)"
