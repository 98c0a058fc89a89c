"""Series pages that do not fit together are never written as a series: end to end, the real
neptune client against the fake server, whose pages repeat, overlap or skip points."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from cli_helpers import run_here
from expect import check_backup, check_series, folder_of
from neptune_backup_async import backup
from neptune_backup_async.format.report import BackupReport
from neptune_backup_async.remote.http import RetryPolicy
from neptune_backup_async.testing import MINIMAL, FakeNeptuneServer, World, generate, serve
from neptune_backup_async.testing import model as m

PROJECT = "workspace-0/project-0"
FLOATS, STRINGS = "metrics/train/loss", "logs/train"
LENGTH = 25_000  # three pages of 10,000: two boundaries


def long_series_world() -> World:
    spec = replace(
        MINIMAL,
        runs_per_project=1,
        parameters=1,
        float_series=1,
        float_series_length=LENGTH,
        string_series=1,
        string_series_length=LENGTH,
    )
    return generate(spec)


def run_backup(server: FakeNeptuneServer, dest: Path, concurrency: int = 4) -> BackupReport:
    fast = RetryPolicy(attempts=3, base=0.01, cap=0.05)
    return anyio.run(
        lambda: backup("all", dest, api_token=server.api_token, concurrency=concurrency, retry=fast)
    )


def series_paths(world: World) -> dict[str, str]:
    [run] = world.project(PROJECT).runs
    return {
        path: "getFloatSeriesValues" if isinstance(value, m.FloatSeries) else "getStringSeriesValues"
        for path, value in run.fields.items()
        if isinstance(value, (m.FloatSeries, m.StringSeries))
    }


def test_the_world_has_the_series_these_tests_name() -> None:
    assert series_paths(long_series_world()) == {
        FLOATS: "getFloatSeriesValues",
        STRINGS: "getStringSeriesValues",
    }


def test_pages_that_repeat_the_point_before_them_give_every_point_once(tmp_path: Path) -> None:
    world = long_series_world()
    with serve(world) as server:
        server.faults.repeat_series_point = True
        report = run_backup(server, tmp_path)
        pages = server.stats.by_operation
    assert (report.exit_code, report.failures) == (0, [])
    check_backup(world, tmp_path)  # 25,000 rows each, every one the server's
    assert pages["getFloatSeriesValues"] == pages["getStringSeriesValues"] == 3
    deep = run_here("verify", "--deep", str(tmp_path))
    assert deep.returncode == 0, deep.stdout


def test_a_page_that_overlaps_or_skips_once_is_read_again_and_the_series_is_exact(tmp_path: Path) -> None:
    world = long_series_world()
    with serve(world) as server:
        # Two points again (an overlap no repeat explains), and a point skipped.
        server.faults.script("getFloatSeriesValues", "early_page", match={"offset": "10000"})
        server.faults.script("getStringSeriesValues", "late_page", match={"offset": "10000"})
        report = run_backup(server, tmp_path)
        faults = dict(server.stats.faults)
    assert (report.exit_code, report.failures) == (0, [])
    assert faults == {"early_page": 1, "late_page": 1}
    check_backup(world, tmp_path)


def test_pages_that_keep_overlapping_or_skipping_fail_their_series_named(tmp_path: Path) -> None:
    world = long_series_world()
    with serve(world) as server:
        server.faults.always("getFloatSeriesValues", "early_page", match={"offset": "20000"})
        server.faults.always("getStringSeriesValues", "late_page", match={"offset": "10000"})
        report = run_backup(server, tmp_path)
    assert report.exit_code == 1
    reasons = {f.field: f.reason for f in report.failures}
    assert set(reasons) == {FLOATS, STRINGS}
    assert (
        "the series page at offset 20000 starts at step 19998.0, not past the step 19999.0" in reasons[FLOATS]
    )
    assert "gave up after 3 tries" in reasons[FLOATS]
    assert reasons[STRINGS] == f"the server promised {LENGTH} points but sent {LENGTH - 1}"
    [run] = world.project(PROJECT).runs
    folder = folder_of(tmp_path, world.project(PROJECT), run)
    assert not (folder / f"{FLOATS}.csv").exists() and not (folder / f"{STRINGS}.csv").exists()
    checked = run_here("verify", str(tmp_path))
    assert checked.returncode == 1 and FLOATS in checked.stdout and STRINGS in checked.stdout

    # Once the server answers right, the next backup saves both exactly.
    with serve(world) as server:
        assert run_backup(server, tmp_path).exit_code == 0
    check_series(run.fields[FLOATS], folder / f"{FLOATS}.csv")  # type: ignore[arg-type]
    check_series(run.fields[STRINGS], folder / f"{STRINGS}.csv")  # type: ignore[arg-type]


def many_series_world() -> World:
    spec = replace(
        MINIMAL,
        runs_per_project=2,
        parameters=1,
        float_series=1,
        float_series_length=2_500,
        string_series=1,
        string_series_length=2_500,
    )
    return generate(spec)


@pytest.mark.parametrize("status", [400, 413, 422])
def test_a_server_that_refuses_large_pages_gets_smaller_ones_for_the_rest_of_the_backup(
    tmp_path: Path, status: int
) -> None:
    world = many_series_world()
    with serve(world) as server:
        server.faults.series_page_max = 1_000
        server.faults.series_page_refusal = status
        report = run_backup(server, tmp_path, concurrency=1)
        statuses = dict(server.stats.statuses)
        pages = (
            server.stats.by_operation["getFloatSeriesValues"]
            + server.stats.by_operation["getStringSeriesValues"]
        )
    assert (report.exit_code, report.failures) == (0, [])
    check_backup(world, tmp_path)
    # 10,000, 5,000, 2,500 and 1,250 points refused once, for the first series only; then
    # every series in pages of 625: four series of 2,500 points, four pages each.
    assert statuses[status] == 4
    assert pages == 4 + 4 * 4


def test_a_page_refused_at_every_size_fails_its_series_and_teaches_nothing(tmp_path: Path) -> None:
    world = many_series_world()
    with serve(world) as server:
        server.faults.always("getFloatSeriesValues", 400)
        report = run_backup(server, tmp_path, concurrency=1)
        refused = server.stats.faults["400"]
        pages = (
            server.stats.by_operation["getFloatSeriesValues"]
            + server.stats.by_operation["getStringSeriesValues"]
        )
    assert sorted((f.run, f.field) for f in report.failures) == [("P0-1", FLOATS), ("P0-2", FLOATS)]
    assert all("HTTP 400" in f.reason for f in report.failures)
    # 10,000 points, then half as many down to 100: eight tries each; and as nothing was
    # learnt, the string series in one page each.
    assert refused == 2 * 8
    assert pages == 2 * 8 + 2
