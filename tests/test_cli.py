"""The command line as a user runs it: its exit code and what it prints. A real process where
the process is the point (the backup a user starts, the demo), else the same `main` in this process."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cli_helpers import run_cli, run_here
from expect import check_backup
from neptune_backup_async.testing import FakeNeptuneServer, World
from neptune_backup_async.testing import model as m
from neptune_backup_async.testing.server import STARTUP_OPERATIONS


def all_output(result: subprocess.CompletedProcess[str], dest: Path) -> str:
    """Everything a user could read after a backup: the streams, the report and the logs."""
    texts = [result.stdout, result.stderr]
    texts += [p.read_text(errors="replace") for p in dest.rglob("*.log")]
    texts += [p.read_text() for p in dest.rglob("backup-report.json")]
    return "\n".join(texts)


def test_backup_succeeds_with_exit_code_0(
    demo_world: World, server: FakeNeptuneServer, tmp_path: Path
) -> None:
    dest = tmp_path / "out"
    result = run_cli(
        "--projects",
        "workspace-0/project-0,workspace-0/project-1",
        "--output",
        str(dest),
        "--concurrency",
        "4",
        "--download-artifacts",
        token=server.api_token,
    )
    assert result.returncode == 0, result.stderr
    assert "8 of 8 runs backed up (0 unchanged, 0 failed)" in result.stderr
    assert f"Report: {dest / 'backup-report.json'}" in result.stderr
    assert check_backup(demo_world, dest) == 16  # 8 runs, 2 models, 4 versions, 2 projects
    logs = list((dest / ".neptune-backup").glob("backup-*.log"))
    assert len(logs) == 1 and "backup of" in logs[0].read_text()
    assert server.api_token not in all_output(result, dest)


def test_backup_subcommand_and_token_file(server: FakeNeptuneServer, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(server.api_token + "\n")
    result = run_here(
        "backup",
        "--projects",
        "workspace-0/project-1",
        "--output",
        str(tmp_path / "out"),
        "--api-token-file",
        str(token_file),
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "workspace-0" / "project-1" / "P1-1" / "simple_metadata.json").is_file()


def test_failed_field_gives_exit_code_1_and_names_it(
    demo_world: World, server: FakeNeptuneServer, tmp_path: Path
) -> None:
    server.faults.script("getFloatSeriesValues", 404)
    dest = tmp_path / "out"
    result = run_here(
        "--projects",
        "workspace-0/project-0",
        "--output",
        str(dest),
        "--concurrency",
        "1",
        "--objects",
        "runs",
        token=server.api_token,
    )
    assert result.returncode == 1
    assert "3 of 4 runs backed up (0 unchanged, 1 failed)" in result.stderr
    report = json.loads((dest / "backup-report.json").read_text())
    [failure] = report["failures"]
    assert failure["run"] == "P0-1"
    failed_field = demo_world.project("workspace-0/project-0").containers["P0-1"].fields[failure["field"]]
    assert isinstance(failed_field, m.FloatSeries)  # the first float series the backup asked for
    assert failure["reason"].startswith("getFloatSeriesValues: HTTP 404: ")
    assert "injected fault 404" in failure["reason"]
    assert (
        f"failed: workspace-0/project-0/P0-1/{failure['field']}: getFloatSeriesValues: HTTP 404"
        in result.stderr
    )
    assert server.api_token not in all_output(result, dest)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no token", "error: No Neptune API token. Set NEPTUNE_API_TOKEN"),
        ("malformed token", "error: The API token is malformed."),
        ("revoked token", "error: Neptune rejected the API token"),
        (
            "unknown project",
            "error: Project 'workspace-0/nope' does not exist or this API token may not read it.",
        ),
        ("bad project name", "error: Project names must look like WORKSPACE/PROJECT; got 'just-a-name'."),
        ("unwritable destination", "error: Cannot write to"),
        (
            "missing arguments",
            "error: Missing --output. Example: neptune-backup --projects ws/proj --output ./backup",
        ),
        ("bad concurrency", "error: --concurrency must be a whole number of at least 1; got 0."),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(
    server: FakeNeptuneServer, tmp_path: Path, case: str, message: str
) -> None:
    dest = tmp_path / "out"
    args = ["--projects", "workspace-0/project-0", "--output", str(dest)]
    token: str | None = server.api_token
    if case == "no token":
        token = None
    elif case == "malformed token":
        token = "not-a-token"
    elif case == "revoked token":
        server.revoke_token()
    elif case == "unknown project":
        args[1] = "workspace-0/project-0,workspace-0/nope"
    elif case == "bad project name":
        args[1] = "just-a-name"
    elif case == "unwritable destination":
        (tmp_path / "a-file").write_text("")
        args[3] = str(tmp_path / "a-file" / "out")
    elif case == "missing arguments":
        args = args[:2]
    elif case == "bad concurrency":
        args += ["--concurrency", "0"]
    result = run_here(*args, token=token)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(message), result.stderr
    assert "Traceback" not in result.stderr
    assert server.api_token not in result.stderr + result.stdout
    # Nothing was backed up: bad input is refused before any run is fetched.
    assert server.stats.by_operation["getExperimentAttributes"] == 0


def test_list_projects(server: FakeNeptuneServer) -> None:
    result = run_here("list-projects", token=server.api_token)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["workspace-0/project-0", "workspace-0/project-1"]


def test_demo_backs_up_a_sample_workspace_without_an_account(tmp_path: Path) -> None:
    result = run_cli("--demo", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    dest = tmp_path / "neptune-backup-demo"
    report = json.loads((dest / "backup-report.json").read_text())
    assert report["exit_code"] == 0 and report["totals"]["runs_done"] == 8
    assert (
        (dest / "workspace-0" / "project-0" / "P0-1" / "images" / "predictions" / "0.png")
        .read_bytes()
        .startswith(b"\x89PNG")
    )
    # What to try next, as commands to copy.
    assert "Try next:" in result.stderr
    assert "python -m neptune_backup_async view neptune-backup-demo " in result.stderr
    assert "python -m neptune_backup_async verify neptune-backup-demo " in result.stderr
    for command in ("verify", "view", "report"):
        follow = run_cli(command, "neptune-backup-demo", cwd=tmp_path)
        assert follow.returncode == 0, (command, follow.stderr)


def test_a_rerun_with_nothing_changed_says_so_and_fetches_no_field(
    server: FakeNeptuneServer, tmp_path: Path
) -> None:
    dest = tmp_path / "out"
    args = ("--projects", "all", "--output", str(dest), "--quiet")
    assert run_here(*args, token=server.api_token).returncode == 0
    first = json.loads((dest / "backup-report.json").read_text())
    server.stats.reset()
    again = run_here(*args, token=server.api_token)
    assert again.returncode == 0, again.stderr
    last_time = first["finished_at"][:19].replace("T", " ")
    assert (
        f"Nothing changed since the last backup ({last_time} UTC): 8 runs, 2 models, 4 model versions"
        " and 2 project folders, all as they were" in again.stderr
    )
    assert "fields saved" not in again.stderr
    # The listings, and one field listing per project (its only way to tell when it changed).
    ops = server.stats.by_operation
    assert ops["getExperimentAttributes"] == 2
    listings = {"listProjects", "getProject", "searchLeaderboardEntries", "getExperimentAttributes"}
    assert {op for op, n in ops.items() if n} <= listings | STARTUP_OPERATIONS
    totals = json.loads((dest / "backup-report.json").read_text())["totals"]
    assert totals["project_unchanged"] == totals["project_found"] == 2
    assert totals["fields_done"] == 0 and totals["bytes_written"] == 0

    # `report` says when that backup ran.
    shown = run_here("report", str(dest))
    assert shown.returncode == 0
    second = json.loads((dest / "backup-report.json").read_text())
    assert shown.stdout.startswith(
        f"Backup started {second['started_at'][:19].replace('T', ' ')} UTC, finished "
    )

    # A changed project field is noticed again.
    server.world.set_field("workspace-0/project-1", "P1", "general/brief", m.String("changed"))
    changed = run_here(*args, token=server.api_token)
    assert "2 of 2 project folders backed up (1 unchanged, 0 failed)" in changed.stderr
    simple = json.loads(
        (dest / "workspace-0" / "project-1" / "_project" / "simple_metadata.json").read_text()
    )
    assert simple["general/brief"] == "changed"
