"""An incremental backup extends a series only while what it saved is still Neptune's: a series
logged anew (cleared, then logged again so that its last step grew) is fetched whole, never
stitched from the old beginning and the new end. End to end, the real neptune client against
the fake server."""

from __future__ import annotations

import csv
import datetime as dt
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio

from cli_helpers import run_here
from expect import check_backup, folder_of
from neptune_backup_async import backup
from neptune_backup_async.format.report import BackupReport
from neptune_backup_async.testing import MINIMAL, FakeNeptuneServer, World, generate, serve
from neptune_backup_async.testing import model as m
from neptune_backup_async.testing.generator import tiny_png

PROJECT = "workspace-0/project-0"
FLOATS, STRINGS, IMAGES = "metrics/train/loss", "logs/train", "images/predictions"
ANEW = "no longer Neptune's (the series was logged anew): fetched whole"


def small_world() -> World:
    spec = replace(
        MINIMAL,
        runs_per_project=1,
        parameters=1,
        float_series=1,
        float_series_length=5,
        string_series=1,
        string_series_length=5,
        images=3,
    )
    return generate(spec)


def run_backup(server: FakeNeptuneServer, dest: Path) -> BackupReport:
    return anyio.run(lambda: backup("all", dest, api_token=server.api_token, concurrency=4))


def the_run(world: World) -> m.Container:
    [run] = world.project(PROJECT).runs
    return run


def log_images_anew(world: World, *, keep_old: bool) -> None:
    """Clear the image series and log it again, one image longer (or only add one)."""
    run = the_run(world)
    old = run.fields[IMAGES]
    assert isinstance(old, m.ImageSeries)
    images = list(old.images)
    if not keep_old:
        images = [
            replace(image, timestamp_ms=image.timestamp_ms + 60_000, data=tiny_png((i, 200, 100)))
            for i, image in enumerate(images)
        ]
    end = images[-1]
    images.append(
        replace(end, step=end.step + 1, timestamp_ms=end.timestamp_ms + 1, data=tiny_png((1, 2, 3)))
    )
    world.set_field(PROJECT, run.sys_id, IMAGES, m.ImageSeries(tuple(images)))


def rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def expected_rows(series: m.FloatSeries | m.StringSeries) -> list[list[str]]:
    """The server's series as CSV rows, written out here (not by the writer under test)."""

    def stamp(ms: int) -> str:
        return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="milliseconds")

    return [["step", "value", "timestamp"]] + [
        [repr(p.step), repr(p.value) if isinstance(p.value, float) else p.value, stamp(p.timestamp_ms)]
        for p in series.points
    ]


def test_series_and_images_logged_anew_are_fetched_whole_not_stitched(tmp_path: Path) -> None:
    world = small_world()
    run = the_run(world)
    folder = folder_of(tmp_path, world.project(PROJECT), run)
    with serve(world) as server:
        # Each series is cleared and logged again, changed and one point longer, once the
        # first backup has read it.
        server.faults.rewrite_series = True
        assert run_backup(server, tmp_path).exit_code == 0
        log_images_anew(world, keep_old=False)
        before = json.loads((folder / ".manifest.json").read_text())["fields"]
        assert (before[FLOATS]["rows"], before[STRINGS]["rows"], before[IMAGES]["count"]) == (5, 5, 3)
        server.stats.reset()

        report = run_backup(server, tmp_path)
        ops = dict(server.stats.by_operation)

    assert (report.exit_code, report.failures) == (0, [])
    for path in (FLOATS, STRINGS):
        series = run.fields[path]
        assert isinstance(series, (m.FloatSeries, m.StringSeries)) and len(series.points) == 6
        assert rows(folder / f"{path}.csv") == expected_rows(series)  # every row the server's new one
    check_backup(world, tmp_path)  # the images too, bytes and index
    assert sorted((n.field, n.reason) for n in report.notices) == [
        (IMAGES, f"its last saved image is {ANEW}"),
        (STRINGS, f"its last saved point is {ANEW}"),
        (FLOATS, f"its last saved point is {ANEW}"),
    ]
    # The last saved image to compare (kept: it is the new one), then the three others; the
    # last saved point, then the whole series.
    assert ops["getImageSeriesValue"] == 1 + 3
    assert ops["getFloatSeriesValues"] == ops["getStringSeriesValues"] == 2
    deep = run_here("verify", "--deep", str(tmp_path))
    assert deep.returncode == 0, deep.stdout


def grow(series: Any, more: Any) -> Any:
    return type(series)((*series.points, more))


def test_series_and_images_that_only_grew_are_extended(tmp_path: Path) -> None:
    world = small_world()
    run = the_run(world)
    with serve(world) as server:
        assert run_backup(server, tmp_path).exit_code == 0
        loss, logs = run.fields[FLOATS], run.fields[STRINGS]
        assert isinstance(loss, m.FloatSeries) and isinstance(logs, m.StringSeries)
        end = loss.points[-1]
        world.set_field(
            PROJECT, run.sys_id, FLOATS, grow(loss, m.FloatPoint(end.step + 1, 0.5, end.timestamp_ms + 1))
        )
        tail = logs.points[-1]
        more = m.StringPoint(tail.step + 1, 'one "more", line\nof two', tail.timestamp_ms + 1)
        world.set_field(PROJECT, run.sys_id, STRINGS, grow(logs, more))
        log_images_anew(world, keep_old=True)
        server.stats.reset()

        report = run_backup(server, tmp_path)
        ops = dict(server.stats.by_operation)

    assert (report.exit_code, report.failures, report.notices) == (0, [], [])
    check_backup(world, tmp_path)
    # One page each, from the last saved point on; the last saved image again, and the new one.
    assert ops["getFloatSeriesValues"] == ops["getStringSeriesValues"] == 1
    assert ops["getImageSeriesValue"] == 2
