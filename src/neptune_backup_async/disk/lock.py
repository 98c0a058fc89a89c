"""One writer per DEST: a lock file in ``DEST/.neptune-backup/`` held for a command's life.

Each lock is a file, ``<name>.lock``, held with ``fcntl.flock`` (the kernel lets go of it when
its process ends, however it ends, so a lock whose holder is gone is free to take) and
holding a line about its holder: pid, host, start time and command, read back (and checked:
it is input too) to name the holder to whoever finds it held. Taking a lock first takes a
short-lived gate lock, so that checking the other locks (its rivals: a backup without
``--shard`` and any shard exclude each other, shards of different counts too) and taking
its own happen at once for every process. Where there is no ``fcntl`` (Windows) nothing is
locked.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import logging
import os
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import domain
from ..errors import DestinationError, DestinationLockedError
from .place import destination_error

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("neptune_backup_async")
FOLDER = ".neptune-backup"  # DEST's folder of our own: logs, partial downloads, locks
SUFFIX = ".lock"
_GATE = "locking"  # held only while a lock is being taken


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    started: str  # ISO 8601
    command: str

    def __str__(self) -> str:
        return f"{self.command} (pid {self.pid} on {self.host}, started {self.started})"

    @classmethod
    def read(cls, data: bytes) -> Holder | None:
        """The holder a lock file names; None unless it names one as :meth:`Lock.take` writes it."""
        with contextlib.suppress(ValueError):
            doc = json.loads(data.decode("utf-8"))
            if not isinstance(doc, dict):
                return None
            pid, host, started, command = (doc.get(k) for k in ("pid", "host", "started", "command"))
            if not (isinstance(pid, int) and not isinstance(pid, bool) and pid > 0):
                return None
            texts = (host, started, command)
            if not all(isinstance(t, str) and 0 < len(t) <= 255 and t.isprintable() for t in texts):
                return None
            domain.parse_iso(str(started))
            return cls(pid, str(host), str(started), str(command))
        return None


def _locked(dest: Path, holder: Holder | str) -> DestinationLockedError:
    return DestinationLockedError(
        f"Another {holder} is writing into {dest}. Wait for it to end, or stop it, and run this again:"
        " two at once would undo each other's work."
    )


def _open(path: Path) -> int:
    """A descriptor of the lock file ``path``, created if need be, never through a symbolic link."""
    return os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)


def _held_by(path: Path) -> Holder | str | None:
    """Blocking: who holds the lock file ``path`` (a description when its file names nobody);
    None when nobody does."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            data = os.pread(fd, 4096, 0)
            return Holder.read(data) or f"process (its lock file {path} names none we can read)"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class Lock:
    """A lock taken with :meth:`take`; :meth:`release` lets it go (the end of the process does too)."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    @classmethod
    def take(
        cls, dest: Path, name: str, command: str, rivals: Callable[[str], bool] = lambda _: False
    ) -> Lock:
        """Blocking: hold ``DEST/.neptune-backup/<name>.lock`` for ``command``, or raise
        DestinationLockedError naming the holder of it or of a lock whose name ``rivals`` says
        excludes it. A lock left by a process that is gone is taken over, and the log says so."""
        if fcntl is None:
            return cls(None)
        folder = dest / FOLDER
        try:
            folder.mkdir(exist_ok=True)
            if stat.S_ISLNK(os.lstat(folder).st_mode):
                raise OSError(errno.ELOOP, "it is a symbolic link")
            gate = _open(folder / f"{_GATE}{SUFFIX}")
        except OSError as e:
            raise DestinationError(
                f"Cannot lock {folder} ({e.strerror or e}). Check it, or choose another --output."
            ) from None
        try:
            fcntl.flock(gate, fcntl.LOCK_EX)  # held for a few calls by whoever takes a lock
            mine = folder / f"{name}{SUFFIX}"
            for path in sorted(folder.glob(f"*{SUFFIX}")):
                other = path.name[: -len(SUFFIX)]
                if other == name or rivals(other):
                    holder = _held_by(path)
                    if holder is not None:
                        raise _locked(dest, holder)
            try:
                fd = _open(mine)
            except OSError as e:
                raise DestinationError(f"Cannot lock {mine} ({e.strerror or e}). Check it.") from None
            try:
                # Free, as checked, unless taken without the gate.
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise _locked(dest, _held_by(mine) or "process") from None
            try:
                stale = Holder.read(os.pread(fd, 4096, 0))
                if stale is not None:
                    log.warning("took over the lock %s of %s: that process is gone", mine, stale)
                started = domain.iso(dt.datetime.now(dt.timezone.utc))
                record = Holder(os.getpid(), socket.gethostname()[:255] or "?", started, command)
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(vars(record)).encode("utf-8"), 0)
            except OSError as e:  # a full disk, say: no lock held, no file descriptor left open
                os.close(fd)
                raise destination_error(e, mine) or DestinationError(
                    f"Cannot lock {mine} ({e.strerror or e}). Check it."
                ) from None
            return cls(fd)
        finally:
            os.close(gate)  # and with it the gate

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        """Blocking: let the lock go, leaving its file empty (a file naming a holder is a stale lock)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # and with it the lock
