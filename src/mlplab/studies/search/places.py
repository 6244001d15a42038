"""Exactly N complete trials, however workers interleave: which trial takes one of the study's N places.

Workers (processes on one machine, or machines on one PostgreSQL study) each ask the study for a
trial and then decide, from the study alone, whether that trial may run. A count taken at one
moment ("fewer than N complete + running? then run") is a race: two workers read the same count
and both take the last place; it is the race of Optuna's MaxTrialsCallback too (optuna#3518: with
its default states m workers give N + m trials, and counting RUNNING trials keeps stale ones
forever). Here the decision is ordered instead. Every storage hands out trial numbers in creation
order (the journal file appends under a lock; RDBStorage numbers a trial inside a transaction
that locks the study's row), so the numbers are one order every worker sees the same way:

    trial T runs  <=>  fewer than N trials numbered below T are COMPLETE, RUNNING or WAITING
                       (or failed and about to be re-queued, see below).

Why that gives at most N: take the highest-numbered of any N + 1 complete trials. The N others
were created before it, so when it checked they all existed, and each was WAITING, RUNNING or
COMPLETE (those trials end COMPLETE, and FAIL and PRUNED are final), so each was counted and it
was told off. Nothing later can change a decision already taken, since a trial created after T has
a higher number. Why it reaches N: a told-off trial is pruned, so it holds no place, and workers
keep asking while fewer than N are complete. A trial that fails drops out, so a trial asked later
(its retry among them) takes its place.

Failed and about to be re-queued: a dead worker's trial is failed first and its retry (same
parameters, WAITING) added just after, by Optuna's heartbeat callback or by the journal's reaper.
A fresh trial asked in between would take the place and the retry would be told off: still N, but
the killed trial's parameters never run. So a failed trial still holds its place while its retry is
due: failed without a `failure` user attr (a trial that failed in its own worker, by a non-finite
loss or an error, carries one and is not retried), with retries left, no retry numbered up to T,
and failed less than PENDING_RETRY_SECONDS ago (a reaper that died between the two steps frees the
place after that; counting a place too many only tells a trial off, so this never breaks N).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

MAX_RETRY = 3  # re-queues of a dead worker's trial (Optuna's RetryHeartbeatStaleTrialCallback)
PENDING_RETRY_SECONDS = 60.0
TOLD_OFF = "skipped"  # the user attr of a trial told off (pruned)


def _state(trial: Any) -> str:
    return trial.state.name


def _retried(trials: Iterable[Any], up_to: int | None = None) -> set[int]:
    """Numbers of failed trials that have a retry (numbered up to `up_to`, when given)."""
    done: set[int] = set()
    for t in trials:
        if up_to is None or t.number <= up_to:
            done.update(t.system_attrs.get("retry_history", ()))
    return done


def retry_due(trial: Any, retried: set[int], now: datetime) -> bool:
    """A failed trial whose retry a reaper is about to add (see the module's docstring)."""
    if _state(trial) != "FAIL" or "failure" in trial.user_attrs or trial.number in retried:
        return False
    if len(trial.system_attrs.get("retry_history", ())) >= MAX_RETRY or trial.datetime_complete is None:
        return False
    return (now - trial.datetime_complete).total_seconds() < PENDING_RETRY_SECONDS


def holds_place(trial: Any, retried: set[int], now: datetime) -> bool:
    return _state(trial) in ("COMPLETE", "RUNNING", "WAITING") or retry_due(trial, retried, now)


def takes_place(number: int, trials: list[Any], wanted: int, *, now: datetime | None = None) -> bool:
    """Whether trial `number` may run: fewer than `wanted` trials numbered below it hold a place."""
    now = now or datetime.now()
    retried = _retried(trials, up_to=number)
    ahead = sum(1 for t in trials if t.number < number and holds_place(t, retried, now))
    return ahead < wanted


def places_taken(trials: list[Any], *, now: datetime | None = None) -> int:
    """Places held now (complete, running, waiting, failed with a retry due): a worker asks for a
    new trial only while this is below the wanted count, or a waiting trial is there to pop."""
    now = now or datetime.now()
    retried = _retried(trials)
    return sum(1 for t in trials if holds_place(t, retried, now))
