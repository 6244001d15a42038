"""A search space: a base config plus ranges for any of its keys, read from TOML and checked in full.

    name = "my-space"
    base = "tutorial-128-64"          # a shipped config's name, or a .toml file (relative to this file)
    fixed = { "training.epochs" = 30 } # overrides every trial shares

    [layers]                           # the hidden-layer stack (optional)
    count = { low = 1, high = 3 }      # layer k's units are searched only when there are >= k layers
    units = { low = 16, high = 1024, log = true }
    dropout = { low = 0.0, high = 0.5 } # one rate after every dense layer (0: no dropout layer)
    activation = "relu"

    [params."training.optimizer.learning_rate"]
    low = 1e-4
    high = 1e-2
    log = true

    [params."training.optimizer.momentum"]
    low = 0.0
    high = 0.95
    when = { "training.optimizer.name" = "sgd" }   # searched only in trials that chose sgd

A range is `{low, high}` (ints when both are integers; `log = true`, `step`), or `{choices = [...]}`.
Every key and both ends of every range are applied to the base config at load time, so an unknown
key or a value the config refuses is an error naming the key, before any trial runs.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlplab.config import ExperimentConfig, load_config
from mlplab.errors import ConfigError

if TYPE_CHECKING:
    import optuna

LAYER_KEYS = {"count", "units", "dropout", "activation"}
TOP_KEYS = {"name", "description", "base", "fixed", "layers", "params"}
RANGE_KEYS = {"low", "high", "log", "step", "choices", "when"}


@dataclass(frozen=True)
class Range:
    """One searched value: an int or float range (optionally log-scaled or stepped), or a list of choices."""

    key: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # (other key, allowed values)

    @property
    def is_int(self) -> bool:
        return not self.choices and isinstance(self.low, int) and isinstance(self.high, int)

    def ends(self) -> list[Any]:
        """The values checked against the config at load time."""
        return list(self.choices) if self.choices else [self.low, self.high]

    def suggest(self, trial: "optuna.Trial") -> Any:
        if self.choices:
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.is_int:
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return trial.suggest_float(self.key, float(self.low), float(self.high), log=self.log, step=self.step)

    def applies(self, chosen: dict[str, Any]) -> bool:
        return all(chosen.get(key) in allowed for key, allowed in self.when)


@dataclass(frozen=True)
class SearchSpace:
    name: str
    base: ExperimentConfig
    fixed: dict[str, Any] = field(default_factory=dict)
    layer_count: Range | None = None
    units: Range | None = None
    dropout: Range | float | None = None
    activation: str = "relu"
    params: tuple[Range, ...] = ()
    description: str = ""
    source_text: str = ""  # the TOML, recorded with the study

    def sample(self, trial: "optuna.Trial") -> dict[str, Any]:
        """Ask the trial for a value of every range that applies; returns {key: value}."""
        chosen: dict[str, Any] = {}
        if self.layer_count is not None:
            count = self.layer_count.suggest(trial)
            chosen[self.layer_count.key] = count
            for k in range(1, count + 1):  # layer k's units exist only in trials with >= k layers
                chosen[f"layers.{k}.units"] = _with_key(self.units, f"layers.{k}.units").suggest(trial)  # type: ignore[arg-type]
            if isinstance(self.dropout, Range):
                chosen[self.dropout.key] = self.dropout.suggest(trial)
        for rng in self.params:  # in file order, so a `when` refers to a key sampled before it
            if rng.applies(chosen):
                chosen[rng.key] = rng.suggest(trial)
        return chosen

    def config_for(self, chosen: dict[str, Any], *, name: str) -> ExperimentConfig:
        """The trial's config: the base with `fixed`, the layer stack and the chosen values applied."""
        overrides: dict[str, Any] = {"name": name, **self.fixed}
        if self.layer_count is not None:
            count = chosen[self.layer_count.key]
            rate = chosen.get("layers.dropout", self.dropout if isinstance(self.dropout, (int, float)) else 0.0)
            overrides["model.layers"] = self._layers(count, [chosen[f"layers.{k}.units"] for k in range(1, count + 1)], rate)
        overrides.update({k: v for k, v in chosen.items() if not k.startswith("layers.")})
        return self.base.with_overrides(_order_tags_first(overrides))

    def _layers(self, count: int, units: list[int], rate: float) -> list[dict[str, Any]]:
        layers: list[dict[str, Any]] = []
        for k in range(count):
            layers.append({"type": "dense", "units": int(units[k]), "activation": self.activation})
            if rate and rate > 0:
                layers.append({"type": "dropout", "rate": float(rate)})
        return layers


def _with_key(rng: Range, key: str) -> Range:
    return Range(key, rng.low, rng.high, rng.log, rng.step, rng.choices, rng.when)


def _order_tags_first(overrides: dict[str, Any]) -> dict[str, Any]:
    """Apply `...optimizer.name` before `...optimizer.learning_rate`, so switching kinds keeps the rate."""
    return dict(sorted(overrides.items(), key=lambda kv: not kv[0].endswith((".name", ".type"))))


def shipped_spaces() -> dict[str, Path]:
    """The search spaces that come with mlplab, by name (`tutorial-space`)."""
    folder = resources.files("mlplab") / "configs" / "spaces"
    return {Path(p.name).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml")}


def load_space(name_or_path: str | Path) -> SearchSpace:
    """Read a search space from a TOML file or a shipped space's name; every problem names its key."""
    path = Path(name_or_path)
    if not path.is_file():
        shipped = shipped_spaces()
        if str(name_or_path) not in shipped:
            raise ConfigError(f"no search-space file or shipped space named {str(name_or_path)!r} "
                              f"(shipped: {', '.join(sorted(shipped))})")
        path = shipped[str(name_or_path)]
    try:
        text = path.read_text(encoding="utf-8")
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return space_from_dict(raw, source=str(path), folder=path.parent, text=text, default_name=path.stem)


def space_from_dict(raw: dict[str, Any], *, source: str = "space", folder: Path | None = None, text: str = "",
                    default_name: str = "space") -> SearchSpace:
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise ConfigError(f"{source}: {unknown[0]} is not a known key (known: {', '.join(sorted(TOP_KEYS))})")
    if "base" not in raw or not isinstance(raw["base"], str):
        raise ConfigError(f"{source}: base is required: a shipped config's name or a config file")
    base_ref = raw["base"]
    base_path = (folder / base_ref) if folder is not None and base_ref.endswith(".toml") else Path(base_ref)
    base = load_config(base_path if base_path.is_file() else base_ref)
    fixed = raw.get("fixed", {})
    if not isinstance(fixed, dict):
        raise ConfigError(f"{source}: fixed must be a table of config keys")
    base = _checked(base, fixed, source, "fixed")
    # A trial is a validation run: refitting each would double its cost; the front's models are
    # refit once at the end of the search instead.
    base = base.with_overrides({"training.refit": False})

    layer_count = units = None
    dropout: Range | float | None = None
    activation = "relu"
    layers = raw.get("layers")
    if layers is not None:
        if not isinstance(layers, dict):
            raise ConfigError(f"{source}: layers must be a table")
        extra = sorted(set(layers) - LAYER_KEYS)
        if extra:
            raise ConfigError(f"{source}: layers.{extra[0]} is not a known key (known: {', '.join(sorted(LAYER_KEYS))})")
        for needed in ("count", "units"):
            if needed not in layers:
                raise ConfigError(f"{source}: layers.{needed} is required")
        layer_count = _range("layers.count", layers["count"], source)
        if not layer_count.is_int and not all(isinstance(c, int) for c in layer_count.choices):
            raise ConfigError(f"{source}: layers.count must be whole numbers")
        if min(layer_count.ends()) < 1:
            raise ConfigError(f"{source}: layers.count must be at least 1, got {min(layer_count.ends())}")
        units = _range("layers.units", layers["units"], source)
        if min(units.ends()) < 1 or not (units.is_int or all(isinstance(c, int) for c in units.choices)):
            raise ConfigError(f"{source}: layers.units must be positive whole numbers")
        if "dropout" in layers:
            value = layers["dropout"]
            dropout = value if isinstance(value, (int, float)) and not isinstance(value, bool) else _range("layers.dropout", value, source)
            for rate in (dropout.ends() if isinstance(dropout, Range) else [dropout]):
                if not (isinstance(rate, (int, float)) and 0 <= rate < 1):
                    raise ConfigError(f"{source}: layers.dropout must be in [0, 1), got {rate!r}")
        activation = layers.get("activation", "relu")
        _checked(base, {"model.layers": [{"type": "dense", "units": 8, "activation": activation}]}, source, "layers.activation")

    params_raw = raw.get("params", {})
    if not isinstance(params_raw, dict):
        raise ConfigError(f"{source}: params must be a table of config keys")
    params = []
    for key, spec in params_raw.items():
        if key.startswith("layers.") or key == "model.layers" or (layers is not None and key.startswith("model.layers")):
            raise ConfigError(f"{source}: params.{key!r}: search the layer stack with the [layers] table")
        params.append(_range(key, spec, source))
    seen: set[str] = {"layers.count", "layers.dropout"} if layers is not None else set()
    for rng in params:
        for other, _ in rng.when:
            if other not in seen:
                raise ConfigError(f"{source}: params.{rng.key!r}: when refers to {other!r}, which is not searched before it")
        seen.add(rng.key)
    space = SearchSpace(
        name=str(raw.get("name", default_name)), base=base, fixed=dict(fixed), layer_count=layer_count, units=units,
        dropout=dropout, activation=activation, params=tuple(params), description=str(raw.get("description", "")),
        source_text=text,
    )
    _check_every_end(space, source)
    return space


def _range(key: str, spec: Any, source: str) -> Range:
    where = f"{source}: {key}" if key.startswith("layers.") else f"{source}: params.{key!r}"
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} must be a table such as {{ low = 1, high = 4 }} or {{ choices = [...] }}")
    extra = sorted(set(spec) - RANGE_KEYS)
    if extra:
        raise ConfigError(f"{where}: {extra[0]} is not a known key (known: {', '.join(sorted(RANGE_KEYS))})")
    when_raw = spec.get("when", {})
    if not isinstance(when_raw, dict):
        raise ConfigError(f"{where}: when must be a table {{ \"other.key\" = value or [values] }}")
    when = tuple((k, tuple(v) if isinstance(v, list) else (v,)) for k, v in when_raw.items())
    if "choices" in spec:
        if set(spec) - {"choices", "when"}:
            raise ConfigError(f"{where}: give either choices or low/high, not both")
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: choices must be a non-empty list")
        if len(set(map(repr, choices))) != len(choices):
            raise ConfigError(f"{where}: choices repeat a value")
        if any(isinstance(c, (dict, list)) for c in choices):
            raise ConfigError(f"{where}: choices must be numbers, strings or booleans")
        return Range(key, choices=tuple(choices), when=when)
    if "low" not in spec or "high" not in spec:
        raise ConfigError(f"{where} needs low and high (or choices)")
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    for label, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{where}: {label} must be a finite number, got {value!r}")
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be true or false, got {log!r}")
    if low > high:
        raise ConfigError(f"{where}: low {low} is above high {high}; the range is empty")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0, got {low}")
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0:
            raise ConfigError(f"{where}: step must be a positive number, got {step!r}")
        if log:
            raise ConfigError(f"{where}: step and log cannot be combined")
    both_int = isinstance(low, int) and isinstance(high, int)
    if not both_int:
        low, high = float(low), float(high)
    return Range(key, low, high, log, step, when=when)


def _checked(config: ExperimentConfig, overrides: dict[str, Any], source: str, label: str) -> ExperimentConfig:
    try:
        return config.with_overrides(_order_tags_first(overrides))
    except ConfigError as exc:
        raise ConfigError(f"{source}: {label}: {exc}") from None


def _check_every_end(space: SearchSpace, source: str) -> None:
    """Apply each end of each range (with the values its `when` needs) to the base config."""
    for rng in space.params:
        needs = {other: allowed[0] for other, allowed in rng.when if not other.startswith("layers.")}
        for value in rng.ends():
            overrides = {**needs, rng.key: value}
            try:
                space.base.with_overrides(_order_tags_first(overrides))
            except ConfigError as exc:
                detail = str(exc).split(": ", 1)[-1]
                raise ConfigError(f"{source}: params.{rng.key!r} = {value!r} is refused by the config: {detail}") from None
