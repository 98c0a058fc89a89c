"""A field that fails in a backup keeps the copy an earlier backup saved, marked stale.

End to end: the real neptune client against the fake server, whose faults make one file
field and one series field fail for good; the next backup, once they pass, fetches both.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest

from cli_helpers import run_here
from expect import check_backup
from fast_retry import fast_command_line
from neptune_backup_async import backup
from neptune_backup_async.format.report import BackupReport
from neptune_backup_async.testing import MINIMAL, FakeNeptuneServer, World, generate, serve
from neptune_backup_async.testing import model as m
from neptune_backup_async.to_mlflow import plan
from neptune_backup_async.view import data

PROJECT = "workspace-0/project-0"
FILE, SERIES = "data/sample", "metrics/train/loss"


def small_world() -> World:
    spec = replace(
        MINIMAL, runs_per_project=2, float_series=1, float_series_length=5, file_size=4096, images=3
    )
    return generate(spec)


def run_backup(server: FakeNeptuneServer, dest: Path, **kwargs: Any) -> BackupReport:
    return anyio.run(lambda: backup("all", dest, api_token=server.api_token, concurrency=4, **kwargs))


def manifest_of(folder: Path) -> dict[str, Any]:
    return json.loads((folder / ".manifest.json").read_text())  # type: ignore[no-any-return]


def copies(folder: Path) -> dict[str, bytes]:
    return {rel: (folder / rel).read_bytes() for rel in ("data/sample.bin", "metrics/train/loss.csv")}


def verify(dest: Path) -> subprocess.CompletedProcess[str]:
    return run_here("verify", str(dest))


def assert_kept(
    dest: Path, folder: Path, before: dict[str, Any], kept: dict[str, bytes], reasons: dict[str, str]
) -> None:
    """The earlier copies of FILE and SERIES are on disk and in the manifest as they were,
    marked stale with the reason, and verify names them as failed, nothing else."""
    assert copies(folder) == kept
    after = manifest_of(folder)
    assert after["complete"] is False
    for path in (FILE, SERIES):
        record = after["fields"][path]
        assert record["stale"] == reasons[path]
        assert record["status"] == "ok"
        assert {k: v for k, v in record.items() if k != "stale"} == before["fields"][path]
        for rel in record["files"]:
            assert after["files"][rel] == before["files"][rel]
    # What view and load-mlflow read: the kept copies, as any saved field.
    run = data.load_run(dest, folder, [])
    assert run.fields_of("floatSeries") == [SERIES]
    assert run.field_file(FILE) == "data/sample.bin"
    loaded = plan.build(run.manifest, run.meta)
    assert loaded.series[SERIES] == "metrics/train/loss.csv"
    assert [u.source for u in loaded.uploads[FILE]] == ["data/sample.bin"]
    assert loaded.failed == {}
    verified = verify(dest)
    assert verified.returncode == 1, verified.stdout
    where = f"{PROJECT}/{folder.name}"
    assert sorted(verified.stdout.splitlines()) == [
        f"failed: {where}/{FILE}: {reasons[FILE]} (the copy of an earlier backup is kept)",
        f"failed: {where}/{SERIES}: {reasons[SERIES]} (the copy of an earlier backup is kept)",
    ]


def test_a_field_that_fails_keeps_its_earlier_copy_until_a_backup_fetches_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast_command_line(monkeypatch)  # the command line in this process: its 8 tries, without the waits
    world = small_world()
    dest = tmp_path / "backup"
    with serve(world) as server:
        assert run_backup(server, dest).exit_code == 0
        run = world.project(PROJECT).containers["P0-1"]
        folder = dest / PROJECT / "P0-1"
        before, kept = manifest_of(folder), copies(folder)

        # A proxy answers the file with an error page, and Neptune the series with a 404, for good.
        server.faults.always("downloadAttribute", "html", match={"experimentId": run.uuid, "attribute": FILE})
        server.faults.always(
            "getFloatSeriesValues", 404, match={"experimentId": run.uuid, "attribute": SERIES}
        )
        failed = run_here(
            "--projects", "all", "--output", str(dest), "--full", "--quiet", token=server.api_token
        )
        assert failed.returncode == 1, failed.stderr
        assert copies(folder) == kept

        report = json.loads((dest / "backup-report.json").read_text())
        failures = {(f["run"], f["field"]): f["reason"] for f in report["failures"]}
        assert set(failures) == {("P0-1", FILE), ("P0-1", SERIES)}
        reasons = {path: manifest_of(folder)["fields"][path]["stale"] for path in (FILE, SERIES)}
        assert reasons[FILE].startswith(f"{FILE}: gave up after 8 tries (the answer is an HTML page")
        assert "404" in reasons[SERIES]
        for path in (FILE, SERIES):
            assert failures["P0-1", path] == f"{reasons[path]} (the copy of an earlier backup is kept)"
        (log,) = (dest / ".neptune-backup").glob("backup-*.log")
        errors = [line for line in log.read_text().splitlines() if " ERROR " in line]
        assert all(any(f"/P0-1/{path}: " in line for line in errors) for path in (FILE, SERIES))
        assert_kept(dest, folder, before, kept, reasons)

        # Neptune shows the run unchanged, yet the next backup fetches both fields again.
        server.faults.clear()
        server.stats.reset()
        again = run_backup(server, dest)
        assert (again.exit_code, again.failures) == (0, [])
        ops = server.stats.by_operation
        assert ops["getExperimentAttributes"] == 2  # P0-1, and the project's own fields; P0-2 is skipped
        assert (ops["downloadAttribute"], ops["getFloatSeriesValues"]) == (1, 1)
    assert check_backup(world, dest) == 3  # two runs and the project
    assert copies(folder) == kept
    assert manifest_of(folder) == before
    assert verify(dest).returncode == 0


def test_a_changed_field_that_fails_keeps_the_copy_of_its_last_version(tmp_path: Path) -> None:
    world = small_world()
    dest = tmp_path / "backup"
    with serve(world) as server:
        assert run_backup(server, dest).exit_code == 0
        run = world.project(PROJECT).containers["P0-1"]
        folder = dest / PROJECT / "P0-1"
        before, kept = manifest_of(folder), copies(folder)

        # The run changes: its series grows and its file is replaced; neither can be read now.
        loss = run.fields[SERIES]
        assert isinstance(loss, m.FloatSeries)
        grown = loss.points + tuple(
            m.FloatPoint(float(s), 0.5, 1_800_000_000_000 + s) for s in range(100, 103)
        )
        world.set_field(PROJECT, "P0-1", SERIES, m.FloatSeries(grown))
        world.set_field(PROJECT, "P0-1", FILE, m.File("sample", "bin", b"a new version\n"))
        server.faults.always("downloadAttribute", 404, match={"experimentId": run.uuid, "attribute": FILE})
        server.faults.always(
            "getFloatSeriesValues", 404, match={"experimentId": run.uuid, "attribute": SERIES}
        )
        report = run_backup(server, dest)
        assert report.exit_code == 1
        assert copies(folder) == kept
        assert sorted((f.run, f.field) for f in report.failures) == [("P0-1", FILE), ("P0-1", SERIES)]
        reasons = {path: manifest_of(folder)["fields"][path]["stale"] for path in (FILE, SERIES)}
        assert_kept(dest, folder, before, kept, reasons)

        # Still failing: the copy stays as it was; then, once they pass, both are fetched.
        assert run_backup(server, dest).exit_code == 1
        assert_kept(dest, folder, before, kept, reasons)
        server.faults.clear()
        server.stats.reset()
        assert run_backup(server, dest).exit_code == 0
        assert (
            server.stats.by_operation["downloadAttribute"],
            server.stats.by_operation["getFloatSeriesValues"],
        ) == (1, 1)
    assert check_backup(world, dest) == 3  # two runs and the project
    assert (folder / "data/sample.bin").read_bytes() == b"a new version\n"
    assert not any("stale" in record for record in manifest_of(folder)["fields"].values())
    assert verify(dest).returncode == 0


def test_a_copy_the_failed_backup_already_changed_is_not_kept_under_its_old_hashes(tmp_path: Path) -> None:
    world = small_world()
    dest = tmp_path / "backup"
    images = "images/predictions"
    with serve(world) as server:
        assert run_backup(server, dest).exit_code == 0
        run = world.project(PROJECT).containers["P0-1"]
        series = run.fields[images]
        assert isinstance(series, m.ImageSeries) and len(series.images) == 3
        # Image 0 is replaced (same size, new bytes); image 2 cannot be read: image 0 lands anew first.
        first = series.images[0]
        middle = len(first.data) // 2
        changed = replace(
            first, data=first.data[:middle] + bytes([first.data[middle] ^ 1]) + first.data[middle + 1 :]
        )
        world.set_field(PROJECT, "P0-1", images, m.ImageSeries((changed, *series.images[1:])))
        server.faults.always("getImageSeriesValue", 404, match={"experimentId": run.uuid, "index": "2"})
        report = run_backup(server, dest, full=True)
    assert report.exit_code == 1
    assert [(f.run, f.field) for f in report.failures] == [("P0-1", images)]
    assert report.failures[0].reason.startswith("images 2 of 3 were not saved: ")
    record = manifest_of(dest / PROJECT / "P0-1")["fields"][images]
    assert (record["status"], record["files"], "stale" in record) == ("failed", [], False)
    verified = verify(dest)
    assert [line.split(": ")[:2] for line in verified.stdout.splitlines()] == [
        ["failed", f"{PROJECT}/P0-1/{images}"]
    ]
