"""The training recipes: shipped configs that take an MLP as far as a time budget allows.

Each recipe is an ordinary shipped config (`mlplab train recipe-670k`); this module holds what the
config itself cannot say: which row of "How far can an MLP go" it answers, under which limits
(parameters, augmentation, a training-time budget on a 2-core CPU) and with which target. The
configs were chosen on a validation split (`bench/recipe_search.py`), then measured on the test set
once by `bench/recipes.py`; docs/recipes.md has the figures.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlplab.config import load_config
from mlplab.data.registry import ALIASES


@dataclass(frozen=True)
class Recipe:
    config: str  # the shipped config's name
    title: str  # the row of the README's table
    budget_s: float  # training wall time allowed on the 2-core development CPU
    target: float  # test accuracy aimed at (mean over seeds)
    max_params: int | None = None  # None: any size
    augmentation: bool = True  # False: the recipe must not augment

    def __post_init__(self) -> None:
        if self.budget_s <= 0 or not 0 < self.target <= 1:
            raise ValueError(f"recipe {self.config}: budget_s must be > 0 and target in (0, 1]")


# In the order of the README's table (the rows).
RECIPES: tuple[Recipe, ...] = (
    Recipe("recipe-small-40k", "a small model, ≤ 41k parameters", 30, 0.975, max_params=41_000),
    Recipe("recipe-670k", "≤ 670k parameters, no augmentation", 180, 0.988, max_params=670_000, augmentation=False),
    Recipe("recipe-mlp", "any MLP, no augmentation", 600, 0.990, augmentation=False),
    Recipe("recipe-mlp-augment", "any MLP, with augmentation", 1200, 0.994),
    Recipe("recipe-fashion", "Fashion-MNIST, any MLP", 600, 0.905),
)


def recipe(name: str) -> Recipe:
    for item in RECIPES:
        if item.config == name:
            return item
    raise KeyError(f"no recipe named {name!r} (recipes: {', '.join(r.config for r in RECIPES)})")


def recipes_for(dataset: str) -> tuple[str, ...]:
    """The recipes whose config trains on `dataset` (`fmnist` names Fashion-MNIST too); none for
    other data. A recipe is tuned for its dataset, and accuracies on two datasets are not comparable."""
    key = dataset.strip().lower()
    key = ALIASES.get(key, key)
    return tuple(item.config for item in RECIPES if load_config(item.config).dataset == key)
