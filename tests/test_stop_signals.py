"""SIGTERM and SIGHUP stop a backup as the first Ctrl-C does: the report says it was
interrupted, with the exit code the process ends with, the log has its summary, and no
temporary file is left; worker processes stop cleanly too, and a rerun completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from cli_helpers import CLI, cli_env, no_traceback, run_here
from neptune_backup_async.testing import FakeNeptuneServer, Faults, World, serve

#: Runs a command as PID 1 of a new PID namespace, as in a container: a signal it has no
#: handler for never reaches it (unshare waits for it, and exits as it does).
AS_PID_1 = ("unshare", "--user", "--map-root-user", "--pid", "--fork")


def start(
    server: FakeNeptuneServer, dest: Path, processes: str, *, under: tuple[str, ...] = ()
) -> subprocess.Popen[str]:
    """The backup as a process of its own, started through ``under`` (a command that runs it)."""
    args = [
        "--projects",
        "all",
        "--output",
        str(dest),
        "--concurrency",
        "4",
        "--quiet",
        "--processes",
        processes,
    ]
    return subprocess.Popen(
        [*under, *CLI, *args],
        env=cli_env(server.api_token),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def after_requests(server: FakeNeptuneServer, proc: subprocess.Popen[str], count: int) -> None:
    """Wait until the server has answered ``count`` requests of this backup (it is under way)."""
    deadline = time.monotonic() + 60
    while server.stats.total < count:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the backup made no progress"
        time.sleep(0.005)


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize(
    ("signum", "processes", "to_workers_too", "as_pid_1"),
    [
        (signal.SIGINT, "1", False, False),  # as Ctrl-C: exit 130, and so says the report
        # The quick part of the suite (-m "not slow") keeps the first; these take seconds each.
        *(
            pytest.param(*case, marks=pytest.mark.slow)
            for case in [
                (signal.SIGTERM, "1", False, False),
                (signal.SIGTERM, "1", False, True),
                (signal.SIGHUP, "1", False, False),
                (signal.SIGTERM, "2", False, False),
                (signal.SIGTERM, "2", True, False),  # as a service manager stops every process of the unit
            ]
        ),
    ],
)
def test_a_stop_signal_mid_backup_stops_it_like_ctrl_c(
    slow_world: World, tmp_path: Path, signum: int, processes: str, to_workers_too: bool, as_pid_1: bool
) -> None:
    dest = tmp_path / "dest"
    with serve(slow_world, faults=Faults(latency=0.02)) as server:
        proc = start(server, dest, processes, under=AS_PID_1 if as_pid_1 else ())
        after_requests(server, proc, 60)
        [program] = children(proc.pid) if as_pid_1 else [proc.pid]
        workers = children(program)
        assert len(workers) == int(processes) - 1
        os.kill(program, signum)
        for worker in workers if to_workers_too else []:
            os.kill(worker, signum)
        _, stderr = proc.communicate(timeout=60)

        assert proc.returncode == 128 + signum, stderr
        no_traceback(stderr)
        assert (
            "Interrupted. Everything finished so far is kept; run the same command again to resume." in stderr
        )
        report = json.loads((dest / "backup-report.json").read_text())
        assert report["interrupted"] is True and report["exit_code"] == 128 + signum
        assert not list(dest.rglob("*.partial"))
        assert not [w for w in workers if running(w)]
        (log,) = (dest / ".neptune-backup").glob("backup-*.log")
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        text = log.read_text()
        assert f"{name} received: stopping" in text and f"interrupted by {name}" in text
        assert "Interrupted in " in text  # the summary

        # The rerun is not about signals: in this process, without the latency that kept the
        # first one running.
        server.faults.latency = 0
        rerun = run_here("--projects", "all", "--output", str(dest), "--quiet", token=server.api_token)
        assert rerun.returncode == 0, rerun.stderr
    assert run_here("verify", str(dest)).returncode == 0


@pytest.mark.slow  # a whole backup of the slow world
def test_under_nohup_a_hangup_goes_unheard_and_the_backup_completes(
    slow_world: World, tmp_path: Path
) -> None:
    """``nohup`` starts a command with SIGHUP ignored, so that it outlives the terminal; the
    backup (and its worker processes) leave it so."""
    dest = tmp_path / "dest"
    with serve(slow_world, faults=Faults(latency=0.02)) as server:
        proc = start(server, dest, "2", under=("nohup",))  # nohup execs the command: proc is the backup
        after_requests(server, proc, 60)
        [worker] = children(proc.pid)
        for pid in (proc.pid, worker):  # as a terminal that hangs up signals every process of the job
            os.kill(pid, signal.SIGHUP)
        at_hangup = server.stats.total
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
        assert server.stats.total > at_hangup  # it went on after the hangup
    report = json.loads((dest / "backup-report.json").read_text())
    assert (report["exit_code"], report["interrupted"]) == (0, False)
    (log,) = (dest / ".neptune-backup").glob("backup-*.log")
    assert "SIGHUP" not in log.read_text()
    assert run_here("verify", str(dest)).returncode == 0
