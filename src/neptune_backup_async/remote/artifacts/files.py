"""The files an artifact points to, read from where they were tracked: ``file://`` and ``s3://``.

Neptune keeps only an artifact's listing; the bytes stay where they were when the run
tracked them, and may have changed or gone since. What the ``neptune`` client's drivers
recorded for each file:

- local files: ``file_hash`` is the sha1 of the content, ``size`` its size, and the
  metadata ``file_path`` (a ``file://`` URL) and ``last_modified`` (local time);
- S3 objects: ``file_hash`` is the object's ETag without quotes, ``size`` its size, and the
  metadata ``location`` (``s3://bucket/key``) and ``last_modified`` (UTC, to the second).
  An ETag is the MD5 of the content only for an object uploaded in one part without
  SSE-KMS; a multipart upload's is ``<MD5 of the parts' MD5s>-<parts>``.

So a file is checked against its listing: its size, and its sha1 (local) or the ETag and
last-modified time S3 reports now. One that differs changed since it was tracked: it is
saved and named in :attr:`ArtifactFetch.changes`. The transfer is checked too: the bytes
must add up to the size announced, and an object whose ETag is an MD5 must hash to it.

Reading these is not a Neptune call, so it does not go through the Neptune source. The
pipeline holds one request token per download all the same, so S3 reads count against
``--concurrency`` and go through the same retries as Neptune downloads.

A download lands in ``DEST/.neptune-backup/partial/`` first (the writer's resume mode, see
:mod:`...disk.files`) and is renamed into place once whole and checked. A cut S3 download, or a backup killed during one, leaves its bytes
there; the next try, in this backup or the next, asks S3 only for the rest (a ranged read
guarded by ``If-Match`` on the ETag, so a changed object is never stitched to an old part).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import stat
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import anyio

from ...disk.files import AtomicFile, Resume, ThreadFile, write_whole
from ...disk.place import Place, destination_errors
from ...domain import ArtifactFileInfo, Download
from ...errors import FetchError, Retry, TransientError
from .s3 import Gone, S3Reader, Stale, stream_errors

CHUNK = 1024 * 1024
PARTIAL_DIR = PurePosixPath(".neptune-backup/partial")
_TRACKED_TIME = "%Y-%m-%d %H:%M:%S"  # the drivers' last_modified
_MD5 = re.compile(r"[0-9a-f]{32}")
_SHA1 = re.compile(r"[0-9a-f]{40}")


def location(file: ArtifactFileInfo) -> str:
    """Where the file was tracked: the S3 driver's ``location`` or the local one's ``file_path``."""
    return file.metadata.get("location") or file.metadata.get("file_path") or ""


@dataclass(frozen=True)
class Found:
    """What the store reports of a file now."""

    size: int
    etag: str | None = None  # S3, without quotes
    last_modified: dt.datetime | None = None  # S3, aware


def differences(file: ArtifactFileInfo, found: Found) -> list[str]:
    """How a file differs from what Neptune tracked, by what its store reports (no byte read)."""
    out = []
    if file.size is not None and found.size != file.size:
        out.append(f"size {file.size} -> {found.size}")
    if found.etag is not None and found.etag != file.hash.strip('"'):
        out.append(f"ETag {file.hash} -> {found.etag}")
    tracked = _tracked_time(file)
    if found.last_modified is not None and tracked is not None:
        now = found.last_modified.astimezone(dt.timezone.utc).replace(microsecond=0)
        if now > tracked:
            out.append(f"modified {tracked:{_TRACKED_TIME}} -> {now:{_TRACKED_TIME}} UTC")
    return out


def _tracked_time(file: ArtifactFileInfo) -> dt.datetime | None:
    """The S3 driver's last_modified (UTC); local files keep local time, which is not compared."""
    if "location" not in file.metadata:
        return None
    with contextlib.suppress(KeyError, ValueError):
        return dt.datetime.strptime(file.metadata["last_modified"], _TRACKED_TIME).replace(
            tzinfo=dt.timezone.utc
        )
    return None


@dataclass(frozen=True)
class _Check:
    """A digest the whole content must have: from the listing (a mismatch means the file
    changed since it was tracked) or from the store's answer (a mismatch means a bad transfer)."""

    algorithm: str
    expected: str
    tracked: bool


def _etag_checks(etag: str | None) -> list[_Check]:
    """An ETag that is an MD5 (a single-part upload's) is a check of the transfer; a multipart one is not."""
    return [_Check("md5", etag, False)] if etag and _MD5.fullmatch(etag) else []


def _local_path(url: str) -> Path:
    """A ``file://`` location's path. The client's local driver writes it as it is, but a
    percent-encoded one (as other tools write them) is found too."""
    raw = url.removeprefix("file://")
    decoded = urllib.parse.unquote(raw)
    return Path(raw if os.path.exists(raw) or not os.path.exists(decoded) else decoded)


def _chunks(
    read: Callable[[int], bytes], what: str, failures: tuple[type[Exception], ...] = (OSError,)
) -> Iterator[bytes]:
    """A body in chunks; a read that fails with one of ``failures`` is worth another try."""
    try:
        while chunk := read(CHUNK):
            yield chunk
    except failures as e:
        raise TransientError(
            f"{what}: the download was cut off ({type(e).__name__})", reason=Retry.CUT_OFF
        ) from None


class ArtifactFiles:
    """Opens artifact files for one backup into ``dest``; holds its one S3 client.

    ``limiter`` bounds the threads that write the downloads (see :mod:`...disk.files`)."""

    def __init__(
        self,
        dest: Path,
        *,
        s3_endpoint_url: str | None = None,
        connections: int = 10,
        limiter: anyio.CapacityLimiter | None = None,
    ) -> None:
        self.dest = dest
        self.partials = Place(dest, PARTIAL_DIR)
        self.limiter = limiter
        self.s3 = S3Reader(s3_endpoint_url, connections)

    def fetch(
        self,
        file: ArtifactFileInfo,
        root: Place,
        rel: PurePosixPath,
        on_bytes: Callable[[int], None] | None = None,
    ) -> ArtifactFetch:
        """The download of ``file`` to ``rel`` in the object folder ``root`` (inside DEST)."""
        return ArtifactFetch(self, file, root, rel, on_bytes)

    def close(self) -> None:
        self.s3.close()


class ArtifactFetch:
    """One artifact file's way to its place in the backup, over as many tries as it takes.

    :meth:`open` (blocking, one request) and :meth:`sink` are what the pipeline's download
    loop takes; :attr:`changes` says, once it is saved, how it differs from what was tracked.
    """

    def __init__(
        self,
        files: ArtifactFiles,
        file: ArtifactFileInfo,
        root: Place,
        rel: PurePosixPath,
        on_bytes: Callable[[int], None] | None,
    ) -> None:
        self.files = files
        self.file = file
        self.root = root
        self.rel = rel
        self.location = location(file)
        # Named by where the file goes, so that each backup of it (and no other file) finds it.
        key = hashlib.sha256((root.rel / rel).as_posix().encode()).hexdigest()[:32]
        self.partial = PurePosixPath(f"{key}.part")  # in files.partials
        self.state = self.partial.with_suffix(".json")  # what the partial bytes are of
        self.changes: list[str] = []
        self._on_bytes = on_bytes
        self._checks: list[_Check] = []
        self._hashes: dict[str, Any] = {}
        self._offset = 0

    # -- opening (in a worker thread, holding a request token) --------------------------------

    def open(self) -> Download:
        scheme = self.location.partition("://")[0]
        where = f"artifact file {self.file.path}"
        if scheme == "file":
            path = _local_path(self.location)
            try:
                handle = path.open("rb")
                size = os.fstat(handle.fileno()).st_size
            except OSError as e:
                raise FetchError(f"{where}: cannot read {path} ({e.strerror})") from None
            try:
                self._start(
                    [_Check("sha1", self.file.hash, True)] if _SHA1.fullmatch(self.file.hash) else [], 0
                )
            except BaseException:
                handle.close()
                raise
            self.changes = differences(self.file, Found(size))
            return Download(chunks=_chunks(handle.read, where), size=size, close=handle.close)
        if scheme == "s3":
            try:
                return self._open_s3(where)
            except TransientError:
                raise  # the pipeline tries again
            except Gone as e:
                self.discard()
                raise FetchError(f"{where}: {e}") from None
            except FetchError as e:  # the bytes held stay, for a try with better credentials
                raise FetchError(f"{where}: {e}") from None
        raise FetchError(f"{where}: no way to download from {self.location!r} (only file:// and s3://)")

    def _open_s3(self, where: str) -> Download:
        held, etag = self._resumable()
        if held:  # hashed before asking, so that no connection idles meanwhile
            self._start(_etag_checks(etag), held)
        try:
            response = self.files.s3.get(self.location, held, etag)
        except Stale:  # changed since those bytes came: start over
            held, response = 0, self.files.s3.get(self.location)
        body = response["Body"]
        try:
            if held and not response.get("ContentRange"):
                held = 0  # the whole object came after all: start over
            length = int(response["ContentLength"])
            total = int(str(response["ContentRange"]).rpartition("/")[2]) if held else length
            found = Found(
                total, str(response.get("ETag", "")).strip('"') or None, response.get("LastModified")
            )
            if not held:
                self._start(_etag_checks(found.etag), 0, found)
        except BaseException:
            body.close()
            raise
        self.changes = differences(self.file, found)
        return Download(chunks=_chunks(body.read, where, stream_errors()), size=total, close=body.close)

    def _resumable(self) -> tuple[int, str | None]:
        """The bytes already held of this object, and its ETag; (0, None) when there are none to trust."""
        partials = self.files.partials
        try:
            state = json.loads(partials.read(self.state))
            held = os.lstat(partials.path / self.partial)  # a link is none of ours: the bytes start over
        except (OSError, ValueError):
            return 0, None
        # The record is input too: one of another shape is not ours, and the bytes start over.
        if not isinstance(state, dict) or not stat.S_ISREG(held.st_mode):
            return 0, None
        etag, size = state.get("etag"), state.get("size")
        if state.get("location") != self.location or not isinstance(etag, str) or not etag:
            return 0, None
        if not isinstance(size, int) or not 0 < held.st_size < size:
            return 0, None
        return held.st_size, etag

    def _start(self, checks: list[_Check], held: int, found: Found | None = None) -> None:
        """Get ready for a body from byte ``held`` on: hash the bytes held, or drop them (and
        note what the new ones are of, an S3 object ``found``, for a later try to go on from)."""
        self._checks = checks
        self._hashes = {name: hashlib.new(name) for name in {"sha256", *(c.algorithm for c in checks)}}
        self._offset = held
        partials = self.files.partials
        with destination_errors(partials.path / self.partial):
            if held:
                with os.fdopen(partials.open(self.partial, os.O_RDONLY), "rb") as f:
                    while data := f.read(CHUNK):
                        for h in self._hashes.values():
                            h.update(data)
            else:
                partials.unlink(self.partial, missing_ok=True)
                if found is not None and found.etag:
                    state = {"location": self.location, "etag": found.etag, "size": found.size}
                    write_whole(partials, self.state, json.dumps(state).encode("utf-8"))

    # -- writing --------------------------------------------------------------------------------

    def sink(self, download: Download) -> AtomicFile:
        """Where the body that :meth:`open` returned goes: after the bytes already held, kept
        if it fails, and checked by :meth:`vet` before it takes its name."""
        held = Resume(self.files.partials, self.partial, self._offset, self._hashes)
        return AtomicFile(
            self.root,
            self.rel,
            on_bytes=self._on_bytes,
            resume=held,
            vet=self.vet,
            limiter=self.files.limiter,
        )

    def discard(self) -> None:
        for rel in (self.partial, self.state):
            self.files.partials.unlink(rel, missing_ok=True)

    def vet(self, out: ThreadFile) -> None:
        """Blocking, once the bytes are whole and durable: check them before they take their name."""
        for check in self._checks:
            if out.hashes[check.algorithm].hexdigest() == check.expected:
                continue
            if check.tracked:
                self.changes.append(f"content {check.algorithm} differs from the tracked one")
            else:
                self.discard()  # a stitched or garbled copy: the next try starts over
                raise TransientError(
                    f"artifact file {self.file.path}: the bytes do not match the ETag S3 gave",
                    reason=Retry.WRONG_ANSWER,
                )
        self.files.partials.unlink(self.state, missing_ok=True)  # whole: nothing left to resume
