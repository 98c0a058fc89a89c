"""Progress for a callback: nothing when nobody listens, a few snapshots a second otherwise,
each new stage at once, and the final numbers at the end."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest

from memory_source import MemorySource
from neptune_backup_async import Progress, ProgressCallbackError, backup
from neptune_backup_async.engine.progress import EVERY, ProgressFeed
from neptune_backup_async.engine.recorder import Recorder
from neptune_backup_async.format.report import BACKING_UP, CHECKING_PROJECTS, listing
from neptune_backup_async.testing import MINIMAL, generate


class SpyReport:
    """Stands in for a BackupReport: counts the snapshots taken."""

    def __init__(self) -> None:
        self.stage = CHECKING_PROJECTS
        self.bytes_written = 0
        self.snapshots = 0

    def progress(self) -> Progress:
        self.snapshots += 1
        return Progress(0, 0, 0, self.bytes_written, False, self.stage)


def test_without_a_callback_no_snapshot_is_ever_taken() -> None:
    report: Any = SpyReport()
    recorder = Recorder(report)
    for _ in range(1000):
        recorder.count_bytes(10)
    report.stage = BACKING_UP
    recorder.changed()
    recorder.changed(final=True)
    assert report.snapshots == 0
    assert report.bytes_written == 10_000


def test_snapshots_are_rate_limited_but_stages_and_the_end_go_out_at_once() -> None:
    report: Any = SpyReport()
    now = [100.0]
    seen: list[tuple[str, int]] = []
    feed = ProgressFeed(report, lambda p: seen.append((p.stage, p.bytes_written)), clock=lambda: now[0])

    def change(**kwargs: Any) -> None:
        report.bytes_written += 1
        feed.changed(**kwargs)

    change()  # the first goes out
    for _ in range(50):
        change()  # within the same tenth of a second: held back
    assert seen == [(CHECKING_PROJECTS, 1)]
    report.stage = listing("w/p")
    change()  # a new stage: at once
    now[0] += EVERY / 2
    change()
    assert seen[-1] == (listing("w/p"), 52)
    now[0] += EVERY / 2
    change()  # a tenth of a second after the last one
    assert seen[-1] == (listing("w/p"), 54)
    report.stage = BACKING_UP
    change()
    change()
    change(final=True)  # the end: the final numbers, whatever the clock says
    assert seen[-2:] == [(BACKING_UP, 55), (BACKING_UP, 57)]
    assert len(seen) == 5
    assert report.snapshots == 5


def test_a_callback_that_raises_stops_with_progress_callback_error() -> None:
    def broken(p: Progress) -> None:
        raise OSError("the terminal went away")

    feed = ProgressFeed(SpyReport(), broken)  # type: ignore[arg-type]
    with pytest.raises(ProgressCallbackError, match="raised OSError: the terminal went away") as raised:
        feed.changed()
    assert isinstance(raised.value.__cause__, OSError)


def test_a_backup_calls_back_far_less_than_it_writes_and_ends_on_its_final_numbers(tmp_path: Path) -> None:
    world = generate(replace(MINIMAL, runs_per_project=150, float_series=2, float_series_length=20))
    seen: list[Progress] = []
    with MemorySource(world) as source:
        started = time.monotonic()
        report = anyio.run(
            lambda: backup("all", tmp_path, source=source, concurrency=16, progress=seen.append)
        )
        elapsed = time.monotonic() - started
    files = sum(1 for p in tmp_path.rglob("*") if p.is_file() and p.name != "backup-report.json")
    assert report.exit_code == 0 and files >= 4 * 150  # two series, simple values and a manifest a run
    stages = {p.stage for p in seen}
    assert stages == {CHECKING_PROJECTS, listing("workspace-0/project-0"), BACKING_UP}
    # At most one snapshot a tenth of a second, plus one per stage and the last.
    assert len(seen) <= elapsed / EVERY + len(stages) + 2
    assert len(seen) < files
    last = seen[-1]
    assert last == Progress(
        objects_found=151,  # the runs and the project's own fields
        objects_done=151,
        objects_failed=0,
        bytes_written=report.bytes_written,
        listing_done=True,
        stage=BACKING_UP,
        retries=0,
    )
