"""End to end: the real neptune client against the fake server, through the async API."""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest

from expect import check_backup, check_container, check_fields, objects_of
from neptune_backup_async import BackupReport, Progress, backup
from neptune_backup_async.testing import MINIMAL, FakeNeptuneServer, Faults, Gather, World, generate, serve

pytestmark = pytest.mark.anyio


async def test_backup_matches_the_server_exactly(
    demo_world: World, server: FakeNeptuneServer, tmp_path: Path
) -> None:
    dest = tmp_path / "backup"
    report = await backup("all", dest, api_token=server.api_token, concurrency=4, download_artifacts=True)

    runs = sum(len(p.runs) for p in demo_world.projects.values())
    objects = sum(len(objects_of(p)) for p in demo_world.projects.values())
    assert objects > runs  # models, their versions and the projects' own fields too
    assert check_backup(demo_world, dest, artifacts_downloaded=True) == objects
    assert (report.exit_code, report.runs_done, report.runs_failed, report.failures) == (0, runs, 0, [])
    saved = json.loads((dest / "backup-report.json").read_text())
    assert saved["exit_code"] == 0
    assert saved["totals"]["runs_done"] == runs
    assert saved["totals"]["bytes_written"] == report.bytes_written > 0


async def test_artifact_files_are_only_listed_unless_asked(
    demo_world: World, server: FakeNeptuneServer, tmp_path: Path
) -> None:
    dest = tmp_path / "backup"
    report = await backup("workspace-0/project-1", dest, api_token=server.api_token)
    assert report.exit_code == 0
    project = demo_world.project("workspace-0/project-1")
    for run in project.runs:
        check_container(run, dest / "workspace-0" / "project-1" / run.sys_id, artifacts_downloaded=False)
    assert not (dest / "workspace-0" / "project-0").exists()


# Each request is in flight at least this long, so that one beyond the bound would meet those
# within it at the server; the peak itself is made certain by a Gather, not by timing.
LINGER = 0.02


@pytest.mark.parametrize("concurrency", [1, 4, 16])
async def test_one_run_with_many_fields_uses_the_whole_bound_and_no_more(
    tmp_path: Path, concurrency: int
) -> None:
    world = generate(replace(MINIMAL, runs_per_project=1, float_series=40, float_series_length=5))
    gather = Gather(concurrency, {"getFloatSeriesValues"})  # its series, held until the bound is in flight
    with serve(world, faults=Faults(latency=LINGER, gather=gather)) as server:
        await backup("all", tmp_path, api_token=server.api_token, concurrency=concurrency)
        assert server.stats.max_in_flight == concurrency
    check_backup(world, tmp_path)


async def test_many_small_runs_use_the_whole_bound_and_no_more(tmp_path: Path) -> None:
    world = generate(replace(MINIMAL, runs_per_project=40, float_series=1, float_series_length=3))
    gather = Gather(16, {"getExperimentAttributes", "getFloatSeriesValues"})  # what each run asks for
    with serve(world, faults=Faults(latency=LINGER, gather=gather)) as server:
        await backup("all", tmp_path, api_token=server.api_token, concurrency=16)
        assert server.stats.max_in_flight == 16
    assert check_backup(world, tmp_path) == 41  # and the project folder


def rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


@pytest.mark.slow
async def test_more_than_ten_thousand_runs_are_each_backed_up_once_in_flat_memory(tmp_path: Path) -> None:
    world = generate(replace(MINIMAL, runs_per_project=10_050, parameters=1, float_series=0))
    # Runs created in one millisecond across the 10,000-row boundary of offset paging:
    # the keyset continuation must neither lose nor repeat them.
    runs = world.project("workspace-0/project-0").containers
    tie = runs["P0-9990"].fields["sys/creation_time"]
    for i in range(9_990, 10_021):
        runs[f"P0-{i}"].fields["sys/creation_time"] = tie
    rss: dict[str, float] = {}

    def progress(p: Progress) -> None:
        if p.objects_done >= 2_000 and "early" not in rss:
            rss["early"] = rss_mb()

    with serve(world) as server:
        report = await backup("all", tmp_path, api_token=server.api_token, concurrency=16, progress=progress)
        rss["late"] = rss_mb()
        fetched = server.stats.by_operation["getExperimentAttributes"]
    # Measured: about 11 MB more after 8,000 more runs (allocator slack; the Python heap
    # grows by about 1 MB). A leak of one client object per run would add hundreds.
    assert rss["late"] - rss["early"] < 40
    project = tmp_path / "workspace-0" / "project-0"
    run_dirs = [p for p in project.iterdir() if p.is_dir() and p.name != "_project"]
    assert len(run_dirs) == 10_050
    assert {p.name for p in run_dirs} == {f"P0-{i}" for i in range(1, 10_051)}
    assert fetched == 10_051  # each run once, and the project's own fields
    assert (report.runs_found, report.runs_done) == (10_050, 10_050)


async def test_a_failing_field_does_not_lose_the_rest_of_its_run(
    demo_world: World, server: FakeNeptuneServer, tmp_path: Path
) -> None:
    server.faults.script("downloadAttribute", 404)  # the first file download of the backup fails for good
    report = await backup("workspace-0/project-0", tmp_path, api_token=server.api_token, concurrency=1)

    assert report.exit_code == 1
    assert len(report.failures) == 1
    failure = report.failures[0]
    assert (failure.project, failure.field) == ("workspace-0/project-0", "data/sample")
    assert "404" in failure.reason
    project = demo_world.project("workspace-0/project-0")
    broken = project.containers[str(failure.run)]
    folder = tmp_path / "workspace-0" / "project-0" / broken.sys_id
    manifest = json.loads((folder / ".manifest.json").read_text())
    assert manifest["complete"] is False
    assert manifest["fields"]["data/sample"]["status"] == "failed"
    assert not (folder / "data" / "sample.bin").exists()
    # Every other field of that run, and every other run, is whole.
    rest = replace(broken, fields={k: v for k, v in broken.fields.items() if k != "data/sample"})
    check_fields(rest, folder, artifacts_downloaded=False)
    for run in project.runs:
        if run is not broken:
            check_container(
                run, tmp_path / "workspace-0" / "project-0" / run.sys_id, artifacts_downloaded=False
            )
    saved = json.loads((tmp_path / "backup-report.json").read_text())
    assert saved["exit_code"] == 1 and saved["failures"][0]["field"] == "data/sample"


async def test_embedded_backup_is_cancelled_promptly_and_leaves_nothing_half_written(tmp_path: Path) -> None:
    world = generate(
        replace(MINIMAL, runs_per_project=30, float_series=3, float_series_length=50, file_size=200_000)
    )
    seen: list[Progress] = []
    reports: list[BackupReport] = []
    with serve(world, faults=Faults(latency=0.05)) as server:
        enough = anyio.Event()

        def progress(p: Progress) -> None:
            seen.append(p)
            if p.objects_done >= 3:
                enough.set()

        async def run() -> None:
            reports.append(
                await backup("all", tmp_path, api_token=server.api_token, concurrency=4, progress=progress)
            )

        with anyio.fail_after(60):  # a guard against hanging, not a speed check
            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                await enough.wait()
                tg.cancel_scope.cancel()

    assert reports == []  # the cancellation reached backup() itself
    saved = json.loads((tmp_path / "backup-report.json").read_text())
    assert saved["interrupted"] is True
    done = saved["totals"]["runs_done"] + saved["totals"]["project_done"]
    assert 3 <= done < 31
    assert not list(tmp_path.rglob("*.partial"))
    finished = [p.parent for p in tmp_path.rglob(".manifest.json")]
    assert len(finished) >= 3
    project = world.project("workspace-0/project-0")
    for folder in finished:
        container = project.container if folder.name == "_project" else project.containers[folder.name]
        assert container is not None
        check_container(container, folder, artifacts_downloaded=False)
    assert seen and seen[-1].objects_found == 31  # 30 runs and the project's own fields


@pytest.mark.parametrize("step", ["the client's import", "the client's start-up"])
async def test_a_cancel_returns_while_a_start_up_step_still_runs_and_nothing_follows_that_step(
    step: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from neptune.internal.backends import hosted_client

    from neptune_backup_async.remote.neptune import client

    # A step of connecting that blocks in its thread until the test lets it go.
    owner, name = (
        (client, "_credentials") if step == "the client's import" else (hosted_client, "_get_token_client")
    )
    real = getattr(owner, name)
    entered, release, finished = threading.Event(), threading.Event(), threading.Event()

    def held(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(60)  # released once the cancel has returned; the bound only stops a hang
        try:
            return real(*args, **kwargs)
        finally:
            finished.set()

    monkeypatch.setattr(owner, name, held)
    reports: list[BackupReport] = []
    with serve(generate(MINIMAL)) as server:
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:

                async def cancel_once_held() -> None:
                    await anyio.to_thread.run_sync(entered.wait)
                    scope.cancel()

                tg.start_soon(cancel_once_held)
                reports.append(await backup("all", tmp_path, api_token=server.api_token, processes=1))
        returned_while_held = not release.is_set()
        before = Counter(server.stats.snapshot()["by_operation"])
        release.set()
        await anyio.to_thread.run_sync(finished.wait)
        after = Counter(server.stats.snapshot()["by_operation"])
    assert scope.cancelled_caught and reports == [] and returned_while_held
    # The abandoned step made its own request (the backend's spec), and no step came after it.
    assert after - before == Counter({} if step == "the client's import" else {"swagger": 1})
