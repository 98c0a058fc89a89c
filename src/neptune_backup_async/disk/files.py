"""Writing a backup to disk: every file goes to a temporary name and is renamed into place.

A file under its final name is therefore always complete. Bytes are hashed as they pass,
so the manifest gets each file's size and sha256 without reading it again. Every file is
named by a :class:`~.place.Place` and a path below it, so no write follows a link or
leaves DEST.

:class:`ThreadFile` is the one writer: blocking calls, made by whichever worker thread has
the bytes (a series page is fetched, formatted, written and, the last one, committed in one
thread call). :class:`AtomicFile` drives one from async code, each call one thread call (a
download streamed chunk by chunk); :func:`write_whole` and :func:`write_file` write a
document already in memory in one call. In its resume mode (:class:`Resume`) the writer
appends to the bytes an earlier try kept under a fixed name, and keeps them on failure (a
partial artifact download). :class:`Journal` appends whole lines to a file in place.

Thread calls run under the ``limiter`` their caller passes (the engine's, from
--concurrency); None means anyio's default limiter, which is per event loop (a module-level
CapacityLimiter would be bound to the first loop that used it). aiofiles is not used: its
calls go to the asyncio loop's executor, which no CapacityLimiter counts, and it would be a
second writer beside the blocking one that series pages need, without its guarantees (the
lock that shuts out an abandoned thread, files opened ``O_EXCL`` and ``O_NOFOLLOW``).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any, TypeVar

import anyio

from ..errors import DestinationError
from .place import Place, destination_errors, inside

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


@dataclass(frozen=True)
class Resume:
    """The writer's resume mode: the bytes go after those an earlier try kept in the file
    ``rel`` of ``place``, which stays there on failure, for the next try to go on from."""

    place: Place
    rel: PurePosixPath
    held: int  # bytes already there
    hashes: dict[str, Any]  # hashlib objects fed those bytes, by name; sha256 among them


class ThreadFile:
    """A file written by blocking calls, under a temporary name in its own folder, and renamed
    into place by :meth:`commit`; the async side that owns it calls :meth:`abort` (in
    :class:`AtomicFile`) if it gives up.

    A cancelled request abandons its worker thread (:meth:`.limiter.Gate.thread`), which may run
    on and call :meth:`write` or :meth:`commit` after the abort. So every call checks, under
    one lock, that the file is still wanted: once :meth:`abort` has returned, nothing creates,
    writes or renames anything, and the temporary file is gone (a resumed one is kept). The
    file is created by the first write, so a request that never got its answer leaves nothing
    to remove. ``vet(file)``, if given, judges the whole before it takes its name (by
    :attr:`hashes` and :attr:`size`), and raises to refuse it.
    """

    def __init__(
        self,
        place: Place,
        rel: PurePosixPath,
        *,
        resume: Resume | None = None,
        vet: Callable[[ThreadFile], None] | None = None,
    ) -> None:
        self.place = place
        self.rel = inside(rel)
        self.final = place.path / self.rel
        self._resumed = resume is not None
        if resume is None:
            self._at = (place, temp_name(self.rel, _temp_token()))
            self.hashes: dict[str, Any] = {"sha256": hashlib.sha256()}
            self.size = 0
        else:
            self._at = (resume.place, inside(resume.rel))
            self.hashes = resume.hashes
            self.size = resume.held
        self.temp = self._at[0].path / self._at[1]
        self._vet = vet
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._aborted = False
        self.result: WrittenFile | None = None

    @property
    def sha256(self) -> str:
        return str(self.hashes["sha256"].hexdigest())

    def write(self, *chunks: bytes) -> None:
        """Blocking: append ``chunks``."""
        with self._lock, destination_errors(self.final):
            fd = self._open()
            for data in chunks:
                _write_all(fd, data)
                for digest in self.hashes.values():
                    digest.update(data)
                self.size += len(data)

    def reset(self) -> None:
        """Blocking: start the file over, as if nothing had been written."""
        with self._lock, destination_errors(self.final):
            fd = self._open()
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            self.hashes = {name: hashlib.new(name) for name in self.hashes}
            self.size = 0

    def commit(self) -> WrittenFile:
        """Blocking: make the file durable, let ``vet`` judge it, and rename it into place."""
        with self._lock, destination_errors(self.final):
            fd = self._open()
            os.fsync(fd)
            if self._vet is not None:
                self._vet(self)
            place, temp = self._at
            place.replace(temp, self.place, self.rel)
            self._fd = None
            os.close(fd)
            self.result = WrittenFile(self.rel.as_posix(), self.size, self.sha256)
            return self.result

    def abort(self) -> None:
        """Blocking: give the file up; no call after this one touches the disk."""
        with self._lock:
            self._aborted = True
            if self._fd is not None:
                fd, self._fd = self._fd, None
                with contextlib.suppress(OSError):
                    os.close(fd)
                if not self._resumed:
                    place, temp = self._at
                    with contextlib.suppress(OSError, DestinationError):
                        place.unlink(temp)

    def _open(self) -> int:
        """The file's descriptor, creating the file on first use; the lock must be held."""
        if self._aborted or self.result is not None:
            raise Abandoned(f"{self.rel} was given up or committed already")
        if self._fd is None:
            place, temp = self._at
            # A temporary file is new, never one met there; a resumed one goes on from its end.
            flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if self._resumed else os.O_EXCL)
            self._fd = place.open(temp, flags)
        return self._fd


class Abandoned(Exception):
    """A write to a :class:`ThreadFile` after it was given up (by a thread a cancel abandoned)."""


class AtomicFile:
    """A :class:`ThreadFile` (:attr:`file`) written from async code, each call one thread call
    under ``limiter``. A clean way out commits it (unless a thread did already), any other
    gives it up; that abort is shielded and waits for a write in progress in another thread,
    so once out, the file is in place or gone for good (or, resumed, kept as it is).
    """

    def __init__(
        self,
        place: Place,
        rel: PurePosixPath,
        *,
        on_bytes: Callable[[int], None] | None = None,
        resume: Resume | None = None,
        vet: Callable[[ThreadFile], None] | None = None,
        limiter: anyio.CapacityLimiter | None = None,
    ) -> None:
        self.file = ThreadFile(place, rel, resume=resume, vet=vet)
        self._on_bytes = on_bytes
        self._limiter = limiter

    @property
    def size(self) -> int:
        return self.file.size

    @property
    def result(self) -> WrittenFile | None:
        return self.file.result

    async def __aenter__(self) -> AtomicFile:
        return self

    async def write(self, data: bytes) -> None:
        await anyio.to_thread.run_sync(self.file.write, data, limiter=self._limiter)
        if self._on_bytes is not None:
            self._on_bytes(len(data))

    async def inspect(self, look: Callable[[Path], T]) -> T:
        """``look`` at the file as written so far, by its temporary name, in a worker thread
        (it must only read): to judge it before it may take its final name."""
        return await anyio.to_thread.run_sync(look, self.file.temp, limiter=self._limiter)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc_type is None and self.file.result is None:
                await anyio.to_thread.run_sync(self.file.commit, limiter=self._limiter)
        finally:
            if self.file.result is None:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self.file.abort, limiter=self._limiter)


@contextlib.asynccontextmanager
async def thread_file(
    place: Place, rel: PurePosixPath, *, limiter: anyio.CapacityLimiter | None = None
) -> AsyncIterator[ThreadFile]:
    """A :class:`ThreadFile` for ``rel`` in ``place``, for worker threads to write, held as
    :class:`AtomicFile` holds it: given up on the way out unless committed."""
    async with AtomicFile(place, rel, limiter=limiter) as out:
        yield out.file


def write_whole(place: Place, rel: PurePosixPath, data: bytes) -> WrittenFile:
    """Blocking: write a whole small document atomically (see :func:`write_file`)."""
    out = ThreadFile(place, rel)
    try:
        out.write(data)
        return out.commit()
    finally:
        if out.result is None:
            out.abort()


async def write_file(
    place: Place,
    rel: PurePosixPath,
    data: bytes,
    on_bytes: Callable[[int], None] | None = None,
    *,
    limiter: anyio.CapacityLimiter | None = None,
) -> WrittenFile:
    """Write a whole small document atomically, in one worker-thread call (streamed data goes
    through :class:`AtomicFile`, a thread call a chunk)."""
    written = await anyio.to_thread.run_sync(write_whole, place, rel, data, limiter=limiter)
    if on_bytes is not None:
        on_bytes(len(data))
    return written


class Journal:
    """A file that lines are appended to in place (``O_APPEND``), each line whole or not at
    all. Not thread-safe: its owner appends one line at a time."""

    def __init__(self, place: Place, rel: PurePosixPath) -> None:
        self.place = place
        self.rel = inside(rel)
        self.path = place.path / self.rel
        self._fd: int | None = None

    def append(self, data: bytes) -> None:
        """Blocking: append ``data`` whole, or leave the file as it was: a write cut short (a
        full disk) is taken back."""
        with destination_errors(self.path):
            if self._fd is None:
                self._fd = self.place.open(self.rel, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            end = os.fstat(self._fd).st_size
            try:
                _write_all(self._fd, data)
            except OSError:
                with contextlib.suppress(OSError):  # shrinking needs no space, even on a full disk
                    os.ftruncate(self._fd, end)
                raise

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def close(self) -> None:
        """Blocking: close the file; an append after this opens it again."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.close(fd)

    def remove(self) -> None:
        """Blocking: close and delete the file (a link in its place goes, never what it points to)."""
        self.close()
        self.place.unlink(self.rel, missing_ok=True)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


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
