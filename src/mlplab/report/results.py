"""The types the report layer takes in (a trained model's results, the data it saw, as plain
in-memory values) and how runs are grouped for comparison.

The report layer knows nothing about training, run directories or the CLI; whoever gathers runs
builds `RunResult`s and calls `write_report`.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field

import numpy as np

from mlplab.errors import ConfigError

# Where a config keeps its seed: the one key that may differ between runs of the same config.
SEED_KEY = ("training", "seed")


@dataclass(frozen=True)
class DataFacts:
    """What a run was trained and tested on. Two runs saw the same data when their `key`s match."""

    name: str  # e.g. "mnist", "fashion-mnist", "folder:/path"
    source: str = ""  # where the files came from, as the data layer describes it
    checksum_verified: bool | None = None  # None: not recorded
    train_images: int | None = None  # the training split as loaded (after any limit)
    test_images: int | None = None
    fit_images: int | None = None  # what the weights were fitted on (training split minus validation)
    validation_images: int | None = None  # held out for early stopping (0: none)
    limit: int | None = None  # only the first `limit` training and test images were used

    @property
    def key(self) -> tuple[str, int | None]:
        return (self.name, self.limit)

    @property
    def label(self) -> str:
        return self.name if self.limit is None else f"{self.name} (first {self.limit:,} images)"

    @classmethod
    def from_dataset(cls, dataset, *, limit: int | None = None, fit_images: int | None = None,
                     validation_images: int | None = None) -> "DataFacts":
        """From a loaded dataset (anything with name, source, y_train and y_test; read, not imported).

        The data layer says in the source whether the copy's pinned checksums matched: "(verified
        sha256)", or "no pinned checksum matches"; a source saying neither leaves it unrecorded."""
        source = str(dataset.source)
        verified = True if "(verified sha256)" in source else False if "no pinned checksum" in source else None
        return cls(
            name=str(dataset.name), source=source, checksum_verified=verified,
            train_images=len(dataset.y_train), test_images=len(dataset.y_test),
            fit_images=fit_images, validation_images=validation_images, limit=limit,
        )


@dataclass
class RunResult:
    """One trained model (one seed)."""

    name: str  # model name, e.g. "tutorial-512-512"
    seed: int
    history: list[dict]  # one row per epoch: epoch (1-based), loss, accuracy, val_loss, val_accuracy, lr, seconds, samples_per_s
    params: int
    train_flops: int  # exact training FLOPs
    epochs_run: int
    best_epoch: int | None  # epoch whose weights were kept (None = last)
    wall_seconds: float
    test_loss: float
    test_accuracy: float
    y_true: np.ndarray  # int64 (M,)
    probs: np.ndarray  # float32 (M, C)
    test_images: np.ndarray  # uint8 (M, H, W)
    class_names: tuple[str, ...]
    first_layer_weights: np.ndarray  # float32 (units, H*W)
    run_dir: str | None = None
    config_text: str = ""  # the run's config as TOML (seed included)
    validated_on: str = "val"  # "val" (split of training data) or "test" (tutorial literal)
    dataset: DataFacts | None = None  # None: not recorded

    @property
    def kept_epoch(self) -> int:
        """The epoch whose weights the model holds (the last one when none was restored)."""
        return self.best_epoch if self.best_epoch is not None else self.epochs_run

    @property
    def y_pred(self) -> np.ndarray:
        return np.asarray(self.probs).argmax(axis=1)

    @property
    def dataset_key(self) -> tuple[str, int | None] | None:
        return self.dataset.key if self.dataset is not None else None

    def config(self) -> dict:
        """The config parsed from `config_text` ({} when there is none; raw text kept when it is not TOML)."""
        if not self.config_text.strip():
            return {}
        try:
            return tomllib.loads(self.config_text)
        except tomllib.TOMLDecodeError:
            return {"text": self.config_text}

    def config_hash(self) -> str:
        """12 hex digits of the config's content, seed left out: runs that differ only in their
        seed share it."""
        cfg = self.config()
        section = cfg.get(SEED_KEY[0])
        if isinstance(section, dict):
            cfg = {**cfg, SEED_KEY[0]: {k: v for k, v in section.items() if k != SEED_KEY[1]}}
        text = json.dumps(cfg, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]

    def max_epochs(self) -> int | None:
        """The epoch limit the config set (None when unknown)."""
        epochs = self.config().get("training", {}).get("epochs")
        return epochs if isinstance(epochs, int) and not isinstance(epochs, bool) and epochs >= 1 else None

    def check(self) -> None:
        """Raise ValueError naming the field when the arrays do not fit together."""
        where = f"run {self.name!r} seed {self.seed}"
        y, p, im = np.asarray(self.y_true), np.asarray(self.probs), np.asarray(self.test_images)
        if y.ndim != 1 or p.ndim != 2 or p.shape[0] != y.shape[0]:
            raise ValueError(f"{where}: probs {p.shape} does not match y_true {y.shape}")
        if p.shape[1] != len(self.class_names):
            raise ValueError(f"{where}: probs has {p.shape[1]} classes, class_names {len(self.class_names)}")
        if im.ndim != 3 or im.shape[0] != y.shape[0]:
            raise ValueError(f"{where}: test_images {im.shape} does not match y_true {y.shape}")
        w = np.asarray(self.first_layer_weights)
        if w.ndim != 2 or w.shape[1] != im.shape[1] * im.shape[2]:
            raise ValueError(f"{where}: first_layer_weights {w.shape} is not (units, {im.shape[1]}*{im.shape[2]})")
        if self.validated_on not in ("val", "test"):
            raise ValueError(f"{where}: validated_on must be 'val' or 'test', not {self.validated_on!r}")


@dataclass
class Group:
    """The runs of one config on one dataset: what the report aggregates over seeds."""

    label: str  # unique display name: the model name, plus what tells it apart where needed
    name: str
    config_hash: str
    dataset: DataFacts | None
    runs: list[RunResult] = field(default_factory=list)  # one per distinct seed, sorted by seed
    model_label: str = ""  # the label without the dataset (for tables that show the dataset beside it)

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.runs]

    @property
    def dataset_name(self) -> str | None:
        return self.dataset.name if self.dataset is not None else None


def _where(r: RunResult) -> str:
    return r.run_dir or f"{r.name} seed {r.seed}"


def _dataset_label(facts: DataFacts | None) -> str:
    return facts.label if facts is not None else "dataset not recorded"


def group_runs(results: list[RunResult], *, allow_mixed_datasets: bool = False) -> list[Group]:
    """Runs grouped by dataset, model name and config (seed aside), in order of first appearance.

    Refuses with a ConfigError: runs on different datasets (unless `allow_mixed_datasets`), and
    two runs of one config with the same seed (a duplicate would count as a second seed)."""
    datasets: dict = {}
    for r in results:
        datasets.setdefault(r.dataset_key, r.dataset)
    if len(datasets) > 1 and not allow_mixed_datasets:
        counts = {k: sum(r.dataset_key == k for r in results) for k in datasets}
        listed = ", ".join(f"{_dataset_label(datasets[k])}: {n} run{'s' if n != 1 else ''}" for k, n in counts.items())
        raise ConfigError(
            f"the runs use different datasets ({listed}); their accuracies are not comparable. "
            "Compare them separately, or allow it with --allow-mixed-datasets"
        )
    groups: dict[tuple, Group] = {}
    for r in results:
        key = (r.dataset_key, r.name, r.config_hash())
        g = groups.setdefault(key, Group("", r.name, key[2], r.dataset))
        same = next((o for o in g.runs if o.seed == r.seed), None)
        if same is not None and same.run_dir is not None and same.run_dir == r.run_dir:
            raise ConfigError(f"{r.run_dir} is given twice: one run would count as two seeds")
        if same is not None:
            raise ConfigError(
                f"{_where(same)} and {_where(r)} are the same config ({r.name}, config {key[2]}) with the same "
                f"seed {r.seed}: one run would count as two seeds; compare only one of them"
            )
        g.runs.append(r)
    out = list(groups.values())
    for g in out:
        g.runs.sort(key=lambda r: r.seed)
    _label(out, list(datasets.values()))
    return out


def _label(groups: list[Group], datasets: list[DataFacts | None]) -> None:
    """Unique labels: the model name, then its dataset where datasets are mixed (its name, or its
    full label where two share a name), then its config hash where one name has several configs."""
    names = [d.name if d is not None else None for d in datasets]
    short = len(set(names)) == len(names)
    for g in groups:
        suffix = g.dataset.name if short and g.dataset is not None else _dataset_label(g.dataset)
        g.label = g.name + (f" · {suffix}" if len(datasets) > 1 else "")
        g.model_label = g.name
    labels = [g.label for g in groups]
    for g in groups:
        if labels.count(g.label) > 1:
            g.label += f" [config {g.config_hash[:6]}]"
            g.model_label += f" [config {g.config_hash[:6]}]"


def representative(runs: list[RunResult]) -> RunResult:
    """The seed whose test accuracy is the median (lower median; ties go to the lowest seed)."""
    ordered = sorted(runs, key=lambda r: (r.test_accuracy, r.seed))
    return ordered[(len(ordered) - 1) // 2]


def slug(name: str) -> str:
    """A file-name-safe form of a model name."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return s or "model"


def unique_slugs(names) -> dict[str, str]:
    """{name: slug} with distinct slugs: names that differ only in characters a slug drops
    ("a b", "a/b") get -2, -3… so their files and anchors do not overwrite each other."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        base = s = slug(name)
        n = 1
        while s.lower() in taken:  # case-insensitive file systems
            n += 1
            s = f"{base}-{n}"
        taken.add(s.lower())
        out[name] = s
    return out
