"""A run's config as the report shows it: only the keys that change what the run does.

A saved config lists every key with its default, so a constant learning-rate schedule still
carries `step_size` and `gamma`; shown on every model they read as if they mattered. The seed is
left out too: the report lists the seeds of a config beside it.
"""

from __future__ import annotations

import tomli_w

from mlplab.report.results import SEED_KEY

# Learning-rate schedule name -> the keys that schedule reads (mlplab.training.optim.learning_rate_at).
SCHEDULE_KEYS = {
    "constant": {"name"},
    "step": {"name", "step_size", "gamma"},
    "cosine": {"name", "min_learning_rate"},
    "one_cycle": {"name", "max_learning_rate", "warmup_fraction", "min_learning_rate"},
}


def effective_config(config: dict) -> dict:
    """`config` without the seed and without keys its choices make inert (a copy; unknown layouts
    pass through unchanged)."""
    out = dict(config)
    training = out.get(SEED_KEY[0])
    if isinstance(training, dict):
        training = {k: v for k, v in training.items() if k != SEED_KEY[1]}
        schedule = training.get("schedule")
        if isinstance(schedule, dict) and schedule.get("name", "constant") in SCHEDULE_KEYS:
            keep = SCHEDULE_KEYS[schedule.get("name", "constant")]
            if schedule.get("warmup_epochs"):  # shown only where it warms up
                keep = keep | {"warmup_epochs"}
            training["schedule"] = {k: v for k, v in schedule.items() if k in keep}
        out[SEED_KEY[0]] = training
    return out


def config_text(config: dict) -> str:
    """TOML of the effective config ('' for none; a config that was not TOML is shown as it came)."""
    if not config:
        return ""
    if set(config) == {"text"}:
        return str(config["text"])
    return tomli_w.dumps(effective_config(config))
