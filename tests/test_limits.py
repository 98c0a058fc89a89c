"""One knob: every thread and task of a backup stays under bounds derived from --concurrency,
and one huge run or image series can still use the whole of it."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from expect import check_backup
from neptune_backup_async import Progress, backup
from neptune_backup_async.engine.limiter import Limits, each
from neptune_backup_async.errors import leading_error
from neptune_backup_async.testing import MINIMAL, Faults, Gather, generate, serve


@pytest.mark.anyio
async def test_each_works_on_every_item_with_all_its_tasks_and_no_more() -> None:
    running, peak, done = 0, 0, []
    all_busy = anyio.Event()

    async def work(item: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if running == 3:
            all_busy.set()
        await all_busy.wait()  # a pool of fewer than 3 tasks would never get past this
        done.append(item)
        running -= 1

    with anyio.fail_after(10):  # a guard against a hang, not a measure
        await each(list(range(50)), work, 3)
    assert sorted(done) == list(range(50))
    assert peak == 3


@pytest.mark.anyio
async def test_each_stops_at_the_first_error() -> None:
    started = []

    async def work(item: int) -> None:
        started.append(item)
        if item == 0:
            raise OSError("the disk is full")
        await anyio.sleep_forever()

    with pytest.raises(Exception) as raised:  # a task group's bundle
        await each(list(range(100)), work, 4)
    assert str(leading_error(raised.value)) == "the disk is full"
    assert len(started) <= 4


def test_a_share_that_grows_widens_every_bound_it_sets() -> None:
    limits = Limits(2, 8)
    limits.widen(5)
    assert (limits.share, limits.gate.threads.total_tokens, limits.disk.total_tokens) == (5, 5, 5)
    assert limits.tasks == 8


def test_at_concurrency_1_a_backup_runs_at_most_two_threads_of_its_own(tmp_path: Path) -> None:
    """One for requests, one for the disk: reading the last backup, journals, whole files, commits."""
    world = generate(replace(MINIMAL, runs_per_project=4, float_series=3, images=12, file_size=10_000))
    earlier = set(threading.enumerate())  # an earlier test's abandoned threads are not this backup's
    peak = [0]

    def count(_: Progress | None = None) -> None:
        # anyio keeps its idle worker threads, so the last count holds every one it started.
        ours = [t for t in threading.enumerate() if t.name == "AnyIO worker thread" and t not in earlier]
        peak[0] = max(peak[0], len(ours))

    async def main() -> None:
        await backup("all", tmp_path, api_token=server.api_token, concurrency=1, progress=count)
        count()

    with serve(world, faults=Faults(latency=0.005)) as server:
        anyio.run(main)
    assert check_backup(world, tmp_path) == 5  # and the project's folder
    assert 1 <= peak[0] <= 2


def test_one_huge_image_series_uses_the_whole_concurrency(tmp_path: Path) -> None:
    world = generate(replace(MINIMAL, runs_per_project=1, float_series=0, parameters=1, images=40))
    gather = Gather(8, {"getImageSeriesValue"})  # the peak made certain by holding, not by timing
    with serve(world, faults=Faults(latency=0.03, gather=gather)) as server:
        anyio.run(lambda: backup("all", tmp_path, api_token=server.api_token, concurrency=8))
        peak = server.stats.max_in_flight
    assert check_backup(world, tmp_path) == 2  # and the project's folder
    assert gather.reached and peak == 8
