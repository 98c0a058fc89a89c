"""End to end: listings read to the server's count, whatever the length of its pages; a listing
that ends short of its count fails the backup, by name, and never passes for complete."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from expect import check_backup
from neptune_backup_async import backup
from neptune_backup_async.api import PROJECTS_PAGE
from neptune_backup_async.engine.paging import TABLE_PAGE
from neptune_backup_async.testing import MINIMAL, Faults, generate, serve
from neptune_backup_async.testing.messages import Request, Response

pytestmark = pytest.mark.anyio

# Three projects of 60 runs, 2 models of 3 versions each: more of each than a page of the server holds.
WORLD = replace(
    MINIMAL,
    projects_per_workspace=3,
    runs_per_project=60,
    parameters=1,
    float_series=1,
    float_series_length=3,
    models=2,
    versions_per_model=3,
)


async def test_short_pages_of_runs_models_versions_and_projects_lose_nothing(tmp_path: Path) -> None:
    world = generate(WORLD)
    with serve(world, faults=Faults(table_page=25, projects_page=2)) as server:
        report = await backup("all", tmp_path, api_token=server.api_token, concurrency=4)
        pages = server.stats.by_operation
    assert (report.exit_code, report.failures) == (0, [])
    assert sorted(report.projects) == [f"workspace-0/project-{i}" for i in range(3)]
    for summary in report.projects.values():
        assert summary.listed
        found = {kind: summary.counts[kind].found for kind in ("run", "model", "modelVersion")}
        assert found == {"run": 60, "model": 2, "modelVersion": 6}
    assert report.runs_done == 180
    assert check_backup(world, tmp_path) == 3 * (60 + 2 + 6 + 1)
    # Pages of 25 that overlap by one: 60 runs take 3 (25, 24, 11 new), models and versions one each.
    assert pages["searchLeaderboardEntries"] == 3 * (3 + 1 + 1)
    assert pages["listProjects"] == 2  # 2 projects, then 1 new after the anchor
    assert PROJECTS_PAGE > 2 and TABLE_PAGE > 25  # what was asked for: more than was handed back


async def test_a_runs_table_that_stops_short_of_its_count_fails_that_listing(tmp_path: Path) -> None:
    world = generate(replace(WORLD, projects_per_workspace=1))
    with serve(world) as server:
        # Every page of runs comes back empty from the first on; models and versions are whole.
        server.faults.table_page = 0
        report = await backup("all", tmp_path, api_token=server.api_token)
    assert report.exit_code == 1
    summary = report.projects["workspace-0/project-0"]
    assert not summary.listed
    reasons = [f.reason for f in report.failures if f.project == "workspace-0/project-0" and f.run is None]
    assert any("listing runs failed: the listing ended at 0 of 60 runs" in r for r in reasons), reasons
    assert any("run the same command again" in r for r in reasons)
    saved = json.loads((tmp_path / "backup-report.json").read_text())
    assert saved["exit_code"] == 1 and saved["projects"]["workspace-0/project-0"]["listed"] is False


async def test_a_projects_list_that_stops_short_backs_up_what_it_gave_and_fails(tmp_path: Path) -> None:
    world = generate(WORLD)
    with serve(world, faults=Faults(projects_page=1)) as server:
        # The first page holds one project; every later one comes back empty, its count still 3.
        original = server.operations.handlers["listProjects"]

        def stingy(request: Request) -> Response:
            response = original(request)
            if request.arg("offset") != "0":
                response.body = json.dumps({**json.loads(response.body), "entries": []}).encode()
            return response

        server.operations.handlers["listProjects"] = stingy
        report = await backup("all", tmp_path, api_token=server.api_token, concurrency=4)
    assert report.exit_code == 1
    assert list(report.projects) == ["workspace-0/project-0"] and report.runs_done == 60
    [failure] = report.failures
    assert (failure.project, failure.run) == ("all", None)
    assert "listing projects failed: the listing ended at 1 of 3 projects" in failure.reason
