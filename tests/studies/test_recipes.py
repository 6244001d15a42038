"""The training recipes: each a shipped config within its row's limits, found by dataset, and one
really learning on a slice of MNIST."""

from __future__ import annotations

import json

import pytest

from mlplab.cli.main import main
from mlplab.config import load_config, shipped_configs
from mlplab.model import summarize
from mlplab.studies.recipes import RECIPES, Recipe, recipe, recipes_for


@pytest.mark.parametrize("item", RECIPES, ids=lambda r: r.config)
def test_every_recipe_is_a_shipped_config_within_its_limits(item):
    config = load_config(item.config)
    assert config.name == item.config and item.config in shipped_configs()
    params = summarize(config.model, 784, 10).total_params
    if item.max_params is not None:
        assert params <= item.max_params
    if not item.augmentation:
        assert config.training.augment is None or not config.training.augment.active
    # A recipe trains on all the training images for fixed epochs: nothing for the test set to choose.
    assert config.training.early_stopping is None and config.training.validation_split == 0


def test_every_shipped_recipe_config_is_a_listed_recipe():
    assert {name for name in shipped_configs() if name.startswith("recipe-")} == {r.config for r in RECIPES}


def test_recipes_are_found_by_dataset_in_the_tables_order():
    assert recipes_for("mnist") == ("recipe-small-40k", "recipe-670k", "recipe-mlp", "recipe-mlp-augment")
    assert recipes_for("fashion-mnist") == recipes_for("FMNIST") == ("recipe-fashion",)
    assert recipes_for("kmnist") == () and recipes_for("idx:/somewhere") == ()


def test_a_recipe_is_validated_and_looked_up_by_name():
    with pytest.raises(ValueError, match="budget_s"):
        Recipe("x", "x", budget_s=0, target=0.9)
    with pytest.raises(ValueError, match="target"):
        Recipe("x", "x", budget_s=10, target=97.5)  # a percentage where a fraction belongs
    assert recipe("recipe-670k").budget_s == 180
    with pytest.raises(KeyError, match="recipe-670k"):
        recipe("recipe-nope")


def test_the_small_recipe_learns_on_a_slice_of_mnist(mnist_dir, tmp_path):
    out = tmp_path / "small"
    code = main(["train", "recipe-small-40k", "--limit", "3000", "--epochs", "4", "--out", str(out), "--verbose", "0"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_samples"] == 3000 and metrics["epochs_run"] == 4
    assert metrics["test_accuracy"] > 0.85  # 3,000 images, 4 epochs; a model that does not learn scores ~0.1
