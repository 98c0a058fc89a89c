"""Writing a backup to disk: every file goes to a temporary name and is renamed into place.

A file under its final name is therefore always complete. Bytes are hashed as they pass,
so the manifest gets each file's size and sha256 without reading it again.

Three writers, by how the bytes come: :class:`AtomicFile` streams a download through
aiofiles, chunk by chunk; :class:`ThreadFile` is written by blocking calls made in the
worker thread that fetched the bytes (a series page is fetched, formatted, written and, the
last one, committed in one thread call); :func:`write_file` writes a document already in
memory in one thread call.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import TypeVar

import aiofiles
import aiofiles.os
import anyio

from ..errors import DestinationError

T = TypeVar("T")
TEMP_SUFFIX = ".partial"
_temp_ids = itertools.count()  # with the pid, unique among all writers of a DEST
# Marks the temporary files of one shard, so that shards sharing a DEST each clean up only
# their own leftovers; set per backup, so two backups in one process keep theirs apart.
temp_tag: ContextVar[str] = ContextVar("temp_tag", default="")


@contextlib.contextmanager
def tagged_temporaries(tag: str) -> Iterator[None]:
    """Name the temporary files written inside with ``tag`` (see :data:`temp_tag`)."""
    reset = temp_tag.set(tag)
    try:
        yield
    finally:
        temp_tag.reset(reset)


def _temp_token() -> str:
    return f"{temp_tag.get()}{os.getpid()}-{next(_temp_ids)}"


# Errors that mean the destination as a whole is unusable, not just one file.
_FATAL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


@dataclass(frozen=True)
class WrittenFile:
    path: str  # relative to the container's folder, POSIX style
    size: int
    sha256: str


def file_sha256(path: Path) -> str:
    """The sha256 of a file on disk (blocking)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def destination_error(e: OSError, path: Path) -> DestinationError | None:
    if e.errno == errno.ENOSPC or e.errno == errno.EDQUOT:
        return DestinationError(
            f"The disk holding {path} is full. Free some space and run the same command again."
        )
    if e.errno in _FATAL_ERRNOS:
        return DestinationError(
            f"Cannot write to {path} ({e.strerror}). Check its permissions, or choose another --output."
        )
    return None


class AtomicFile:
    """An async file written under a temporary name and renamed into place on success.

    ``limiter`` bounds the worker threads of its blocking calls (anyio's default if None).
    """

    def __init__(
        self,
        root: Path,
        rel: PurePosixPath,
        on_bytes: Callable[[int], None] | None = None,
        *,
        limiter: anyio.CapacityLimiter | None = None,
    ) -> None:
        self.root = root
        self.rel = rel
        self.final = root / rel
        self.temp = root / temp_name(rel, _temp_token())
        self._hash = hashlib.sha256()
        self._size = 0
        self._on_bytes = on_bytes
        self._limiter = limiter
        self._file: aiofiles.threadpool.binary.AsyncBufferedIOBase | None = None
        self.result: WrittenFile | None = None

    async def __aenter__(self) -> AtomicFile:
        try:
            await aiofiles.os.makedirs(self.final.parent, exist_ok=True)
            # Shielded: a task cancelled during the open would never see the file that the
            # executor thread still creates, and could not remove it.
            with anyio.CancelScope(shield=True):
                self._file = await aiofiles.open(self.temp, "wb")
        except OSError as e:
            raise destination_error(e, self.final) or e from None
        return self

    async def write(self, data: bytes, *, count: bool = True) -> None:
        """Append ``data``; ``count=False`` keeps bytes copied from the old backup out of progress."""
        assert self._file is not None
        self._hash.update(data)
        self._size += len(data)
        try:
            await self._file.write(data)
        except OSError as e:
            raise destination_error(e, self.final) or e from None
        if count and self._on_bytes is not None:
            self._on_bytes(len(data))

    async def reset(self) -> None:
        """Start the file over, as if nothing had been written."""
        assert self._file is not None
        await self._file.seek(0)
        await self._file.truncate()
        self._hash = hashlib.sha256()
        self._size = 0

    async def inspect(self, look: Callable[[Path], T]) -> T:
        """``look`` at the file as written so far, by its temporary name, in a worker thread
        (it must only read): to judge it before it may take its final name."""
        assert self._file is not None
        await self._file.flush()
        return await anyio.to_thread.run_sync(look, self.temp, limiter=self._limiter)

    @property
    def size(self) -> int:
        return self._size

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._file is not None
        try:
            if exc_type is None:
                await self._file.flush()
                fd = self._file.fileno()
                await anyio.to_thread.run_sync(_commit, fd, self.temp, self.final, limiter=self._limiter)
                self.result = WrittenFile(self.rel.as_posix(), self._size, self._hash.hexdigest())
        except OSError as e:
            raise destination_error(e, self.final) or e from None
        finally:
            # After a commit nothing is left to flush; after a failure, closing would try to
            # flush the rest (into a full disk, say) and must not hide the real error.
            with anyio.CancelScope(shield=True), contextlib.suppress(OSError):
                await self._file.close()
            if self.result is None:
                with contextlib.suppress(OSError):
                    os.unlink(self.temp)


class ThreadFile:
    """A file written under a temporary name by blocking calls from worker threads, and
    renamed into place by :meth:`commit`; the async side that owns it calls :meth:`abort`
    (in :func:`thread_file`) if it gives up.

    A cancelled request abandons its worker thread (:meth:`.gate.Gate.thread`), which may run
    on and call :meth:`write` or :meth:`commit` after the abort. So every call checks, under
    one lock, that the file is still wanted: once :meth:`abort` has returned, nothing creates,
    writes or renames anything, and the temporary file is gone. The file is created by the
    first write, so a request that never got its answer leaves nothing to remove.
    """

    def __init__(self, root: Path, rel: PurePosixPath) -> None:
        self.rel = rel
        self.final = root / rel
        self.temp = root / temp_name(rel, _temp_token())
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._aborted = False
        self._hash = hashlib.sha256()
        self.size = 0
        self.result: WrittenFile | None = None

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def write(self, *chunks: bytes) -> None:
        """Blocking: append ``chunks``."""
        with self._lock:
            fd = self._open()
            try:
                for data in chunks:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                    self._hash.update(data)
                    self.size += len(data)
            except OSError as e:
                raise destination_error(e, self.final) or e from None

    def reset(self) -> None:
        """Blocking: start the file over, as if nothing had been written."""
        with self._lock:
            fd = self._open()
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            self._hash = hashlib.sha256()
            self.size = 0

    def commit(self) -> WrittenFile:
        """Blocking: make the file durable and rename it into place."""
        with self._lock:
            fd = self._open()
            try:
                _commit(fd, self.temp, self.final)
            except OSError as e:
                raise destination_error(e, self.final) or e from None
            self._fd = None
            os.close(fd)
            self.result = WrittenFile(self.rel.as_posix(), self.size, self._hash.hexdigest())
            return self.result

    def abort(self) -> None:
        """Blocking: give the file up; no call after this one touches the disk."""
        with self._lock:
            self._aborted = True
            if self._fd is not None:
                fd, self._fd = self._fd, None
                with contextlib.suppress(OSError):
                    os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(self.temp)

    def _open(self) -> int:
        """The file's descriptor, creating the file on first use; the lock must be held."""
        if self._aborted or self.result is not None:
            raise Abandoned(f"{self.rel} was given up or committed already")
        if self._fd is None:
            try:
                self.final.parent.mkdir(parents=True, exist_ok=True)
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
                self._fd = os.open(self.temp, flags, 0o666)
            except OSError as e:
                raise destination_error(e, self.final) or e from None
        return self._fd


class Abandoned(Exception):
    """A write to a :class:`ThreadFile` after it was given up (by a thread a cancel abandoned)."""


@contextlib.asynccontextmanager
async def thread_file(
    root: Path, rel: PurePosixPath, limiter: anyio.CapacityLimiter | None = None
) -> AsyncIterator[ThreadFile]:
    """A :class:`ThreadFile` for ``rel`` below ``root``, aborted on the way out unless committed.

    The abort waits for a write in progress in another thread (shielded), so once this
    returns or raises, the file is either in place or gone for good. ``limiter`` bounds the
    thread of the abort (anyio's default if None).
    """
    out = ThreadFile(root, rel)
    try:
        yield out
    finally:
        if out.result is None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(out.abort, limiter=limiter)


def _commit(fd: int, temp: Path, final: Path) -> None:
    """Blocking: make the temporary file durable and rename it over the final name."""
    os.fsync(fd)
    os.replace(temp, final)


def _write_whole(temp: Path, final: Path, data: bytes) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        with temp.open("wb") as f:
            f.write(data)
            f.flush()
            _commit(f.fileno(), temp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def write_whole(root: Path, rel: PurePosixPath, data: bytes) -> WrittenFile:
    """Blocking: write a whole small document atomically (see :func:`write_file`)."""
    final = root / rel
    try:
        _write_whole(root / temp_name(rel, _temp_token()), final, data)
    except OSError as e:
        raise destination_error(e, final) or e from None
    return WrittenFile(rel.as_posix(), len(data), hashlib.sha256(data).hexdigest())


async def write_file(
    root: Path,
    rel: PurePosixPath,
    data: bytes,
    on_bytes: Callable[[int], None] | None = None,
    *,
    limiter: anyio.CapacityLimiter | None = None,
) -> WrittenFile:
    """Write a whole small document atomically, in one worker-thread call (under ``limiter``,
    anyio's default if None).

    Streamed data goes through :class:`AtomicFile` and aiofiles; a document already in
    memory is written by one blocking call, which costs one thread hop instead of six.
    """
    written = await anyio.to_thread.run_sync(write_whole, root, rel, data, limiter=limiter)
    if on_bytes is not None:
        on_bytes(len(data))
    return written


def remove_temporaries(folder: Path, tag: str = "") -> int:
    """Delete the leftovers of an interrupted backup below ``folder``; returns how many.

    With a ``tag`` (see :data:`temp_tag`), only those of the backup that used that tag.
    """
    removed = 0
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            if name.startswith(".") and name.endswith(TEMP_SUFFIX) and f".{tag}" in name:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(dirpath, name))
                    removed += 1
    return removed


def temp_name(path: PurePosixPath, token: str) -> PurePosixPath:
    """The temporary name a file is written under before it is renamed into place.

    A long name is cut (with a hash of it, to keep it unique), so the temporary name stays
    within NAME_MAX.
    """
    name = path.name
    if len(name.encode("utf-8")) > 150:
        name = (
            name.encode("utf-8")[:120].decode("utf-8", errors="ignore")
            + "~"
            + hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]
        )
    return path.with_name(f".{name}.{token}{TEMP_SUFFIX}")
