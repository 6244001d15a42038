"""Where a study lives: a journal file in the search folder by default, or a database URL.

The journal file (Optuna's JournalStorage with its file backend) needs no server and is safe for
several processes on one machine. A PostgreSQL (or MySQL, SQLite) URL goes through Optuna's
RDBStorage with heartbeats, so a worker that dies mid-trial has its trial failed and re-queued.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlplab.errors import ConfigError

JOURNAL_NAME = "study.journal"


def normalise_url(url: str) -> str:
    """`postgresql://` -> `postgresql+psycopg://` (psycopg 3, the driver the [search] extra installs)."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain):]
    return url


def describe_url(url: str) -> str:
    """The URL without its password, for messages and reports."""
    head, sep, tail = url.partition("://")
    if sep and "@" in tail:
        creds, _, rest = tail.rpartition("@")
        user = creds.split(":", 1)[0]
        return f"{head}://{user}:***@{rest}" if ":" in creds else url
    return url


def is_database(url: str | None) -> bool:
    return bool(url) and "://" in str(url)


def open_storage(url: str | None, out: Path, *, heartbeat: int = 60) -> Any:
    """An Optuna storage for `url` (None: the journal file in `out`)."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if not is_database(url):
        path = Path(url) if url else Path(out) / JOURNAL_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if heartbeat < 1:
        raise ConfigError(f"--heartbeat must be at least 1 second, got {heartbeat}")
    full = normalise_url(str(url))
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                full, heartbeat_interval=heartbeat, grace_period=2 * heartbeat,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
                engine_kwargs={"pool_pre_ping": True} if full.startswith("postgresql") else None,
            )
    except ModuleNotFoundError as exc:
        raise ConfigError(f"--storage {describe_url(str(url))}: the database driver is missing ({exc.name}); "
                          "install it with: pip install 'mlplab[search]'") from None
    except Exception as exc:  # SQLAlchemy's OperationalError and kin: one line, no password
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"--storage {describe_url(str(url))}: cannot open the database: {reason}") from None
