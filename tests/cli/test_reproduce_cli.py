"""`mlplab reproduce` end to end on a slice of the real MNIST, and `mlplab compare` on its runs."""

from __future__ import annotations

import base64
import io
import json
import re

import pytest
from PIL import Image

from mlplab.cli.main import main
from mlplab.config import load_config
from mlplab.model import summarize


@pytest.fixture(scope="module")
def reproduced(mnist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    code = main(["reproduce", "--limit", "1500", "--max-epochs", "2", "--seeds", "2", "--out", str(out), "--verbose", "0"])
    assert code == 0
    return out


def test_every_artefact_exists_and_is_consistent(reproduced, capsys):
    out = reproduced
    for name in ("report.html", "comparison.png", "accuracy_vs_cost.png", "summary.csv", "summary.json", "summary.md"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    rows = {row["model"]: row for row in summary["models"]}
    assert list(rows) == ["tutorial-50-25", "tutorial-512-512", "tutorial-128-64"]
    for name, row in rows.items():
        assert row["params"] == summarize(load_config(name).model).total_params
        assert row["seeds"] == 2
        for seed_row in row["per_seed"]:
            run = seed_row["run_dir"]
            history = json.loads((out / "runs" / f"{name}-seed{seed_row['seed']}" / "history.json").read_text())
            assert len(history["rows"]) == seed_row["epochs_run"] <= 2
            assert main(["evaluate", run, "--json"]) == 0
            evaluated = json.loads(capsys.readouterr().out)
            assert evaluated["test_accuracy"] == seed_row["test_accuracy"]
        assert row["test_accuracy_std"] is not None and row["test_accuracy_ci_low"] <= row["test_accuracy"] <= row["test_accuracy_ci_high"]
        assert (out / f"confusion_{name}.png").is_file() and (out / f"mistakes_{name}.png").is_file()
    assert rows["tutorial-512-512"]["published_accuracy"] == 0.9805
    assert any("model2.fit" in note for note in summary["notes"])


def test_report_html_is_self_contained_and_every_image_decodes(reproduced):
    html = (reproduced / "report.html").read_text()
    sources = re.findall(r'<img[^>]+src="([^"]+)"', html)
    assert len(sources) >= 2 + 2 * 3  # curves, cost; per model mistakes and weights (confusion matrices are HTML tables)
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).verify()
    assert not re.search(r'(src|href)="https?://', html)
    assert "tutorial-512-512" in html and "model2.fit" in html


def test_compare_works_on_arbitrary_runs(reproduced, tmp_path, capsys):
    runs = [str(reproduced / "runs" / "tutorial-50-25-seed1"), str(reproduced / "runs" / "tutorial-128-64-seed0")]
    assert main(["compare", *runs, "--out", str(tmp_path / "cmp")]) == 0
    summary = json.loads((tmp_path / "cmp" / "summary.json").read_text())
    assert [row["model"] for row in summary["models"]] == ["tutorial-50-25", "tutorial-128-64"]
    assert (tmp_path / "cmp" / "report.html").is_file()
    assert main(["compare", str(tmp_path), "--out", str(tmp_path / "x")]) == 2


def test_validate_on_test_reproduces_the_tutorial_literally_and_says_so(mnist_dir, tmp_path):
    out = tmp_path / "literal"
    code = main(["reproduce", "--validate-on", "test", "--limit", "800", "--max-epochs", "1", "--out", str(out), "--verbose", "0"])
    assert code == 0
    metrics = json.loads((out / "runs" / "tutorial-512-512-seed0" / "metrics.json").read_text())
    assert metrics["validate_on"] == "test" and metrics["train_samples"] == 800 and metrics["refit"] is None
    history = json.loads((out / "runs" / "tutorial-512-512-seed0" / "history.json").read_text())
    assert history["rows"][0]["val_accuracy"] == pytest.approx(metrics["test_accuracy"])  # the test set was the validation set
    assert "optimistic" in (out / "report.html").read_text()


def test_a_run_that_cannot_finish_stops_reproduce_with_its_exit_status(mnist_dir, tmp_path, capsys, monkeypatch):
    import mlplab.studies.tutorial as comparison
    from mlplab.config import load_config as real_load_config

    def diverging(name):  # every model trained with an absurd learning rate: the loss goes non-finite
        return real_load_config(name).with_overrides(
            {"training.optimizer": {"name": "sgd", "learning_rate": 1e6}, "training.early_stopping": None}
        )

    monkeypatch.setattr(comparison, "load_config", diverging)
    code = main(["reproduce", "--limit", "1000", "--max-epochs", "3", "--out", str(tmp_path / "r"), "--verbose", "0"])
    err = capsys.readouterr().err
    assert code == 3 and "non-finite loss" in err and err.startswith("error: ")
    assert (tmp_path / "r" / "runs" / "tutorial-50-25-seed0" / "model.safetensors").is_file()  # kept what was saved


def test_with_recipes_adds_the_recipes_to_the_tutorials_report(mnist_dir, tmp_path):
    out = tmp_path / "recipes"
    code = main(["reproduce", "--with-recipes", "--limit", "300", "--max-epochs", "1", "--out", str(out), "--verbose", "0"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [row["model"] for row in summary["models"]] == [
        "tutorial-50-25", "tutorial-512-512", "tutorial-128-64",  # the tutorial's three, as they are
        "recipe-small-40k", "recipe-670k", "recipe-mlp", "recipe-mlp-augment"]
    rows = {row["model"]: row for row in summary["models"]}
    assert rows["recipe-mlp"]["params"] == summarize(load_config("recipe-mlp").model).total_params
    assert rows["recipe-670k"]["train_flops"] > rows["recipe-small-40k"]["train_flops"] > 0
    assert any("recipe-*" in note for note in summary["notes"])
    html = (out / "report.html").read_text()
    assert "recipe-mlp-augment" in html and (out / "accuracy_vs_cost.png").is_file()


def test_with_recipes_on_a_dataset_without_recipes_is_a_one_line_error(mnist_dir, tmp_path, capsys):
    code = main(["reproduce", "--with-recipes", "--dataset", "kmnist", "--limit", "100", "--out", str(tmp_path / "k")])
    assert code == 2
    assert capsys.readouterr().err.strip().startswith("error: no recipes for dataset 'kmnist'")
    assert not (tmp_path / "k").exists()  # refused before anything was created


def test_each_models_seeds_were_trained_as_one_pack(reproduced):
    for name in ("tutorial-50-25", "tutorial-512-512", "tutorial-128-64"):
        for seed in (0, 1):
            info = json.loads((reproduced / "runs" / f"{name}-seed{seed}" / "run.json").read_text())
            assert info["pack"]["size"] == 2 and info["status"] == "finished", (name, seed)
