"""Every way a first-time user made the command line print a traceback: now one line and the promised exit code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from cli_helpers import CLI, cli_env, command, held, no_traceback, run_here
from expect import check_backup
from memory_source import MemorySource
from neptune_backup_async import Selection, backup
from neptune_backup_async.testing import FakeNeptuneServer, Faults, Hold, World, serve

PROJECT = "workspace-0/project-1"


def small_backup(world: World, dest: Path) -> None:
    selection = Selection(objects=frozenset({"runs"}))
    report = anyio.run(lambda: backup(PROJECT, dest, source=MemorySource(world), selection=selection))
    assert report.exit_code == 0


def test_a_log_file_that_cannot_be_written_exits_2_before_anything_is_created(
    server: FakeNeptuneServer, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")
    dest = tmp_path / "out"
    log = tmp_path / "a-file" / "backup.log"
    result = run_here(
        "--projects", PROJECT, "--output", str(dest), "--log-file", str(log), token=server.api_token
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: Cannot write the log file {log} (a file is in the way). Choose another --log-file or fix its"
        " permissions."
    ]
    no_traceback(result.stderr)
    assert not dest.exists()


def test_view_into_a_folder_that_cannot_be_written_exits_2(demo_world: World, tmp_path: Path) -> None:
    small_backup(demo_world, tmp_path / "backup")
    (tmp_path / "a-file").write_text("")
    site = tmp_path / "a-file" / "site"
    result = run_here("view", str(tmp_path / "backup"), "--output", str(site))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: Cannot write the site to {site} (Not a directory). Choose another --output or fix its permissions."
    ]
    no_traceback(result.stderr)


@pytest.mark.parametrize("command", ["verify", "report", "view"])
def test_a_backup_folder_that_does_not_exist_is_named_so(command: str, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-backup"
    result = run_here(command, str(missing))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {missing} does not exist. Give the folder a backup was written to."
    ]
    assert not missing.exists()


def test_verify_into_a_closed_pipe_keeps_its_exit_code(demo_world: World, tmp_path: Path) -> None:
    small_backup(demo_world, tmp_path)
    for csv in list(tmp_path.rglob("*.csv"))[:20]:  # 20 problems, one line each
        csv.write_text("damaged")
    read, write = os.pipe()
    os.close(read)  # like `| head` that has stopped reading: every write fails
    with subprocess.Popen(
        [*CLI, "verify", str(tmp_path), "--deep"], stdout=write, stderr=subprocess.PIPE, text=True
    ) as proc:
        os.close(write)
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1  # problems found, as verify promises
    assert "Verified 4 objects and" in stderr and ": 20 problems." in stderr
    no_traceback(stderr)


def test_an_unexpected_error_is_one_line_pointing_to_a_log_that_exists(tmp_path: Path) -> None:
    # A report of the wrong shape is named as such now (test_hostile_dest.py): a bug is planted instead.
    code = (
        "import sys\n"
        "from neptune_backup_async.cli import main\n"
        "def load_reports(dest): return {}.missing\n"
        "main.load_reports = load_reports\n"
        f"sys.exit(main.main(['report', {str(tmp_path)!r}]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(None))
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: unexpected AttributeError: ")
    log = Path(line.rsplit("Please report it with the log file ", 1)[1])
    assert "Traceback" in log.read_text() and "AttributeError" in log.read_text()
    log.unlink()


def test_ctrl_c_while_listing_projects_on_a_slow_server(demo_world: World) -> None:
    with (
        serve(demo_world, faults=Faults(latency=30)) as server,
        subprocess.Popen(
            [*CLI, "list-projects"],
            env=cli_env(server.api_token),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc,
    ):
        deadline = time.monotonic() + 60
        while server.stats.total == 0:  # the first request is waiting on the server
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=20)  # not the 30 s the request would take
    assert proc.returncode == 130
    assert stdout == "" and stderr.strip() == "Interrupted."
    no_traceback(stderr)


@pytest.mark.slow
def test_two_quick_ctrl_c_stop_a_backup_cleanly_and_it_resumes(demo_world: World, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    args = command("--projects", "all", "--output", str(dest), "--concurrency", "4", "--download-artifacts")
    with serve(demo_world) as server:
        # The second Ctrl-C at once, or once the first has been answered; both while requests
        # are in flight: after its first 30, the server holds every request of the backup.
        for second_after_answer in (False, True):
            hold = server.faults.hold = Hold(after=30)
            with subprocess.Popen(
                args,
                env=cli_env(server.api_token),
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
            ) as proc:
                assert proc.stderr is not None
                assert held(hold, proc), proc.stderr.read()
                proc.send_signal(signal.SIGINT)
                stderr = ""
                while (
                    second_after_answer and "Interrupted" not in stderr and (line := proc.stderr.readline())
                ):
                    stderr += line
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
                stderr += proc.communicate(timeout=30)[1]
            hold.release()
            assert proc.returncode == 130, stderr
            no_traceback(stderr)
            assert "run the same command again to resume" in stderr
        server.faults.hold = None
        done = subprocess.run(
            args, env=cli_env(server.api_token), capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 0, done.stderr
    assert not list(dest.rglob("*.partial"))
    assert check_backup(demo_world, dest, artifacts_downloaded=True) == 16
    assert json.loads((dest / "backup-report.json").read_text())["exit_code"] == 0


def test_a_change_in_the_clients_private_api_is_a_bug_not_an_unreachable_server(
    server: FakeNeptuneServer, tmp_path: Path
) -> None:
    # As a newer neptune client without a private function the backup uses would fail.
    script = (
        "import sys\n"
        "from neptune.internal.backends import hosted_client\n"
        "del hosted_client._get_token_client\n"
        "from neptune_backup_async.cli.main import main\n"
        f"sys.exit(main(['--projects', 'all', '--output', {str(tmp_path)!r}, '--processes', '1']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=cli_env(server.api_token),
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr  # a bug, not "server unreachable" (exit 2)
    assert "error: unexpected AttributeError while the neptune client started: " in result.stderr
    assert "Cannot reach" not in result.stderr
    no_traceback(result.stderr)
    [log] = (tmp_path / ".neptune-backup").glob("backup-*.log")
    text = log.read_text()
    assert (
        "the neptune client failed to start" in text and "Traceback" in text and "_get_token_client" in text
    )
