"""Experiment configs: a model description plus a training section, read from TOML.

A config is named by a path to a `.toml` file or by the name of a shipped config
(`mlplab.config.shipped_configs()`). `--set key=value` overrides are applied to the raw
TOML before validation, so an override goes through exactly the checks a file does.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from mlplab.errors import ConfigError
from mlplab.model.spec import ModelSpec
from mlplab.safeio import read_regular_text
from mlplab.training.config import TrainingConfig
from mlplab.validation import union_member_names


class ExperimentConfig(BaseModel):
    """What `mlplab train` needs: a name, a model description and how to train it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "model"
    description: str = ""
    dataset: str = "mnist"
    model: ModelSpec
    training: TrainingConfig = TrainingConfig()

    @field_validator("name")
    @classmethod
    def _name_is_simple(cls, value: str) -> str:
        if not value or any(ch in value for ch in "/\\\0"):
            raise ValueError(f"must be a non-empty name without slashes, got {value!r}")
        return value

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    def with_overrides(self, overrides: dict[str, Any] | list[str]) -> "ExperimentConfig":
        """A copy with dotted-key overrides applied (`{"training.epochs": 3}` or `["training.epochs=3"]`)."""
        if isinstance(overrides, list):
            overrides = parse_assignments(overrides)
        # Only what was set, so that switching `training.optimizer.name` does not drag along
        # the old optimizer's defaults as unknown keys.
        raw = self.model_dump(mode="json", exclude_unset=True)
        full = self.model_dump(mode="json")
        for key, value in overrides.items():
            _set_dotted(raw, key, value, defaults=full)
        return config_from_dict(raw)


# The tutorial's three models, in the tutorial's order.
TUTORIAL_MODELS = ("tutorial-50-25", "tutorial-512-512", "tutorial-128-64")


def shipped_configs() -> dict[str, Path]:
    """The configs that come with mlplab, by name: the tutorial's three in its order, then the others."""
    folder = resources.files("mlplab") / "configs"
    found = {Path(p.name).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml")}
    order = [name for name in TUTORIAL_MODELS if name in found] + sorted(set(found) - set(TUTORIAL_MODELS))
    return {name: found[name] for name in order}


def load_config(name_or_path: str | Path) -> ExperimentConfig:
    """Read a config from a TOML file, or a shipped config by name."""
    path = Path(name_or_path)
    shipped = shipped_configs()
    if not path.is_file():
        if str(name_or_path) in shipped:
            path = shipped[str(name_or_path)]
        else:
            names = ", ".join(sorted(shipped))
            raise ConfigError(f"no config file or shipped config named {str(name_or_path)!r} (shipped: {names})")
    text = read_regular_text(path, error=ConfigError)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML: nested too deeply") from None
    return config_from_dict(raw, source=str(path))


def config_from_dict(raw: dict[str, Any], *, source: str = "config") -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {format_validation_error(exc)}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply") from None


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """`["training.epochs=3", "training.optimizer.name=adam"]` → typed values (parsed as TOML)."""
    parsed: dict[str, Any] = {}
    for item in assignments:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        parsed[key.strip()] = _parse_value(text.strip())
    return parsed


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word such as adam or val_accuracy
    except RecursionError:
        raise ConfigError(f"--set value nested too deeply: {text[:40]}...") from None


# The keys that say which kind a section is (an optimizer's name, a layer's type).
_TAG_KEYS = ("name", "type")


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any, defaults: Any = None) -> None:
    """Set `a.b[2].c` inside nested dicts/lists; `none` removes an optional section.

    `defaults` is the same config with its defaults filled in: a section the file leaves out
    (no [training.optimizer] table) starts from its default kind, so that overriding one of the
    default's values (`training.optimizer.learning_rate=0.01`) works.
    """
    parts = _split_key(dotted)
    node: Any = raw
    default: Any = defaults
    for i, part in enumerate(parts[:-1]):
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                raise ConfigError(f"--set {dotted}: no such key")
            nxt = node[part]
        else:
            nxt = node.get(part)
        default = _child(default, part)
        if nxt is None:
            nxt = {key: default[key] for key in _TAG_KEYS if isinstance(default, dict) and key in default}
            node[part] = nxt
        node = nxt
        if not isinstance(node, (dict, list)):
            raise ConfigError(f"--set {dotted}: {'.'.join(map(str, parts[: i + 1]))} is not a section")
    last = parts[-1]
    if isinstance(value, str) and value.lower() in ("none", "null"):
        value = None
    try:
        node[last] = value
    except (IndexError, TypeError):
        raise ConfigError(f"--set {dotted}: no such key") from None


def _child(node: Any, part: str | int) -> Any:
    if isinstance(part, int):
        return node[part] if isinstance(node, list) and part < len(node) else None
    return node.get(part) if isinstance(node, dict) else None


def _split_key(dotted: str) -> list[str | int]:
    parts: list[str | int] = []
    for piece in dotted.split("."):
        name, _, rest = piece.partition("[")
        if name:
            parts.append(name)
        while rest:
            index, _, rest = rest.partition("]")
            if not index.isdigit():
                raise ConfigError(f"--set {dotted}: bad index [{index}]")
            parts.append(int(index))
            rest = rest.removeprefix("[")
    return parts


def format_validation_error(exc: ValidationError) -> str:
    """pydantic's report as `layers[2].rate must be in [0, 1), got 1.5`, one problem per `;`."""
    return "; ".join(_format_one(err) for err in exc.errors())


_TYPE_ERRORS = {
    "int_type": "must be an integer", "float_type": "must be a number", "bool_type": "must be true or false",
    "string_type": "must be a string", "list_type": "must be a list", "dict_type": "must be a table",
    "model_type": "must be a table", "int_from_float": "must be an integer",
}


def _format_one(err: dict[str, Any]) -> str:
    # A union's member (a layer's `type`, an optimizer's `name`, a class name) is not a key the user
    # wrote; the last part always is (an unknown or missing key), even when it spells a tag.
    members = union_member_names()
    *parents, last = err["loc"] or ("",)
    loc = [part for part in parents if part not in members] + ([last] if last != "" else [])
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    kind, given = err["type"], err.get("input")
    if kind == "value_error":
        message = str(err["ctx"]["error"])
    elif kind == "extra_forbidden":
        message = "is not a known key"
    elif kind == "missing":
        message = "is required"
    elif kind in _TYPE_ERRORS:
        message = f"{_TYPE_ERRORS[kind]}, got {given!r}"
    elif kind == "literal_error":
        message = f"must be one of {err['ctx']['expected']}, got {given!r}"
    elif kind == "union_tag_invalid":
        message = f"{err['ctx']['discriminator'].strip(chr(39))} must be one of {err['ctx']['expected_tags']}, got {err['ctx']['tag']!r}"
    elif kind == "union_tag_not_found":
        message = f"needs a {err['ctx']['discriminator'].strip(chr(39))} key"
    else:
        message = f"{err['msg'][0].lower()}{err['msg'][1:]}, got {given!r}"
    return f"{path} {message}" if path else message
