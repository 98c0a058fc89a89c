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


def start(
    server: FakeNeptuneServer, dest: Path, processes: str, *, as_pid_1: bool = False
) -> subprocess.Popen[str]:
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
        [*CLI, *args],
        env=cli_env(server.api_token),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As PID 1 in a container, a signal with no handler is ignored: so is SIGTERM here.
        preexec_fn=(lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN)) if as_pid_1 else None,
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
        proc = start(server, dest, processes, as_pid_1=as_pid_1)
        after_requests(server, proc, 60)
        workers = children(proc.pid)
        assert len(workers) == int(processes) - 1
        proc.send_signal(signum)
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
