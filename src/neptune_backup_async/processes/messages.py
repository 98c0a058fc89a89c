"""What a backup and its worker processes (``--processes``) say to each other, and how.

Each message is a pickle behind its length (4 bytes, big-endian), on the worker's stdin
(from the parent) and stdout (to it). Both ends are this same program, so pickles are safe
and carry the pipeline's own types. The parent closing a worker's stdin means stop.
"""

from __future__ import annotations

import pickle
import struct
from dataclasses import dataclass, field
from typing import IO, Any

from anyio.streams.buffered import BufferedByteReceiveStream

from ..errors import BackupError, UnexpectedError
from ..format.report import Note
from ..settings import BackupSettings

_LENGTH = struct.Struct(">I")

# -- from the parent -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """The first message to a worker: the backup's settings, and what is the worker's own."""

    settings: BackupSettings
    share: int  # its share of --concurrency: the most requests it may have in flight, for now
    temp_tag: str  # its temporary files carry it, so the parent can sweep them
    log_levels: dict[str, int]  # the levels the parent logs at, by logger name


@dataclass(frozen=True)
class Bound:
    """The worker's share of ``--concurrency`` is now this: a process that has nothing left to
    do gave it its own."""

    concurrency: int


# (A job is the pipeline's own Job, numbered.)

# -- from a worker ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    """Connected to Neptune."""


@dataclass(frozen=True)
class Finished:
    """Job ``number`` is done: its outcome as the pipeline counts it (None failed, else unchanged),
    and the fields its backup counted (saved or found unchanged, failed)."""

    number: int
    outcome: bool | None
    fields: tuple[int, int] = (0, 0)


@dataclass
class Tally:
    """The worker's counters so far, and the failures and notices since its last tally. Fields
    are counted per object, for those not finished: (saved or found unchanged, failed) by
    (project, sys id); a job's own count comes with it finished."""

    fields: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    bytes_written: int = 0
    retries: dict[str, int] = field(default_factory=dict)
    throttled_seconds: float = 0.0
    failures: list[Note] = field(default_factory=list)
    notices: list[Note] = field(default_factory=list)


@dataclass(frozen=True)
class LogLine:
    name: str
    level: int
    message: str
    created: float


@dataclass(frozen=True)
class Stopped:
    """What stopped the worker's backup (a full disk, a lost server...): the parent raises it."""

    error: BackupError


def encode(message: object) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(body)) + body


def stopped(error: BackupError) -> Stopped:
    """A Stopped message that is sure to pickle (an error with arguments of its own may not)."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return Stopped(UnexpectedError(f"{type(error).__name__}: {error}"))
    return Stopped(error)


async def receive(stream: BufferedByteReceiveStream) -> Any:
    """The next message; raises EndOfStream when the other end has closed."""
    (length,) = _LENGTH.unpack(await stream.receive_exactly(_LENGTH.size))
    return pickle.loads(await stream.receive_exactly(length))


def read(file: IO[bytes]) -> Any:
    """Blocking: the next message, or None when the other end has closed."""
    header = file.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(header)
    body = file.read(length)
    return pickle.loads(body) if len(body) == length else None
