"""The exit codes and counts that cron jobs and CI read, and one-line errors (issue 23)."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from cli_helpers import CLI, cli_env, run_here
from neptune_backup_async.testing import FakeNeptuneServer, Faults, WorkloadSpec, generate, serve

PROJECT = "workspace-0/project-1"


def _closed_pipe() -> int:
    """The writing end of a pipe whose reader is gone, like ``| head -0``."""
    read, write = os.pipe()
    os.close(read)
    return write


def test_a_closed_stdout_or_stderr_does_not_change_the_exit_code(
    server: FakeNeptuneServer, tmp_path: Path
) -> None:
    dest = tmp_path / "out"
    pipe = _closed_pipe()
    try:
        # `neptune-backup ... 2>&1 | head -0`, then `view DEST | head -0` and `report DEST | head -0`.
        backup = subprocess.run(
            [*CLI, "--projects", "all", "--output", str(dest), "--quiet"],
            stdout=pipe,
            stderr=pipe,
            env=cli_env(server.api_token),
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
        view = subprocess.run([*CLI, "view", str(dest)], stdout=pipe, stderr=subprocess.PIPE, text=True)
        report = subprocess.run([*CLI, "report", str(dest)], stdout=pipe, stderr=pipe)
    finally:
        os.close(pipe)
    assert json.loads((dest / "backup-report.json").read_text())["exit_code"] == 0
    assert backup.returncode == 0
    assert (view.returncode, view.stderr) == (0, "")
    assert (dest / "_site" / "index.html").exists()
    assert report.returncode == 0


def test_report_counts_what_a_later_report_supersedes_once(server: FakeNeptuneServer, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    whole = ["--projects", PROJECT, "--output", str(dest), "--quiet"]
    for args in (whole, [*whole, "--shard", "0/2"], whole):  # a shard between two whole backups
        assert run_here(*args, token=server.api_token).returncode == 0
        result = run_here("report", str(dest), "--output", str(tmp_path / "merged.json"))
        assert result.returncode == 0, result.stdout
        assert "4 of 4 runs backed up" in result.stdout or ": 4 runs," in result.stdout, result.stdout
        assert "missing shards" not in result.stdout
        merged = json.loads((tmp_path / "merged.json").read_text())
        assert merged["totals"]["runs_found"] == 4
        assert not merged.get("missing_shards")


def test_verify_checks_the_part_of_a_backup_it_is_given(server: FakeNeptuneServer, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    assert (
        run_here("--projects", PROJECT, "--output", str(dest), "--quiet", token=server.api_token).returncode
        == 0
    )
    project = dest / PROJECT
    run, other = sorted(p for p in project.iterdir() if p.is_dir() and not p.name.startswith("_"))[:2]
    next(f for f in other.rglob("*.csv")).write_text("damaged")  # a problem outside the part verified
    for part, objects in (
        (dest / "workspace-0", "8 objects"),
        (run, "1 object"),
        (run / "metrics", "1 object"),
    ):
        result = run_here("verify", str(part))
        assert result.returncode == (1 if part.name == "workspace-0" else 0), result.stdout
        assert f"Verified {objects} and " in result.stderr, result.stderr
    (dest / "notes").mkdir()
    result = run_here("verify", str(dest / "notes"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {dest / 'notes'} is not a backup root: the backup is at {dest}."


def test_a_query_the_server_refuses_is_a_usage_error_before_anything_is_fetched(
    server: FakeNeptuneServer, tmp_path: Path
) -> None:
    dest = tmp_path / "out"
    result = run_here(
        "--projects", PROJECT, "--output", str(dest), "--query", "(sys/id = ", token=server.api_token
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: Neptune refused the query '(sys/id =' (HTTP 400). Write --query as you would in the runs"
        " table of Neptune's web app."
    ]
    assert not (dest / "workspace-0").exists()  # no model or project folder fetched first
    assert not (dest / "backup-report.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--concurrency", "abc"], "Argument --concurrency: invalid int value: 'abc'"),
        (["--lost-server-after", "abc"], "Argument --lost-server-after: invalid float value: 'abc'"),
        (["--shard", "-1/4"], "Argument --shard: expected one argument"),
    ],
)
def test_a_bad_argument_is_one_line_with_the_help_hint(args: list[str], message: str, tmp_path: Path) -> None:
    result = run_here(*args, "--projects", PROJECT, "--output", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: {message}. Run `python -m neptune_backup_async backup --help` for the options."
    ]
    assert not (tmp_path / "out").exists()


def test_load_mlflow_of_a_project_the_backup_lacks_exits_2_creating_nothing(
    server: FakeNeptuneServer, tmp_path: Path
) -> None:
    pytest.importorskip("mlflow")
    dest = tmp_path / "out"
    assert (
        run_here("--projects", PROJECT, "--output", str(dest), "--quiet", token=server.api_token).returncode
        == 0
    )
    before = sorted(dest.rglob("*"))
    result = run_here("load-mlflow", str(dest), "--projects", "workspace-0/nope")
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"error: The backup in {dest} has no project 'workspace-0/nope'. Name projects as WORKSPACE/PROJECT,"
        " as folders in it."
    ]
    assert sorted(dest.rglob("*")) == before  # no database, no report


def test_run_ids_that_match_nothing_are_named(server: FakeNeptuneServer, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    result = run_here(
        "--projects",
        PROJECT,
        "--output",
        str(dest),
        "--quiet",
        "--runs",
        "NOPE-1,P1-1",
        token=server.api_token,
    )
    assert result.returncode == 0, result.stderr  # documented: a run may have been deleted since
    reason = "no run has this id (or the other filters, or the trash, leave it out)"
    assert f"  note: all/NOPE-1: {reason}" in result.stderr.splitlines()
    report = json.loads((dest / "backup-report.json").read_text())
    assert report["totals"]["runs_found"] == 1
    assert [(n["run"], n["reason"]) for n in report["notices"]] == [("NOPE-1", reason)]


def test_an_empty_token_file_is_named_so(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("\n")
    result = run_here("list-projects", "--api-token-file", str(tmp_path / "token"))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: The API token file {tmp_path / 'token'} is empty. Put your Neptune API token in it."
    ]


@pytest.mark.parametrize(
    "args",
    [
        ["--concurrency", "0"],
        ["--processes", "-1"],
        ["--lost-server-after", "0"],
        ["--projects", "nope"],
        ["--shard", "5/4"],
        ["--state", "bogus"],
        ["--s3-endpoint-url", "notaurl"],
        [],  # with no token
    ],
)
def test_a_usage_error_creates_nothing(args: list[str], server: FakeNeptuneServer, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    token = server.api_token if args else None
    result = run_here(
        "--projects", PROJECT, "--output", str(dest), *args, token=token
    )  # the last --projects wins
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    assert not dest.exists()


def test_a_concurrency_beyond_the_cap_is_cut_with_one_warning(
    server: FakeNeptuneServer, tmp_path: Path
) -> None:
    dest, log = tmp_path / "out", tmp_path / "backup.log"
    result = run_here(
        *("--projects", PROJECT, "--output", str(dest), "--quiet", "--processes", "1"),
        *("--concurrency", "100000", "--log-file", str(log)),
        token=server.api_token,
    )
    assert result.returncode == 0, result.stderr
    cut = "--concurrency 100000 is more than a backup can use; using 256."
    assert result.stderr.splitlines().count(f"warning: {cut}") == 1, result.stderr
    assert log.read_text().count(cut) == 1
    assert "at most 256, a larger value is cut" in " ".join(run_here("backup", "--help").stdout.split())


def test_ctrl_c_while_the_program_starts_is_one_line_and_exit_130(tmp_path: Path) -> None:
    for _ in range(3):
        # -X importtime prints a line as each module has been imported: the signal is sent as
        # soon as the command line's own modules load, the slow second before any work. Its
        # stderr is a pipe of one page, which the test stops reading there: the child blocks on
        # its next lines (16 kB of them follow), so the signal lands while it is still starting,
        # however busy the machine.
        read, write = os.pipe()
        fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, 4096)
        proc = subprocess.Popen(
            [CLI[0], "-X", "importtime", *CLI[1:], "--projects", PROJECT, "--output", str(tmp_path / "out")],
            stderr=write,
            stdout=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            env=cli_env(None),
        )
        os.close(write)
        with open(read, encoding="utf-8") as stderr:
            for line in stderr:
                if "neptune_backup_async.cli" in line:
                    proc.send_signal(signal.SIGINT)
                    break
            rest = stderr.read()
        assert proc.wait(timeout=60) == 130, rest
        said = [line for line in rest.splitlines() if line and not line.startswith("import time:")]
        assert said == ["Interrupted."], rest
        assert not (tmp_path / "out").exists()


def test_importing_the_package_imports_none_of_its_parts_until_used() -> None:
    code = (
        "import sys, neptune_backup_async as n\n"
        "print(sorted(m for m in sys.modules if m.startswith('neptune_backup_async')))\n"
        "from neptune_backup_async import backup, UsageError, load_reports\n"
        "print(backup.__module__, UsageError.__module__, load_reports.__module__, 'api' in dir(n))"
    )
    result = subprocess.run([CLI[0], "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines() == [
        "['neptune_backup_async']",
        "neptune_backup_async.api neptune_backup_async.errors neptune_backup_async.format.reports True",
    ]


@pytest.mark.parametrize("requests_before", [1, 60])  # while connecting, and while backing up
def test_the_log_of_an_interrupted_backup_is_true_and_ends_with_a_summary(
    tmp_path: Path, requests_before: int
) -> None:
    from test_stop_signals import after_requests, start

    spec = WorkloadSpec(projects_per_workspace=1, runs_per_project=6, float_series=4, float_series_length=300)
    world = generate(spec, artifact_root=tmp_path / "artifact-sources")
    dest = tmp_path / "dest"
    with serve(world, faults=Faults(latency=0.02)) as server:
        proc = start(server, dest, "2")  # with a worker process, which stops cleanly
        after_requests(server, proc, requests_before)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    (log,) = (dest / ".neptune-backup").glob("backup-*.log")
    lines = log.read_text().splitlines()
    assert not [line for line in lines if "did not stop" in line]
    summary = "Stopped before the backup began" if requests_before == 1 else "Interrupted in "
    assert [line for line in lines if summary in line], lines
