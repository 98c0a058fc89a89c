"""The command line as a user runs it: a real process, its exit code, what it prints."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from expect import check_backup
from neptune_backup_async.testing import FakeNeptuneServer, World
from neptune_backup_async.testing import model as m

CLI = [sys.executable, "-m", "neptune_backup_async"]


def run_cli(
    *args: str, token: str | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "NEPTUNE_API_TOKEN"}
    if token is not None:
        env["NEPTUNE_API_TOKEN"] = token
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )


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
    result = run_cli(
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
    result = run_cli(
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
    result = run_cli(*args, token=token)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(message), result.stderr
    assert "Traceback" not in result.stderr
    assert server.api_token not in result.stderr + result.stdout
    # Nothing was backed up: bad input is refused before any run is fetched.
    assert server.stats.by_operation["getExperimentAttributes"] == 0


def test_list_projects(server: FakeNeptuneServer) -> None:
    result = run_cli("list-projects", token=server.api_token)
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


class Terminal:
    """A child process on a pseudo-terminal, read and typed into like a person would."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            args, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, close_fds=True
        )
        os.close(slave)
        self.screen = ""

    def read_until(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.screen:
            left = deadline - time.monotonic()
            assert left > 0, f"never saw {text!r}; screen:\n{self.screen}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    self.screen += os.read(self.master, 4096).decode(errors="replace")
                except OSError:  # the child closed the terminal
                    assert text in self.screen, f"never saw {text!r}; screen:\n{self.screen}"
        return self.screen

    def type(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())


def test_interactive_prompts_on_a_terminal(
    demo_world: World, server: FakeNeptuneServer, tmp_path: Path
) -> None:
    term = Terminal([*CLI, "--quiet"], dict(os.environ, NEPTUNE_API_TOKEN=server.api_token), tmp_path)
    screen = term.read_until("Projects to back up (comma-separated, or 'all'): ")
    assert "  workspace-0/project-0\r\n  workspace-0/project-1" in screen
    term.type("workspace-0/project-1")
    term.read_until("Where to write the backup [./neptune-backup]: ")
    term.type("answers-dest")
    term.read_until("Download the files artifacts point to? [y/N]: ")
    term.type("y")
    term.read_until("4 of 4 runs backed up (0 unchanged, 0 failed)")
    assert term.proc.wait(timeout=60) == 0
    dest = tmp_path / "answers-dest"
    project = demo_world.project("workspace-0/project-1")
    for run in project.runs:
        assert (
            dest / "workspace-0" / "project-1" / run.sys_id / "datasets" / "train" / "part-0.bin"
        ).is_file()
