"""The words of summaries: sizes people read, singular and plural, what a rerun did, when a backup ran."""

from __future__ import annotations

import datetime as dt

import pytest

from neptune_backup_async.format.report import (
    BackupReport,
    Note,
    ProjectSummary,
    human_size,
    plural,
    retries_text,
    summarize,
    when_line,
)

UTC = dt.timezone.utc


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 kB"),
        (1500, "1.5 kB"),
        (12_345, "12 kB"),
        (999_499, "999 kB"),
        (999_500, "1.0 MB"),
        (583_000_000, "583 MB"),
        (3_400_000_000, "3.4 GB"),
        (2 * 10**18, "2000 PB"),
    ],
)
def test_human_sizes(size: int, shown: str) -> None:
    assert human_size(size) == shown


def test_plural_and_retries() -> None:
    assert [plural(1, "run"), plural(2, "run"), plural(0, "run")] == ["1 run", "2 runs", "0 runs"]
    assert plural(1, "retry", "retries") == "1 retry" and plural(3, "retry", "retries") == "3 retries"
    assert retries_text({"HTTP 503": 1}) == "1 retry (HTTP 503: 1)"
    assert retries_text({"HTTP 429": 2, "HTTP 503": 5}) == "7 retries (HTTP 503: 5, HTTP 429 (throttled): 2)"


def report_with(**counts: tuple[int, int, int, int]) -> BackupReport:
    """A report of one project ws/p; counts per kind: (found, done, unchanged, failed)."""
    report = BackupReport(
        destination="/b",
        started_at=dt.datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC),
        finished_at=dt.datetime(2026, 5, 1, 12, 0, 3, 500_000, tzinfo=UTC),
    )
    report.projects["ws/p"] = ProjectSummary()
    for kind, (found, done, unchanged, failed) in counts.items():
        c = report.projects["ws/p"].counts[kind]
        c.found, c.done, c.unchanged, c.failed = found, done, unchanged, failed
    return report


def test_a_rerun_that_found_nothing_changed_says_so() -> None:
    report = report_with(run=(3, 3, 3, 0), model=(1, 1, 1, 0), project=(1, 1, 1, 0))
    report.previous_backup = dt.datetime(2026, 4, 30, 23, 5, 9, tzinfo=UTC)
    assert report.summary() == (
        "Nothing changed since the last backup (2026-04-30 23:05:09 UTC): 3 runs, 1 model and 1 project folder,"
        " all as they were (checked in 3.5s)."
    )
    report.notices.append(
        Note("ws/p", "P-9", None, "no longer listed by Neptune (deleted or trashed); its copy is kept")
    )
    assert report.summary().startswith(
        "Done in 3.5s: 1 project; 3 of 3 runs backed up (3 unchanged, 0 failed);"
    )


def test_a_backup_summary_in_words() -> None:
    report = report_with(run=(2, 1, 0, 1), modelVersion=(1, 1, 0, 0))
    report.fields_done, report.fields_failed, report.bytes_written = 1, 1, 12_345
    report.retries = {"HTTP 503": 4}
    report.failures.append(Note("ws/p", "P-2", "data/x", "HTTP 404"))
    assert report.summary().splitlines() == [
        "Done in 3.5s: 1 project; 1 of 2 runs backed up (0 unchanged, 1 failed);"
        " 1 of 1 model version backed up (0 unchanged, 0 failed).",
        "  1 field saved, 1 failed; 12 kB written.",
        "  4 retries (HTTP 503: 4)",
        "  failed: ws/p/P-2/data/x: HTTP 404",
    ]


def test_a_dry_run_summary_in_words() -> None:
    report = report_with(run=(1, 0, 0, 0), model=(2, 0, 0, 0), project=(1, 0, 0, 0))
    report.dry_run = True
    report.projects["ws/p"].planned = {"file": [1, 1_500], "floatSeries": [3, 0]}
    assert report.summary().splitlines()[1:] == [
        "  ws/p: 1 run, 2 models and its own fields",
        "  file: 1 field, 1.5 kB",
        "  floatSeries: 3 fields",
        "  at least 1.5 kB that the listing gives sizes for (series not counted)",
    ]


def test_when_a_backup_ran() -> None:
    doc = report_with(run=(1, 1, 0, 0)).to_json()
    assert when_line(doc) == "Backup started 2026-05-01 12:00:00 UTC, finished 12:00:03 UTC."
    assert summarize(doc).startswith("Done in 3.5s")
    doc["finished_at"] = "2026-05-02T01:00:00.000+00:00"
    assert when_line(doc) == "Backup started 2026-05-01 12:00:00 UTC, finished 2026-05-02 01:00:00 UTC."
    doc["finished_at"] = None
    assert when_line(doc).startswith("Backup started 2026-05-01 12:00:00 UTC; it has no end time")
