"""How a run ended, as an exit status: only an interruption's signal changes the table's answer."""

from __future__ import annotations

import pytest

from mlplab.runs.result import EXIT_STATUS, StopCause, exit_status


@pytest.mark.parametrize("cause", [c for c in StopCause if c is not StopCause.INTERRUPTED])
def test_a_signal_name_changes_nothing_for_a_run_that_was_not_interrupted(cause):
    # exit_status is public: whoever passes a signal with another cause still gets that cause's status
    assert exit_status(cause, "SIGTERM") == exit_status(cause) == EXIT_STATUS[cause]


def test_an_interruption_exits_as_the_shell_would_for_its_signal():
    assert exit_status(StopCause.INTERRUPTED, "SIGTERM") == 143
    assert exit_status(StopCause.INTERRUPTED, "SIGINT") == exit_status(StopCause.INTERRUPTED) == 130
    assert exit_status(StopCause.INTERRUPTED, "NOT-A-SIGNAL") == 130  # unknown: as Ctrl-C
