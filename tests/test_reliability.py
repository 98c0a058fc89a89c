"""Faults and hostile conditions: nothing lost, nothing leaked, a clear message each time."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from cli_helpers import command, run_here
from expect import check_backup, check_container, check_fields
from fast_retry import FAST_RETRY
from neptune_backup_async import AuthenticationError, Progress, ProjectNotFoundError, UnexpectedError, backup
from neptune_backup_async.domain import FieldInfo, ObjectRef, ProjectInfo, SeriesPage
from neptune_backup_async.selection import Selection
from neptune_backup_async.testing import MINIMAL, FakeNeptuneServer, Faults, World, generate, serve
from neptune_backup_async.testing import model as m


def secrets_of(token: str) -> list[str]:
    """The token, and the API key inside it: neither may ever be shown."""
    return [token, json.loads(base64.b64decode(token))["api_key"]]


def everything_written(dest: Path, *streams: str) -> str:
    texts = list(streams)
    for path in dest.rglob("*"):
        if path.is_file():
            texts.append(path.read_bytes().decode("utf-8", errors="replace"))
    return "\n".join(texts)


@pytest.mark.anyio
async def test_a_token_revoked_during_the_backup_stops_it_with_one_clear_error(
    demo_world: World, tmp_path: Path
) -> None:
    with serve(demo_world, faults=Faults(latency=0.05)) as server:

        def progress(p: Progress) -> None:
            if p.objects_done >= 2:
                server.revoke_token()

        with pytest.raises(AuthenticationError, match="rejected the API token during the backup"):
            await backup("all", tmp_path, api_token=server.api_token, concurrency=2, progress=progress)
    report = json.loads((tmp_path / "backup-report.json").read_text())
    done = sum(n for key, n in report["totals"].items() if key.endswith("_done") and key != "fields_done")
    assert report["interrupted"] is True and done >= 2
    assert not list(tmp_path.rglob("*.partial"))


def test_a_failing_backup_never_shows_the_token(server: FakeNeptuneServer, tmp_path: Path) -> None:
    server.faults.script("downloadAttribute", 404, 404)
    server.faults.script("getFloatSeriesValues", 404)
    env = dict(os.environ, NEPTUNE_API_TOKEN=server.api_token)
    dest = tmp_path / "out"
    result = subprocess.run(
        command("--projects", "all", "--output", str(dest), "--concurrency", "2"),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    report = json.loads((dest / "backup-report.json").read_text())
    assert len(report["failures"]) == 3
    written = everything_written(dest, result.stdout, result.stderr)
    for secret in secrets_of(server.api_token):
        assert secret not in written


@pytest.mark.slow
def test_a_full_disk_fails_cleanly_and_keeps_the_existing_backup(
    demo_world: World, server: FakeNeptuneServer, tmp_path: Path
) -> None:
    """A real ENOSPC: the backup goes to a 3 MiB tmpfs mounted in a private mount namespace."""
    disk = tmp_path / "disk"
    disk.mkdir()
    script = textwrap.dedent(
        f"""
        set -u
        mount -t tmpfs -o size=3m tmpfs {disk}
        cli() {{ {sys.executable} -m neptune_backup_async "$@"; }}
        cli --projects workspace-0/project-0 --output {disk}/dest --quiet --processes 1 2>{tmp_path}/first.err
        echo "first=$?"
        head -c 2400000 /dev/zero > {disk}/filler 2>/dev/null
        cli --projects all --output {disk}/dest --quiet --full --download-artifacts --processes 1 2>{tmp_path}/second.err
        echo "second=$?"
        cli verify {disk}/dest > {tmp_path}/verify.out 2>&1
        echo "verify=$?"
        find {disk}/dest -name '*.partial' | wc -l | sed 's/^/partials=/'
        cp -r {disk}/dest {tmp_path}/copy
        """
    )
    env = dict(os.environ, NEPTUNE_API_TOKEN=server.api_token)
    result = subprocess.run(
        ["unshare", "-Urm", "bash", "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    codes = dict(line.split("=") for line in result.stdout.split())
    assert codes["first"] == "0", (tmp_path / "first.err").read_text()
    assert codes["second"] == "2"
    message = (tmp_path / "second.err").read_text().strip().splitlines()[-1]
    assert message.startswith("error: The disk holding ") and message.endswith(
        "is full. Free some space and run the same command again."
    )
    assert "Traceback" not in (tmp_path / "second.err").read_text()
    # The backup that was there is intact (verify only says the second one did not finish),
    # and nothing half-written is left.
    verified = (tmp_path / "verify.out").read_text().splitlines()
    assert codes["verify"] == "1"
    assert verified[-1].startswith("Verified ")
    assert [line for line in verified[:-1] if not line.startswith(("incomplete: ", "unexpected: "))] == []
    assert any(line.startswith("incomplete: ") for line in verified)  # the second backup did not finish
    assert codes["partials"] == "0"
    project = demo_world.project("workspace-0/project-0")
    for run in project.runs:
        assert (tmp_path / "copy" / "workspace-0" / "project-0" / run.sys_id / ".manifest.json").is_file()


def test_unreachable_server_fails_fast_with_exit_2(tmp_path: Path) -> None:
    token = base64.b64encode(
        json.dumps(
            {"api_address": "http://127.0.0.1:9", "api_url": "http://127.0.0.1:9", "api_key": "k"}
        ).encode()
    ).decode()
    result = run_here("--projects", "a/b", "--output", str(tmp_path / "out"), token=token)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: Cannot reach the Neptune server at http://127.0.0.1:9. Check the network, a proxy, or the address"
        " in the API token, then run the same command again."
    )


def test_a_project_the_token_may_not_read_is_a_clear_error(server: FakeNeptuneServer, tmp_path: Path) -> None:
    server.faults.script("getProject", 403)
    with pytest.raises(ProjectNotFoundError) as raised:
        anyio.run(lambda: backup("workspace-0/project-0", tmp_path, api_token=server.api_token))
    assert str(raised.value) == (
        "Project 'workspace-0/project-0' does not exist or this API token may not read it."
        " Run `neptune-backup list-projects` to see the projects you can back up."
    )


def test_the_backup_survives_random_faults_and_equals_a_clean_one(demo_world: World, tmp_path: Path) -> None:
    clean, faulty = tmp_path / "clean", tmp_path / "faulty"
    with serve(demo_world) as server:
        anyio.run(
            lambda: backup("all", clean, api_token=server.api_token, concurrency=4, download_artifacts=True)
        )
    faults = Faults(rate_429=0.04, rate_5xx=0.04, rate_cut=0.02, retry_after="0", seed=7)
    with serve(demo_world, faults=faults) as server:
        report = anyio.run(
            lambda: backup(
                "all",
                faulty,
                api_token=server.api_token,
                concurrency=4,
                download_artifacts=True,
                **FAST_RETRY,
            )
        )
        injected = sum(n for status, n in server.stats.statuses.items() if status >= 429) + server.stats.cuts
    assert report.exit_code == 0, report.failures
    assert injected >= 10  # the faults really happened
    check_backup(demo_world, faulty)

    def tree(dest: Path) -> dict[str, bytes]:
        return {
            p.relative_to(dest).as_posix(): p.read_bytes()
            for p in dest.rglob("*")
            if p.is_file() and p.name != "backup-report.json"
        }

    assert tree(faulty) == tree(clean)


def test_malformed_answers_fail_their_field_or_run_with_a_reason(demo_world: World, tmp_path: Path) -> None:
    p02 = demo_world.project("workspace-0/project-0").containers["P0-2"]
    with serve(demo_world) as server:
        server.faults.script("getExperimentAttributes", "missing_keys")  # the first run listed
        # A body that is no zip is retried like a cut one: only one that stays so fails its field.
        server.faults.always("downloadFileSetZip", "not_zip", match={"experimentId": p02.uuid})
        server.faults.script("getFloatSeriesValues", "short_page")  # half a page: the rest is asked for
        server.faults.script("getStringSeriesValues", "garbage")  # not JSON once: retried
        runs_only = Selection(objects=frozenset({"runs"}))
        report = anyio.run(
            lambda: backup(
                "workspace-0/project-0",
                tmp_path,
                api_token=server.api_token,
                concurrency=1,
                selection=runs_only,
                **FAST_RETRY,
            )
        )
        assert server.stats.faults["short_page"] == server.stats.faults["garbage"] == 1
    failures = sorted((f.run, f.field, f.reason) for f in report.failures)
    assert failures == [
        ("P0-1", None, "getExperimentAttributes: malformed answer from Neptune, without 'attributes'"),
        (
            "P0-2",
            "source_code/files",
            "source_code/files: gave up after 8 tries (the file set download is not a zip archive)",
        ),
    ]
    folder = tmp_path / "workspace-0" / "project-0"
    assert not (folder / "P0-2" / "source_code" / "files.zip").exists()
    check_fields(
        replace(p02, fields={k: v for k, v in p02.fields.items() if k != "source_code/files"}),
        folder / "P0-2",
        artifacts_downloaded=False,
    )
    for sys_id in ("P0-3", "P0-4"):
        check_container(
            demo_world.project("workspace-0/project-0").containers[sys_id],
            folder / sys_id,
            artifacts_downloaded=False,
        )


def test_a_response_slower_than_the_timeout_is_retried(demo_world: World, tmp_path: Path) -> None:
    from neptune_backup_async.remote.neptune.client import connect

    with serve(demo_world, faults=Faults(slow_seconds=3.0)) as server:
        server.faults.script("getFloatSeriesValues", "slow")
        source = anyio.run(lambda: connect(server.api_token, read_timeout=0.5))
        try:
            report = anyio.run(lambda: backup("workspace-0/project-0", tmp_path, source=source))
        finally:
            source.close()
        assert server.stats.faults["slow"] == 1
    assert report.exit_code == 0
    check_backup(
        replace(demo_world, projects={"workspace-0/project-0": demo_world.project("workspace-0/project-0")}),
        tmp_path,
        artifacts_downloaded=False,
    )


@pytest.mark.slow
def test_under_429s_the_backup_slows_down_then_recovers(tmp_path: Path) -> None:
    world = generate(replace(MINIMAL, runs_per_project=60, float_series=10, float_series_length=3))
    phases: list[dict[str, object]] = []
    with serve(world, faults=Faults(latency=0.05, max_in_flight=4, retry_after="0.05")) as server:

        def progress(p: Progress) -> None:
            if p.objects_done >= 20 and not phases:  # the server lifts its limit
                phases.append(server.stats.snapshot())
                server.faults.max_in_flight = None
                server.stats.reset()

        report = anyio.run(
            lambda: backup("all", tmp_path, api_token=server.api_token, concurrency=16, progress=progress)
        )
        phases.append(server.stats.snapshot())
    limited, free = phases
    assert report.exit_code == 0
    # While the server allows 4 requests at once, most requests get through: the tool
    # lowered its own bound (without that, about 12 of every 16 would be refused).
    refused = limited["faults"]["over_limit"]  # type: ignore[index]
    assert 0 < refused < 0.25 * limited["total"]  # type: ignore[operator]
    # Once the limit is gone, it climbs back to the full --concurrency.
    assert free["max_in_flight"] == 16
    assert check_backup(world, tmp_path) == 61  # and the project folder


def test_hostile_names_from_the_server_never_write_outside_dest(tmp_path: Path) -> None:
    outside = tmp_path / "a" / "b"
    dest = outside / "c" / "dest"
    source = tmp_path / "artifact.bin"
    source.write_bytes(b"artifact bytes")
    now = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)

    def series(value: float) -> m.FloatSeries:
        return m.FloatSeries((m.FloatPoint(0.0, value, 1_704_067_200_000),))

    hostile: dict[str, m.Value] = {
        "sys/id": m.String("../../RUN-1"),
        "sys/creation_time": m.Datetime(now),
        "sys/modification_time": m.Datetime(now),
        "../../../escape": m.String("a key, not a path"),
        "../../evil": series(1.0),
        "/absolute/path": series(2.0),
        "back\\slash": series(3.0),
        "metrics/Loss": series(4.0),
        "metrics/loss": series(5.0),
        "data/CON": m.File("CON", "txt", b"reserved on Windows"),
        "ctl\x01char\x7f": series(6.0),
        "long/" + "x" * 300: series(7.0),
        "simple_metadata": m.File("simple_metadata", "json", b"not ours"),
        "art": m.Artifact(
            "h",
            (m.ArtifactFile("../../../../stolen.bin", "fh", "Local", 14, (("file_path", source.as_uri()),)),),
        ),
    }
    world = World()
    project = world.add_project(m.Project(workspace="..", name="CON", key="EVIL"))
    world.add_container(project.qualified_name, m.Container("../../RUN-1", "run", hostile))
    with serve(world) as server:
        report = anyio.run(
            lambda: backup("../CON", dest, api_token=server.api_token, download_artifacts=True, concurrency=4)
        )
    assert report.exit_code == 0, report.failures
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p != source]
    assert written and all(p.resolve().is_relative_to(dest.resolve()) for p in written)
    [run] = [p for p in dest.rglob(".manifest.json") if p.parent.name != "_project"]
    assert run.parent.relative_to(dest).as_posix() == "%2E%2E/%43ON/%2E.%2F..%2FRUN-1"
    manifest = json.loads(run.read_text())
    # Every original name is in the manifest, beside the safe file it was mapped to.
    assert set(manifest["fields"]) == set(hostile)
    files = {path: record["files"] for path, record in manifest["fields"].items()}
    own_files = [f.casefold() for fs in files.values() for f in fs if f != "simple_metadata.json"]
    with_files = [v for v in hostile.values() if not isinstance(v, m.ATOM_TYPES)]
    assert (
        len(set(own_files)) == len(own_files) == len(with_files) + 1
    )  # the artifact has two: listing and file
    for path, value in hostile.items():
        if isinstance(value, m.FloatSeries):
            rows = (run.parent / files[path][0]).read_text().splitlines()
            assert rows[1].split(",")[1] == repr(value.points[0].value), path
    assert (run.parent / files["data/CON"][0]).read_bytes() == b"reserved on Windows"
    assert files["simple_metadata"] == ["%73imple_metadata.json"]
    stolen = [f for f in files["art"] if f.endswith("stolen.bin")]
    assert stolen == ["art/%2E%2E/%2E%2E/%2E%2E/%2E%2E/stolen.bin"]
    assert (run.parent / stolen[0]).read_bytes() == b"artifact bytes"
    simple = json.loads((run.parent / "simple_metadata.json").read_text())
    assert simple["../../../escape"] == "a key, not a path"


def test_runs_table_pages_are_retried(demo_world: World, server: FakeNeptuneServer, tmp_path: Path) -> None:
    """The neptune client raises at once on a failed runs-table page; this tool retries it."""
    server.faults.script("searchLeaderboardEntries", 503, "cut")
    report = anyio.run(lambda: backup("all", tmp_path, api_token=server.api_token))
    assert server.stats.faults["503"] == 1 and server.stats.faults["cut"] == 1
    assert report.exit_code == 0 and report.runs_done == 8
    check_backup(demo_world, tmp_path, artifacts_downloaded=False)


def test_a_bug_fails_its_field_as_a_bug_with_its_traceback_in_the_log(
    demo_world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from neptune_backup_async.remote.neptune.client import connect

    p01 = demo_world.project("workspace-0/project-0").containers["P0-1"]
    path = next(k for k, v in sorted(p01.fields.items()) if isinstance(v, m.FloatSeries))
    with serve(demo_world) as server:
        source = anyio.run(connect, server.api_token)
        real = source.series_page

        def buggy(run: ObjectRef, field: FieldInfo, offset: int, limit: int) -> SeriesPage:
            if (run.sys_id, field.path) == ("P0-1", path):
                raise KeyError("oops")  # as a bug of ours would
            return real(run, field, offset, limit)

        source.series_page = buggy  # type: ignore[method-assign]
        try:
            with caplog.at_level("ERROR", logger="neptune_backup_async"):
                report = anyio.run(lambda: backup("workspace-0/project-0", tmp_path, source=source))
        finally:
            source.close()
    assert [(f.run, f.field, f.reason) for f in report.failures] == [
        ("P0-1", path, "unexpected KeyError: 'oops'. Please report it with the log file")
    ]
    [bug] = [r for r in caplog.records if r.exc_info and r.getMessage() == f"P0-1/{path}: a bug"]
    assert bug.levelname == "ERROR" and "malformed" not in caplog.text


def test_a_bug_outside_any_field_stops_the_backup_as_a_bug_with_its_traceback_in_the_log(
    demo_world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from neptune_backup_async.remote.neptune.client import connect

    def buggy(project: ProjectInfo, run: ObjectRef) -> list[FieldInfo]:
        raise KeyError("oops")  # no longer taken for a malformed field listing from Neptune

    with serve(demo_world) as server:
        source = anyio.run(connect, server.api_token)
        source.get_fields = buggy  # type: ignore[method-assign]
        try:
            with (
                caplog.at_level("ERROR", logger="neptune_backup_async"),
                pytest.raises(
                    UnexpectedError, match=r"^unexpected KeyError: 'oops'\. Please report it"
                ) as raised,
            ):
                anyio.run(lambda: backup("workspace-0/project-0", tmp_path, source=source))
        finally:
            source.close()
    assert isinstance(raised.value.__cause__, KeyError)
    [bug] = [r for r in caplog.records if r.getMessage() == "a bug"]
    assert bug.levelname == "ERROR" and bug.exc_info is not None and bug.exc_info[1] is raised.value.__cause__
