"""Resume, incremental reruns and verify: nothing lost, nothing fetched twice, damage found."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
from pathlib import Path

import anyio
import pytest

from cli_helpers import command, held, run_here
from expect import check_backup, check_container
from memory_source import MemorySource
from neptune_backup_async import backup
from neptune_backup_async.testing import FakeNeptuneServer, Hold, World, serve
from neptune_backup_async.testing import model as m
from neptune_backup_async.testing.server import STARTUP_OPERATIONS

# Requests that read a run's fields; a rerun over unchanged data makes none of them.
FIELD_OPERATIONS = {
    "getExperimentAttributes",
    "getFloatSeriesValues",
    "getStringSeriesValues",
    "getImageSeriesValues",
    "getChannelValues",
    "getImageSeriesValue",
    "downloadAttribute",
    "prepareForDownloadFileSetAttributeZip",
    "getDownloadPrepareRequest",
    "downloadFileSetZip",
    "listArtifactFiles",
}


def tree(dest: Path) -> dict[str, bytes]:
    """Every file of the backed-up data; the report and logs differ between backups by nature."""
    return {
        p.relative_to(dest).as_posix(): p.read_bytes()
        for p in sorted(dest.rglob("*"))
        if p.is_file() and p.name != "backup-report.json" and ".neptune-backup" not in p.parts
    }


def run_backup(where: MemorySource | FakeNeptuneServer, dest: Path, **kwargs: object) -> object:
    via = {"source": where} if isinstance(where, MemorySource) else {"api_token": where.api_token}
    return anyio.run(lambda: backup("all", dest, concurrency=4, **via, **kwargs))  # type: ignore[arg-type]


def test_rerun_over_unchanged_data_only_lists(
    demo_world: World, memory: MemorySource, tmp_path: Path
) -> None:
    run_backup(memory, tmp_path, download_artifacts=True)
    before = tree(tmp_path)
    memory.requests.clear()

    report = run_backup(memory, tmp_path, download_artifacts=True)

    fetched = {op: n for op, n in memory.requests.items() if op in FIELD_OPERATIONS}
    # Only each project's own field listing: Neptune lists no modification time for a project.
    assert fetched == {"getExperimentAttributes": 2}
    assert memory.requests["searchLeaderboardEntries"] == 6  # runs, models, versions per project
    assert report.runs_unchanged == report.runs_done == 8  # type: ignore[attr-defined]
    assert tree(tmp_path) == before


def _later(world: World, project: str) -> m.Datetime:
    latest = max(c.fields["sys/creation_time"].value for c in world.project(project).runs)  # type: ignore[union-attr]
    return m.Datetime(latest + dt.timedelta(seconds=10))


def test_rerun_after_changes_fetches_only_what_changed(
    demo_world: World, memory: MemorySource, tmp_path: Path
) -> None:
    run_backup(memory, tmp_path)
    proj = "workspace-0/project-0"
    project = demo_world.project(proj)
    old_loss = project.containers["P0-2"].fields["metrics/train/loss"]
    assert isinstance(old_loss, m.FloatSeries)
    # A new run, a changed parameter, a grown series, a new file and a deleted run.
    template = project.containers["P0-1"]
    new_fields = dict(
        template.fields, **{"sys/id": m.String("P0-99"), "sys/creation_time": _later(demo_world, proj)}
    )
    demo_world.add_container(proj, m.Container("P0-99", "run", new_fields))
    demo_world.set_field(proj, "P0-1", "parameters/p1", m.Int(42))
    grown = old_loss.points + tuple(
        m.FloatPoint(float(s), 0.5, 1_800_000_000_000 + s) for s in range(1000, 1010)
    )
    demo_world.set_field(proj, "P0-2", "metrics/train/loss", m.FloatSeries(grown))
    demo_world.set_field(proj, "P0-3", "data/extra", m.File("extra", "txt", b"new file\n"))
    demo_world.remove_container(proj, "P0-4")
    memory.requests.clear()

    report = run_backup(memory, tmp_path)

    ops = memory.requests
    # P0-1, P0-2, P0-3 and P0-99, and each project's own fields; project-1's runs are unchanged
    assert ops["getExperimentAttributes"] == 6
    new_run_series = sum(isinstance(v, m.FloatSeries) for v in new_fields.values())
    assert ops["getFloatSeriesValues"] == 1 + new_run_series  # only the grown one, and the new run's
    assert ops["downloadAttribute"] == 2  # the new file, and the new run's file
    assert ops["getStringSeriesValues"] == sum(isinstance(v, m.StringSeries) for v in new_fields.values())
    assert check_backup(demo_world, tmp_path, artifacts_downloaded=False) == 16
    # The deleted run is kept and reported.
    gone = tmp_path / "workspace-0" / "project-0" / "P0-4"
    assert (gone / ".manifest.json").is_file()
    assert [(n.run, n.reason) for n in report.notices] == [  # type: ignore[attr-defined]
        ("P0-4", "no longer listed by Neptune (deleted or trashed); its copy is kept")
    ]


def test_a_field_removed_from_neptune_keeps_its_copy(
    demo_world: World, memory: MemorySource, tmp_path: Path
) -> None:
    run_backup(memory, tmp_path)
    proj = "workspace-0/project-0"
    demo_world.set_field(proj, "P0-1", "data/sample", None)
    demo_world.set_field(proj, "P0-1", "parameters/p1", None)
    folder = tmp_path / "workspace-0" / "project-0" / "P0-1"
    sample = (folder / "data" / "sample.bin").read_bytes()
    p1 = json.loads((folder / "simple_metadata.json").read_text())["parameters/p1"]

    report = run_backup(memory, tmp_path)

    assert (folder / "data" / "sample.bin").read_bytes() == sample
    assert json.loads((folder / "simple_metadata.json").read_text())["parameters/p1"] == p1
    manifest = json.loads((folder / ".manifest.json").read_text())
    assert manifest["fields"]["data/sample"]["removed_upstream"] is True
    assert sorted(n.field for n in report.notices) == ["data/sample", "parameters/p1"]  # type: ignore[attr-defined]
    assert run_here("verify", str(tmp_path)).returncode == 0


def test_full_fetches_everything_again(demo_world: World, memory: MemorySource, tmp_path: Path) -> None:
    run_backup(memory, tmp_path)
    before = tree(tmp_path)
    memory.requests.clear()
    run_backup(memory, tmp_path, full=True)
    assert memory.requests["getExperimentAttributes"] == 16  # every object
    assert memory.requests["downloadAttribute"] == 14  # a file per run, model and version
    assert tree(tmp_path) == before


# -- interruptions ---------------------------------------------------------------------------------


def _cli(server: FakeNeptuneServer, dest: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, NEPTUNE_API_TOKEN=server.api_token)
    args = command(
        "--projects", "all", "--output", str(dest), "--concurrency", "4", "--download-artifacts", "--quiet"
    )
    return subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )


def _work(server: FakeNeptuneServer) -> int:
    """The requests served so far but those of the clients' start-up: those a Hold counts."""
    return server.stats.total - sum(server.stats.by_operation[op] for op in STARTUP_OPERATIONS)


@pytest.mark.slow
def test_killed_at_many_points_and_rerun_equals_an_uninterrupted_backup(
    slow_world: World, tmp_path: Path
) -> None:
    with serve(slow_world) as server:
        baseline = tmp_path / "baseline"
        assert _cli(server, baseline).wait(timeout=120) == 0
        work = _work(server)
        dest = tmp_path / "killed"
        # Each run is stopped after a share of the requests of a whole backup, and killed
        # there. Shares that add up to less than one leave each run more to do than its share
        # (a request saves at most its own part), so every run is killed.
        shares = (0.05, 0.1, 0.1, 0.1, 0.1, 0.1, 0.15)
        assert sum(shares) < 1
        kills = 0
        for share in shares:
            hold = server.faults.hold = Hold(after=int(work * share))
            proc = _cli(server, dest)
            if held(hold, proc):
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(timeout=60)
            hold.release()
        assert kills == len(shares)
        server.faults.hold = None
        assert _cli(server, dest).wait(timeout=120) == 0
    assert tree(dest) == tree(baseline)
    assert not list(dest.rglob("*.partial")) and not list(dest.rglob(".journal.jsonl"))
    check_backup(slow_world, dest, artifacts_downloaded=True)


@pytest.mark.slow
def test_ctrl_c_exits_cleanly_and_the_rerun_completes(slow_world: World, tmp_path: Path) -> None:
    with serve(slow_world) as server:
        baseline = tmp_path / "baseline"
        assert _cli(server, baseline).wait(timeout=120) == 0
        dest = tmp_path / "interrupted"
        hold = server.faults.hold = Hold(after=_work(server) // 2)  # halfway, requests in flight
        proc = _cli(server, dest)
        assert held(hold, proc)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
        hold.release()
        server.faults.hold = None
        assert proc.returncode == 130
        assert (
            "Interrupted. Everything finished so far is kept; run the same command again to resume."
            in stderr.decode()
        )
        assert "Traceback" not in stderr.decode()
        assert not list(dest.rglob("*.partial"))
        assert json.loads((dest / "backup-report.json").read_text())["interrupted"] is True
        assert _cli(server, dest).wait(timeout=120) == 0
    assert tree(dest) == tree(baseline)


# -- verify ----------------------------------------------------------------------------------------


def verify_cli(dest: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_here("verify", str(dest), *args)  # with no token: it needs none


def test_verify_passes_an_intact_backup_and_finds_every_kind_of_damage(
    memory: MemorySource, tmp_path: Path
) -> None:
    run_backup(memory, tmp_path, download_artifacts=True)
    intact = verify_cli(tmp_path, "--deep")
    assert intact.returncode == 0, intact.stdout
    assert intact.stdout == ""
    assert "Verified 16 objects" in intact.stderr and "intact" in intact.stderr

    run = tmp_path / "workspace-0" / "project-0"
    flipped = run / "P0-1" / "data" / "sample.bin"
    data = bytearray(flipped.read_bytes())
    data[10] ^= 0x01
    flipped.write_bytes(bytes(data))
    truncated = run / "P0-2" / "metrics" / "train" / "loss.csv"
    truncated.write_bytes(truncated.read_bytes()[:-7])
    (run / "P0-3" / "source_code" / "files.zip").unlink()
    (run / "P0-4" / "stray.txt").write_text("not ours")

    result = verify_cli(tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "corrupt: workspace-0/project-0/P0-1/data/sample.bin: sha256 differs from the manifest",
        f"corrupt: workspace-0/project-0/P0-2/metrics/train/loss.csv: {truncated.stat().st_size} bytes,"
        f" expected {truncated.stat().st_size + 7}",
        f"missing: workspace-0/project-0/P0-3/source_code/files.zip: expected "
        f"{json.loads((run / 'P0-3' / '.manifest.json').read_text())['files']['source_code/files.zip']['size']} bytes",
        "unexpected: workspace-0/project-0/P0-4/stray.txt: not in the manifest",
    ]
    assert "4 problems" in result.stderr


def test_verify_reports_incomplete_and_failed_runs(server: FakeNeptuneServer, tmp_path: Path) -> None:
    server.faults.script("downloadAttribute", 404)
    run_backup(server, tmp_path)
    (tmp_path / "workspace-0" / "project-1" / "P1-2" / ".manifest.json").unlink()
    result = verify_cli(tmp_path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(
        line.startswith("failed: workspace-0/project-")
        and "/data/sample: downloadAttribute: HTTP 404" in line
        for line in lines
    )
    assert (
        "incomplete: workspace-0/project-1/P1-2: no manifest: its backup did not finish; run the backup again"
        in lines
    )


def test_verify_deep_parses_files(memory: MemorySource, tmp_path: Path) -> None:
    run_backup(memory, tmp_path)
    folder = tmp_path / "workspace-0" / "project-0" / "P0-1"
    csv_path = folder / "metrics" / "train" / "loss.csv"
    csv_path.write_text("step,value,timestamp\n0.0,1.0\n")  # damaged, and the manifest made to agree
    manifest = json.loads((folder / ".manifest.json").read_text())
    manifest["files"]["metrics/train/loss.csv"] = {
        "size": csv_path.stat().st_size,
        "sha256": hashlib.sha256(csv_path.read_bytes()).hexdigest(),
    }
    (folder / ".manifest.json").write_text(json.dumps(manifest))
    assert verify_cli(tmp_path).returncode == 0  # sizes and hashes agree...
    deep = verify_cli(tmp_path, "--deep")
    assert deep.returncode == 1  # ...but the CSV does not parse
    assert deep.stdout.splitlines() == [
        "corrupt: workspace-0/project-0/P0-1/metrics/train/loss.csv: line 2 has 2 columns"
    ]


def test_verify_refuses_a_folder_that_is_not_a_backup(tmp_path: Path) -> None:
    result = verify_cli(tmp_path)
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"error: {tmp_path} is not a backup: it has no backup-report.json and no run manifests."
    )


def test_rerun_resumes_from_the_journal_without_refetching(
    demo_world: World, memory: MemorySource, tmp_path: Path
) -> None:
    """A run folder with a journal but no manifest (a kill mid-run) fetches only fields not in the journal."""
    run_backup(memory, tmp_path)
    folder = tmp_path / "workspace-0" / "project-0" / "P0-1"
    manifest = json.loads((folder / ".manifest.json").read_text())
    lines = []
    for path, record in manifest["fields"].items():
        if record["type"] == "floatSeries":
            files = {
                rel: [manifest["files"][rel]["size"], manifest["files"][rel]["sha256"]]
                for rel in record["files"]
            }
            lines.append(json.dumps({"field": path, "record": record, "files": files}))
    (folder / ".journal.jsonl").write_text("\n".join(lines) + '\n{"field": "cut off by the ki')
    (folder / ".manifest.json").unlink()
    memory.requests.clear()
    run_backup(memory, tmp_path)
    assert memory.requests["getExperimentAttributes"] == 3  # P0-1 and the two projects
    assert memory.requests["getFloatSeriesValues"] == 0  # all in the journal
    assert memory.requests["downloadAttribute"] == 1  # not in the journal
    check_container(
        demo_world.project("workspace-0/project-0").containers["P0-1"], folder, artifacts_downloaded=False
    )
    assert not (folder / ".journal.jsonl").exists()
