"""The notebook flow shown in the README, on a slice of the real MNIST."""

from __future__ import annotations

import subprocess
import sys

import mlplab


def test_readme_notebook_flow(mnist_dir, tmp_path):
    (x_train, y_train), (x_test, y_test) = mlplab.load_data("mnist")
    assert x_train.shape == (60000, 28, 28) and x_train.dtype.name == "uint8" and y_train[0] == 5
    config = mlplab.load_config("tutorial-512-512").with_overrides({"training.epochs": 1})
    lines: list[str] = []
    mlplab.summarize(config.model).print(lines.append)
    assert any("669,706" in line for line in lines)
    x, x_test = mlplab.flatten_scale(x_train[:3000]), mlplab.flatten_scale(x_test[:1000])
    x_tr, y_tr, x_val, y_val = mlplab.train_val_split(x, y_train[:3000], val_fraction=0.1, seed=0)
    model = mlplab.build_model(config.model, 784, 10, seed=0)
    history = mlplab.fit(model, config.training, (x_tr, y_tr), (x_val, y_val),
                         callbacks=mlplab.standard_callbacks(config.training, verbose=0))
    assert len(history.history["val_accuracy"]) == 1
    scores = mlplab.evaluate(model, (x_test, y_test[:1000]))
    assert scores["accuracy"] > 0.8
    run = mlplab.train_run(config, out=tmp_path / "wide", limit=1000, verbose=0)
    saved = mlplab.load_model(tmp_path / "wide")
    assert saved.metrics["test_accuracy"] == run.metrics["test_accuracy"]


def test_import_mlplab_does_not_import_torch():
    code = "import sys, mlplab; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
