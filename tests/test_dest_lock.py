"""One writer per DEST: a second backup into a folder that one is writing fails at once,
naming the first; shards of one backup run side by side; a lock whose process is gone is
taken over."""

from __future__ import annotations

import errno
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from cli_helpers import no_traceback, run_cli
from neptune_backup_async import DestinationLockedError, backup
from neptune_backup_async.api import backup_lock
from neptune_backup_async.errors import DestinationError
from neptune_backup_async.selection import Selection, Shard
from neptune_backup_async.testing import MINIMAL, FakeNeptuneServer, generate, serve


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FakeNeptuneServer]:
    world = generate(replace(MINIMAL, runs_per_project=4), artifact_root=tmp_path / "sources")
    with serve(world) as s:
        yield s


def cli_backup(server: FakeNeptuneServer, dest: Path, *args: str) -> tuple[int, str]:
    result = run_cli("--projects", "all", "--output", str(dest), "--quiet", *args, token=server.api_token)
    no_traceback(result.stderr)
    return result.returncode, result.stderr


def test_a_second_backup_into_a_dest_being_written_fails_at_once_naming_the_first(
    server: FakeNeptuneServer, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    partial = dest / ".loss.csv.4242-0.partial"  # the first backup's file in flight
    partial.write_bytes(b"half")
    with backup_lock(dest, Selection()):  # as the first backup holds it
        record = json.loads((dest / ".neptune-backup" / "backup.lock").read_text())
        code, stderr = cli_backup(server, dest)
        assert code == 2
        (line,) = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert line.startswith(
            f"error: Another backup (pid {os.getpid()} on {record['host']}, started {record['started']}) is"
            f" writing into {dest}."
        )
        assert server.stats.total == 0  # it stopped before asking anything
        assert partial.exists()
        with pytest.raises(DestinationLockedError, match=f"pid {os.getpid()}"):
            anyio.run(lambda: backup("all", dest, api_token=server.api_token))
    assert (dest / ".neptune-backup" / "backup.lock").read_bytes() == b""  # released: it names nobody
    assert cli_backup(server, dest)[0] == 0


def test_shards_of_one_count_run_side_by_side_and_exclude_everything_else(
    server: FakeNeptuneServer, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    with backup_lock(dest, Selection(shard=Shard(0, 2))):
        assert cli_backup(server, dest, "--shard", "1/2")[0] == 0
        for others in (["--shard", "0/2"], ["--shard", "0/3"], []):
            code, stderr = cli_backup(server, dest, *others)
            assert code == 2, others
            assert f"error: Another backup --shard 0/2 (pid {os.getpid()} on " in stderr
    with backup_lock(dest, Selection()):
        code, stderr = cli_backup(server, dest, "--shard", "1/2")
        assert code == 2 and f"error: Another backup (pid {os.getpid()} on " in stderr


def test_a_lock_left_by_a_process_that_is_gone_is_taken_over_and_the_log_says_so(
    server: FakeNeptuneServer, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    (dest / ".neptune-backup").mkdir(parents=True)
    gone = {
        "pid": 999_999_999,
        "host": "elsewhere",
        "started": "2026-01-01T00:00:00.000+00:00",
        "command": "backup",
    }
    (dest / ".neptune-backup" / "backup.lock").write_text(json.dumps(gone))
    assert cli_backup(server, dest)[0] == 0
    (log,) = (dest / ".neptune-backup").glob("backup-*.log")
    assert (
        f"took over the lock {dest / '.neptune-backup' / 'backup.lock'} of backup (pid 999999999 on elsewhere,"
        " started 2026-01-01T00:00:00.000+00:00): that process is gone"
    ) in log.read_text()


def test_a_lock_file_that_names_nobody_readable_is_input_too(
    server: FakeNeptuneServer, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    (dest / ".neptune-backup").mkdir(parents=True)
    path = dest / ".neptune-backup" / "backup.lock"
    with path.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write('{"pid": "1; rm -rf /", "host": "\\u001b[2J"}')
        held.flush()
        code, stderr = cli_backup(server, dest)
    assert code == 2
    assert (
        f"error: Another process (its lock file {path} names none we can read) is writing into {dest}."
        in stderr
    )


def test_a_lock_that_cannot_be_written_says_why_and_leaves_the_lock_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk while the lock records its holder: a DestinationError that says what to do,
    and no file descriptor left holding the lock, so the next try (in the same process) takes it."""

    def full(fd: int, data: bytes, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(os, "pwrite", full)
        with pytest.raises(DestinationError, match=r"is full\. Free some space"):
            backup_lock(tmp_path, Selection())
    with backup_lock(tmp_path, Selection()) as lock:  # free again
        assert lock is not None
