"""Backups in worker processes (``--processes``): the same bytes, one report, one bound, clean stops."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest

from cli_helpers import CLI, cli_env, no_traceback, run_cli
from expect import check_backup
from neptune_backup_async import backup
from neptune_backup_async.format.report import LABELS
from neptune_backup_async.processes.shares import capacity, shares, usable_cores
from neptune_backup_async.testing import MINIMAL, FakeNeptuneServer, Faults, Gather, World, generate, serve
from test_resume import FIELD_OPERATIONS, tree

KINDS = tuple(LABELS.values())


@pytest.fixture
def world(tmp_path: Path) -> World:
    """Enough objects (14 runs, 2 models, 4 versions, 2 project folders) for every worker to get some."""
    spec = replace(
        MINIMAL, projects_per_workspace=2, runs_per_project=7, float_series=3, file_size=2000, images=2,
        artifact_files=2, models=1, project_fields=True,
    )  # fmt: skip
    return generate(spec, artifact_root=tmp_path / "artifact-sources")


def backup_cli(server: FakeNeptuneServer, dest: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("--projects", "all", "--output", str(dest), "--quiet", *args, token=server.api_token)


def report_of(dest: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((dest / "backup-report.json").read_text())
    return report


def counts_add_up(report: dict[str, Any]) -> None:
    for scope in [report["totals"], *report["projects"].values()]:
        for kind in KINDS:
            assert scope[f"{kind}_found"] == scope[f"{kind}_done"] + scope[f"{kind}_failed"], (kind, scope)


def children(pid: int) -> set[int]:
    """The processes whose parent is ``pid``, from /proc."""
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.add(int(entry.name))
    return out


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie, dead but not yet reaped, is not)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def fields_in_manifests(dest: Path) -> tuple[int, int]:
    """The fields every manifest in ``dest`` records as saved, and as failed."""
    statuses = [
        record["status"]
        for manifest in dest.rglob(".manifest.json")
        for record in json.loads(manifest.read_text())["fields"].values()
    ]
    return statuses.count("ok"), statuses.count("failed")


def wait_for(condition: Any, proc: subprocess.Popen[Any] | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc is None or proc.poll() is None, "the backup ended first"
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.005)


def more_than_one_share() -> Faults:
    """Requests for objects' fields held until more than one process's share (4 of 8) is in
    flight, so that a peak above it is seen however a busy machine times the processes; each
    request lingers, so that one beyond the bound would meet the others at the server."""
    return Faults(latency=0.03, gather=Gather(5, FIELD_OPERATIONS))


def test_concurrency_is_shared_out_with_one_kept_for_listing() -> None:
    assert shares(2, 8) == (1, [4, 3])  # 8 in all
    assert shares(3, 16) == (1, [5, 5, 5])
    assert shares(4, 3) == (1, [1, 1])  # too little concurrency for 4 workers
    assert shares(2, 2) == (1, [1])
    assert shares(2, 1) == (1, [])  # none: the backup runs in one process
    assert shares(1, 64) == (64, [])
    assert capacity(1) == 3


def test_a_parent_that_backs_up_too_takes_a_share_like_a_workers() -> None:
    assert shares(2, 16, work_here=True) == (8, [8])
    assert shares(3, 8, work_here=True) == (3, [3, 2])
    assert shares(4, 2, work_here=True) == (1, [1])  # too little concurrency for 4 processes
    assert shares(2, 1, work_here=True) == (1, [])


@pytest.mark.slow
def test_backups_in_2_and_3_processes_equal_one_in_one_process(world: World, tmp_path: Path) -> None:
    with serve(world) as server:
        single = backup_cli(server, tmp_path / "one", "--processes", "1", "--download-artifacts")
        assert single.returncode == 0, single.stderr
        for n in ("2", "3"):
            dest = tmp_path / f"in-{n}"
            result = backup_cli(server, dest, "--processes", n, "--download-artifacts")
            assert result.returncode == 0, result.stderr
            no_traceback(result.stderr)
            assert tree(dest) == tree(tmp_path / "one")
            report, expected = report_of(dest), report_of(tmp_path / "one")
            counts_add_up(report)
            assert report["totals"] == expected["totals"]
            assert report["projects"] == expected["projects"]
            assert (report["failures"], report["notices"], report["exit_code"]) == ([], [], 0)
            log = next((dest / ".neptune-backup").glob("*.log")).read_text()
            for worker in range(
                1, int(n)
            ):  # the parent backs up too, and every worker was started and connected
                assert f"worker process w{worker} connected" in log
    assert check_backup(world, tmp_path / "in-3") == 22


@pytest.mark.slow
def test_by_default_the_command_line_backs_up_in_one_process_per_usable_core(
    world: World, tmp_path: Path
) -> None:
    """The default the other tests of the command line leave out (they give ``--processes 1``)."""
    dest = tmp_path / "out"
    with serve(world) as server:
        result = subprocess.run(
            [*CLI, "--projects", "all", "--output", str(dest), "--quiet"],
            env=cli_env(server.api_token),
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert result.returncode == 0, result.stderr
    _, workers = shares(usable_cores(), 8, work_here=True)  # this process is one of them
    log = next((dest / ".neptune-backup").glob("*.log")).read_text()
    started = re.findall(r"worker process (w\d+) started", log)
    assert started == [f"w{n}" for n in range(1, len(workers) + 1)], log
    assert check_backup(world, dest, artifacts_downloaded=False) == 22


@pytest.mark.slow
def test_a_failing_field_in_a_worker_is_in_the_one_report_and_the_log(world: World, tmp_path: Path) -> None:
    with serve(world) as server:
        server.faults.always("getFloatSeriesValues", 400, match={"attribute": "metrics/train/acc"})
        server.faults.script("getExperimentAttributes", 503, 503)
        result = backup_cli(server, tmp_path / "out", "--processes", "2", "--concurrency", "6")
    assert result.returncode == 1, result.stderr
    report = report_of(tmp_path / "out")
    counts_add_up(report)
    failed = sorted((f["run"], f["field"]) for f in report["failures"])
    runs = sorted(r.sys_id for p in world.projects.values() for r in p.runs)
    assert failed == [(run, "metrics/train/acc") for run in runs]
    assert report["totals"]["runs_failed"] == len(runs) and report["totals"]["fields_failed"] == len(runs)
    assert report["retries"] == {"HTTP 503": 2}
    log = next((tmp_path / "out" / ".neptune-backup").glob("*.log")).read_text()
    for run in runs:
        assert f"/{run}/metrics/train/acc: " in log


@pytest.mark.slow
@pytest.mark.parametrize("where", ["command line", "embedded"])
def test_at_concurrency_8_two_processes_never_have_more_than_8_requests_in_flight(
    where: str, world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="neptune_backup_async")
    with serve(world, faults=more_than_one_share()) as server:
        if where == "command line":  # this process backs up too: 4 here, 4 in the worker
            result = backup_cli(server, tmp_path / "out", "--processes", "2", "--concurrency", "8")
            assert result.returncode == 0, result.stderr
            log = next((tmp_path / "out" / ".neptune-backup").glob("*.log")).read_text()
            assert "worker process w1 started (pid " in log and "w2" not in log
            assert "listing done" not in log  # it keeps its share to back up with
        else:  # this process only lists, with 1; the workers have 4 and 3, then 4 and 4
            report = anyio.run(
                lambda: backup(
                    "all", tmp_path / "out", api_token=server.api_token, processes=2, concurrency=8
                )
            )
            assert report.exit_code == 0
            said = [r.getMessage() for r in caplog.records]
            # Its one, once the listing is over, goes to a worker that still has jobs: 4 + 4 or 5 + 3.
            assert [
                m
                for m in said
                if re.fullmatch(
                    r"listing done: worker process w(1 may have 5|2 may have 4) requests in flight", m
                )
            ], said
        peak = server.stats.max_in_flight
    # More than one process's share (4) at once, and never more than the one bound.
    assert 4 < peak <= 8


@pytest.mark.slow
@pytest.mark.parametrize("where", ["command line", "embedded"])
def test_one_huge_run_still_gets_the_whole_concurrency(
    where: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Whoever has nothing left to do once the listing is over hands its share to the one
    process that still holds a job: the run, which ends up with all 8."""
    caplog.set_level("DEBUG", logger="neptune_backup_async")
    world = generate(replace(MINIMAL, runs_per_project=1, float_series=60))
    with serve(world, faults=more_than_one_share()) as server:
        if where == "command line":
            result = backup_cli(server, tmp_path / "out", "--processes", "2", "--concurrency", "8")
            assert result.returncode == 0, result.stderr
            said = next((tmp_path / "out" / ".neptune-backup").glob("*.log")).read_text().splitlines()
        else:
            report = anyio.run(
                lambda: backup(
                    "all", tmp_path / "out", api_token=server.api_token, processes=2, concurrency=8
                )
            )
            assert report.exit_code == 0
            said = [r.getMessage() for r in caplog.records]
        peak = server.stats.max_in_flight
    assert check_backup(world, tmp_path / "out") == 2  # the run, and the project's own (few) fields
    assert [m for m in said if m.endswith("may have 8 requests in flight")], said
    assert 4 < peak <= 8  # more than any one process's first share, never more than the bound


@pytest.mark.slow
def test_a_shard_in_two_processes_equals_the_shard_in_one(world: World, tmp_path: Path) -> None:
    with serve(world) as server:
        one = backup_cli(server, tmp_path / "one", "--shard", "1/2", "--processes", "1")
        two = backup_cli(server, tmp_path / "two", "--shard", "1/2", "--processes", "2")
    assert one.returncode == 0 and two.returncode == 0, two.stderr
    name = "backup-report.shard-1-of-2.json"
    assert tree(tmp_path / "two").keys() - {name} == tree(tmp_path / "one").keys() - {name}
    assert {k: v for k, v in tree(tmp_path / "two").items() if k != name} == {
        k: v for k, v in tree(tmp_path / "one").items() if k != name
    }
    reports = [json.loads((tmp_path / dest / name).read_text()) for dest in ("one", "two")]
    assert reports[0]["totals"] == reports[1]["totals"]
    assert 0 < reports[1]["totals"]["runs_found"] < 14  # a part of the runs


@pytest.mark.slow
def test_a_worker_killed_mid_backup_has_its_runs_retried_and_a_rerun_equals_one_process(
    world: World, tmp_path: Path
) -> None:
    dest = tmp_path / "out"
    with serve(world, faults=Faults(latency=0.03)) as server:
        single = backup_cli(server, tmp_path / "one", "--processes", "1", "--download-artifacts")
        assert single.returncode == 0, single.stderr
        total = server.stats.total
        server.stats.reset()
        args = ["--projects", "all", "--output", str(dest), "--quiet", "--processes", "3"]
        args.append("--download-artifacts")
        with subprocess.Popen(
            [*CLI, *args], env=cli_env(server.api_token), stderr=subprocess.PIPE, text=True
        ) as proc:
            wait_for(lambda: len(children(proc.pid)) == 2, proc)
            workers = children(proc.pid)
            wait_for(lambda: server.stats.total > total // 3, proc)  # well into the backup
            victim = min(workers)
            os.kill(victim, signal.SIGKILL)
            _, stderr = proc.communicate(timeout=120)
        no_traceback(stderr)
        assert proc.returncode == 0, stderr  # its runs went to another worker, which saved them
        report = report_of(dest)
        counts_add_up(report)
        died = [n for n in report["notices"] if "died (signal 9, SIGKILL); handed to another" in n["reason"]]
        assert died, report["notices"]  # it held jobs when it died
        assert report["failures"] == []
        # Each field once: not the dead worker's count and again the count of the one that resumed its runs.
        totals = report["totals"]
        assert (totals["fields_done"], totals["fields_failed"]) == fields_in_manifests(dest)
        log = next((dest / ".neptune-backup").glob("*.log")).read_text()
        assert f"(pid {victim}) died (signal 9, SIGKILL)" in log
        assert not any(running(pid) for pid in workers)
        assert not list(dest.rglob("*.partial"))
        rerun = backup_cli(server, dest, "--processes", "2", "--download-artifacts")
    assert rerun.returncode == 0, rerun.stderr
    assert tree(dest) == tree(tmp_path / "one")


def journal_of(pid: int) -> Path | None:
    """The journal that process ``pid`` has open: that of the run it is saving."""
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            target = Path(os.readlink(fd))
        except OSError:
            continue
        if target.name == ".journal.jsonl":
            return target
    return None


def test_a_worker_killed_mid_run_counts_each_field_once(tmp_path: Path) -> None:
    """The fields a dead worker saved are counted once: by the worker that resumes its run."""
    spec = replace(MINIMAL, runs_per_project=3, parameters=2, float_series=40, float_series_length=50)
    world = generate(spec, artifact_root=tmp_path / "artifact-sources")
    dest = tmp_path / "out"
    with serve(world, faults=Faults(latency=0.05)) as server:
        args = [
            "--projects",
            "all",
            "--output",
            str(dest),
            "--quiet",
            "--processes",
            "3",
            "--concurrency",
            "3",
        ]
        with subprocess.Popen(
            [*CLI, *args], env=cli_env(server.api_token), stderr=subprocess.PIPE, text=True
        ) as proc:
            wait_for(lambda: len(children(proc.pid)) == 2, proc)

            def mid_run() -> int | None:
                """A worker that has saved 10 fields of a run it is still saving."""
                for pid in children(proc.pid):
                    journal = journal_of(pid)
                    with contextlib.suppress(OSError):
                        if journal is not None and len(journal.read_text().splitlines()) >= 10:
                            return pid
                return None

            wait_for(lambda: mid_run() is not None, proc)
            victim = mid_run()
            assert victim is not None
            os.kill(victim, signal.SIGKILL)
            _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
    report = report_of(dest)
    assert any("died (signal 9, SIGKILL); handed to another" in n["reason"] for n in report["notices"])
    totals = report["totals"]
    assert (totals["fields_done"], totals["fields_failed"]) == fields_in_manifests(dest)


@pytest.mark.slow
def test_ctrl_c_stops_every_worker_and_leaves_no_temporary_file(world: World, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    args = ["--projects", "all", "--output", str(dest), "--processes", "3", "--download-artifacts"]
    with (
        serve(world, faults=Faults(latency=0.05)) as server,
        subprocess.Popen(
            [*CLI, *args],
            env=cli_env(server.api_token),
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,  # a process group of its own, as a terminal gives a command
        ) as proc,
    ):
        wait_for(lambda: len(children(proc.pid)) == 2, proc)
        workers = children(proc.pid)
        wait_for(lambda: server.stats.total > 60, proc)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C on a terminal does
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    no_traceback(stderr)
    assert "Interrupted. Everything finished so far is kept; run the same command again to resume." in stderr
    assert not any(running(pid) for pid in workers)
    assert not list(dest.rglob("*.partial"))
    report = report_of(dest)
    assert report["interrupted"] is True
    nothing_counted_twice(report)


def nothing_counted_twice(report: dict[str, Any]) -> None:
    """An interrupted backup: what it never reached is neither done nor failed, but nothing
    is counted more than once."""
    for kind in KINDS:
        totals = report["totals"]
        assert totals[f"{kind}_done"] + totals[f"{kind}_failed"] <= totals[f"{kind}_found"], (kind, totals)


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_cancelled_embedded_backup_stops_its_workers_and_leaves_no_temporary_file(
    world: World, tmp_path: Path
) -> None:
    dest = tmp_path / "out"
    with serve(world, faults=Faults(latency=0.05)) as server:
        workers: set[int] = set()
        async with anyio.create_task_group() as tg:

            async def cancel_midway() -> None:
                while len(children(os.getpid())) < 2 or server.stats.total < 60:
                    await anyio.sleep(0.005)
                workers.update(children(os.getpid()))
                tg.cancel_scope.cancel()

            tg.start_soon(cancel_midway)
            await backup("all", dest, api_token=server.api_token, processes=2, download_artifacts=True)
            raise AssertionError("the backup was not cancelled")
    assert len(workers) == 2
    assert not any(running(pid) for pid in workers)
    assert not list(dest.rglob("*.partial"))
    assert report_of(dest)["interrupted"] is True
    nothing_counted_twice(report_of(dest))


@pytest.mark.slow
def test_an_object_held_by_two_workers_that_died_fails_and_a_rerun_completes(
    world: World, tmp_path: Path
) -> None:
    dest = tmp_path / "out"
    args = ["--projects", "all", "--output", str(dest), "--quiet", "--processes", "3"]
    with serve(world, faults=Faults(latency=0.05)) as server:
        with subprocess.Popen(
            [*CLI, *args], env=cli_env(server.api_token), stderr=subprocess.PIPE, text=True
        ) as proc:
            wait_for(lambda: len(children(proc.pid)) == 2, proc)
            first = children(proc.pid)
            wait_for(lambda: server.stats.total > 40, proc)
            os.kill(min(first), signal.SIGKILL)
            log_dir = dest / ".neptune-backup"
            # Once the first object it held was handed to another worker, kill every worker there is.
            wait_for(
                lambda: "; handed to another" in "".join(p.read_text() for p in log_dir.glob("*.log")), proc
            )
            for pid in children(proc.pid):
                os.kill(pid, signal.SIGKILL)
            _, stderr = proc.communicate(timeout=120)
        no_traceback(stderr)
        assert proc.returncode == 1, stderr
        report = report_of(dest)
        counts_add_up(report)
        twice = "the worker process backing it up died twice (signal 9, SIGKILL); run the same command again"
        assert report["failures"] and all(f["reason"] == twice for f in report["failures"]), report[
            "failures"
        ]
        assert not list(dest.rglob("*.partial"))
        rerun = backup_cli(server, dest, "--processes", "2")
        one = backup_cli(server, tmp_path / "one", "--processes", "1")
    assert rerun.returncode == 0 and one.returncode == 0, rerun.stderr
    assert tree(dest) == tree(tmp_path / "one")


@pytest.mark.parametrize("case", ["dry run", "injected source"])
def test_a_dry_run_or_an_injected_source_backs_up_in_this_process(
    case: str, world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from neptune_backup_async.remote.neptune.client import connect

    caplog.set_level("DEBUG", logger="neptune_backup_async")
    with serve(world) as server:
        source = anyio.run(connect, server.api_token) if case == "injected source" else None
        try:
            report = anyio.run(
                lambda: backup(
                    "all",
                    tmp_path / "out",
                    api_token=server.api_token,
                    processes=4,
                    source=source,
                    dry_run=case == "dry run",
                )
            )
        finally:
            if source is not None:
                source.close()
    assert report.exit_code == 0 and report.runs_found == report.runs_done == 14
    assert not [r for r in caplog.records if "worker process" in r.getMessage()]


@pytest.mark.slow
def test_workers_of_a_parent_killed_with_sigkill_stop_and_clean_up(world: World, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    args = ["--projects", "all", "--output", str(dest), "--quiet", "--processes", "3", "--download-artifacts"]
    with serve(world, faults=Faults(latency=0.05)) as server:
        with subprocess.Popen([*CLI, *args], env=cli_env(server.api_token), stderr=subprocess.PIPE) as proc:
            wait_for(lambda: len(children(proc.pid)) == 2, proc)
            workers = children(proc.pid)
            wait_for(lambda: server.stats.total > 60, proc)
            proc.kill()
        wait_for(
            lambda: not any(running(pid) for pid in workers), timeout=30
        )  # their stdin closed: they stop
        # Each worker removed its own temporary files; the killed parent, which backs up too,
        # could not, and leaves its own to the next backup.
        assert not [p for p in dest.rglob("*.partial") if re.search(r"\.w\d+-\d+-\d+\.partial$", p.name)]
        rerun = backup_cli(server, dest, "--processes", "2", "--download-artifacts")
    assert rerun.returncode == 0, rerun.stderr
    assert not list(dest.rglob("*.partial"))
    assert check_backup(world, dest) == 22
