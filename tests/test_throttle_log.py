"""What the log and the summary say of 429s: the new lows of the requests in flight, and the
seconds waited, summed over requests (issue 23.11)."""

from __future__ import annotations

import datetime as dt

import pytest

from neptune_backup_async.engine.limiter import Gate
from neptune_backup_async.format.report import BackupReport


def test_only_the_new_lows_after_429s_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    gate = Gate(4, start=4)
    with caplog.at_level("DEBUG", logger="neptune_backup_async"):
        gate.congested(0)  # 4 -> 2: a new low
        while gate.limit < 4:  # grows back, one at a time, without a word
            gate.completed(gate.limit)
        gate.congested(1)  # 4 -> 2 again: no lower
        while gate.limit < 3:
            gate.completed(gate.limit)
        gate.congested(2)  # 3 -> 2
        gate.congested(3)  # 2 -> 1: lower again
    assert caplog.messages == ["requests in flight: at most 2", "requests in flight: at most 1"]


def test_the_summary_says_the_throttled_seconds_are_summed_over_requests() -> None:
    report = BackupReport(destination="/backup", started_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    report.retries = {"HTTP 429": 40}
    report.throttled_seconds = 88.0
    assert (
        "  40 retries (HTTP 429 (throttled): 40); throttled requests waited 88.0 s in all (summed over"
        " requests, not wall time)" in report.summary().splitlines()
    )
