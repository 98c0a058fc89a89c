"""End to end: an image series' index.json holds what the server gave of each image.

Neptune's ``getImageSeriesValues`` gives the count only; each image's step, time, name and
description come from the series read as a channel (``getChannelValues``). Where the server
refuses that route, index.json holds each image's index and file, the rest null, and the
report says so once for the whole backup. ``verify`` and the view take either.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from expect import check_backup
from neptune_backup_async import backup
from neptune_backup_async.format.verify import verify
from neptune_backup_async.testing import MINIMAL, generate, serve
from neptune_backup_async.testing.model import ImageSeries
from neptune_backup_async.view.site import build_site

pytestmark = pytest.mark.anyio

WORLD = replace(MINIMAL, runs_per_project=3, images=3)


async def test_each_image_keeps_its_step_time_name_and_description(tmp_path: Path) -> None:
    world = generate(WORLD)
    with serve(world) as server:
        report = await backup("all", tmp_path, api_token=server.api_token)
        asked = server.stats.by_operation
    assert (report.exit_code, report.failures, report.notices) == (0, [], [])
    # Every image, and index.json's steps, times, names and descriptions: 3 runs and the project.
    assert check_backup(world, tmp_path) == 4
    assert asked["getImageSeriesValues"] == asked["getChannelValues"] == 3  # one of each per series


@pytest.mark.parametrize("status", [404, 410])
async def test_without_the_channel_route_the_index_holds_what_the_server_gave(
    tmp_path: Path, status: int
) -> None:
    world = generate(WORLD)
    with serve(world) as server:
        server.faults.always("getChannelValues", status)
        report = await backup("all", tmp_path, api_token=server.api_token)
    assert (report.exit_code, report.failures) == (0, [])
    [notice] = report.notices  # one for the whole backup, not one per series
    assert f"getChannelValues answered HTTP {status}" in notice.reason
    assert "index and file only" in notice.reason
    project = world.project("workspace-0/project-0")
    for run in project.runs:
        series = {p: v for p, v in run.fields.items() if isinstance(v, ImageSeries)}
        assert series
        for path, value in series.items():
            folder = tmp_path / "workspace-0" / "project-0" / run.sys_id / path
            index = json.loads((folder / "index.json").read_text(encoding="utf-8"))
            assert [(item["index"], item["file"]) for item in index] == [
                (i, f"{i}.png") for i in range(len(value.images))
            ]
            assert all(
                item["step"] is item["timestamp"] is item["name"] is item["description"] is None
                for item in index
            )
            for i, image in enumerate(value.images):
                assert (folder / f"{i}.png").read_bytes() == image.data
    assert verify(tmp_path).problems == []
    site = build_site(tmp_path)
    pages = "".join(p.read_text(encoding="utf-8") for p in site.parent.rglob("*.html"))
    assert pages.count("<figcaption>no step") == 9  # every image in the gallery, without a step to name


async def test_an_empty_image_is_saved_empty_with_a_notice(tmp_path: Path) -> None:
    """The neptune client uploads an image over 32 MB as no bytes at all: the server serves
    it empty, and that is the image, not a cut answer to retry until the field fails."""
    world = generate(WORLD)
    project = world.project("workspace-0/project-0")
    run = project.runs[1]
    series = run.fields["images/predictions"]
    assert isinstance(series, ImageSeries)
    images = list(series.images)
    images[1] = replace(images[1], data=b"")
    world.set_field(project.qualified_name, run.sys_id, "images/predictions", ImageSeries(tuple(images)))
    with serve(world) as server:
        report = await backup("all", tmp_path, api_token=server.api_token)
        asked = server.stats.by_operation["getImageSeriesValue"]
    assert (report.exit_code, report.failures, report.retries) == (0, [], {})
    [notice] = report.notices
    assert (notice.run, notice.field) == (run.sys_id, "images/predictions")
    assert "images 1 of 3 are empty" in notice.reason and "saved empty" in notice.reason
    assert asked == 9  # each image once: the empty one too, never again
    assert check_backup(world, tmp_path) == 4  # the empty image's file is empty; the others as served
    assert verify(tmp_path, deep=True).problems == []
