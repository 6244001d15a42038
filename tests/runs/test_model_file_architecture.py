"""A model.json's architecture is checked like a config (strict types, known keys, sane sizes)
before anything is allocated, and every problem is a one-line error."""

from __future__ import annotations

import json

import pytest

from mlplab.config import load_config
from mlplab.errors import ModelFileError
from mlplab.model import build_model
from mlplab.runs import load_model, save_model


@pytest.fixture
def saved(tmp_path):
    model = build_model(load_config("tutorial-50-25").model, 784, 10, seed=1)
    save_model(tmp_path, model, name="m", class_names=[str(i) for i in range(10)], image_shape=(28, 28))
    return tmp_path


def _edit(path, change):
    desc = json.loads((path / "model.json").read_text())
    change(desc)
    (path / "model.json").write_text(json.dumps(desc))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["architecture"]["layers"][0].update(extra=1), "architecture: layers[0].extra is not a known key"),
        (lambda d: d["architecture"].update(dropout=0.5), "architecture: dropout is not a known key"),
        (lambda d: d["architecture"]["layers"][0].update(units=True), "architecture: layers[0].units must be an integer, got True"),
        (lambda d: d["architecture"]["layers"][0].update(units="50"), "architecture: layers[0].units must be an integer, got '50'"),
        (lambda d: d["architecture"]["layers"][0].update(units=10**9),
         "architecture: layers[0].units must be at most 1,048,576, got 1,000,000,000"),
        (lambda d: d.update(num_features=10**12), "architecture: num_features must be in [1, 1,048,576], got 1,000,000,000,000"),
        (lambda d: d.update(num_features=1e12), "architecture: num_features must be an integer, got 1000000000000.0"),
        (lambda d: d.update(num_classes="10"), "architecture: num_classes must be an integer, got '10'"),
        (lambda d: d["architecture"]["layers"][0].update(units=1_000_000),
         "architecture: the model would have 810,000,285 parameters, more than the limit of 268,435,456"),
        (lambda d: d.pop("num_classes"), "invalid architecture (missing num_classes)"),
        (lambda d: d.update(architecture=[1, 2]), "invalid architecture: must be a table, got [1, 2]"),
    ],
)
def test_bad_architectures_are_one_line_errors(saved, change, message):
    _edit(saved, change)
    with pytest.raises(ModelFileError) as info:
        load_model(saved)
    text = str(info.value)
    assert message in text and "\n" not in text


def test_the_cli_prints_one_line(saved, capsys):
    from mlplab.cli.main import main

    _edit(saved, lambda d: d["architecture"]["layers"][1].update(colour="red"))
    code = main(["evaluate", str(saved)])
    err = capsys.readouterr().err.strip()
    assert code != 0 and err.count("\n") == 0 and "layers[1].colour is not a known key" in err, err
