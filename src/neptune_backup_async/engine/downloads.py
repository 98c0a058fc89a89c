"""The object being saved, and how its bodies are fetched and written (:class:`ObjectFiles`).

Every request goes through the :class:`~.retry.Retrier` of the :class:`~.context.Context`
(one attempt per request thread, the waits between attempts in async code); every file
through :mod:`..disk.files` (temporary name, renamed into place once complete), its blocking
calls in disk threads. A download whose ``Content-Length`` is at most :data:`SMALL_BODY` is
read whole by the thread call that opens it and written by one more; larger ones stream
through :class:`~..disk.files.AtomicFile`, a disk thread call a chunk.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from ..disk.files import AtomicFile, WrittenFile, write_file
from ..domain import Download, ObjectRef, ProjectInfo
from ..errors import Retry, TransientError
from ..format import layout
from ..format.object_folder import RunFolder
from ..remote import checks
from .context import Context

Saved = tuple[list[WrittenFile], dict[str, Any]]  # the files a field was saved to, and facts for its record
SMALL_BODY = 1024 * 1024  # read whole when opened: one read of the stream (transport.CHUNK)


class ObjectFiles:
    """One object's :class:`RunFolder` and layout, and the means to fill them."""

    def __init__(
        self,
        context: Context,
        project: ProjectInfo,
        run: ObjectRef,
        folder: RunFolder,
        paths: layout.RunLayout,
    ) -> None:
        self.ctx = context
        self.count_bytes = context.recorder.count_bytes
        self.project = project
        self.run = run
        self.folder = folder
        self.root = folder.root  # to read the earlier backup's files
        self.place = folder.place  # to write
        self.paths = paths

    async def download(
        self,
        opener: Callable[[], Download],
        into: Callable[[Download], PurePosixPath | AtomicFile],
        what: str,
        expected: checks.Expected | None,
    ) -> WrittenFile:
        """Save one body, holding one request token throughout, and retry it if cut or if it
        cannot be what the listing says (see :mod:`.checks`): it never takes its final name
        then. ``into(download)`` is where a body goes: the file it is named (relative to the
        run's folder), or an artifact file's :class:`AtomicFile` in resume mode, which keeps
        what came and checks the whole itself (``expected`` None).

        A body whose ``Content-Length`` says it is small is read whole by the thread call that
        opens it, and written by one more; a larger one streams to disk in chunks."""
        gate, retrier = self.ctx.limits.gate, self.ctx.retrier

        async def attempt() -> WrittenFile:
            async with gate.slot():
                download, whole = await gate.thread(_open, opener, expected is not None)
                try:
                    # A 200 proves nothing: the answer is judged before it may take the name.
                    if expected is not None:
                        why = checks.check_type(expected, download.content_type, download.size)
                        if why is not None:
                            raise TransientError(why, reason=Retry.WRONG_ANSWER)
                    target = into(download)
                    if whole is not None:
                        assert expected is not None and isinstance(target, PurePosixPath)
                        retrier.alive()
                        return await self._save_whole(target, whole, download, expected)
                    body = checks.Sample()
                    if isinstance(target, PurePosixPath):
                        out = AtomicFile(
                            self.place, target, on_bytes=self.count_bytes, limiter=self.ctx.limits.disk
                        )
                    else:
                        out = target
                    async with out:
                        while chunk := await gate.thread(next, download.chunks, b""):
                            retrier.alive()
                            body.feed(chunk)
                            await out.write(chunk)
                        if expected is None:
                            if download.size is not None and out.size != download.size:
                                raise TransientError(
                                    f"got {out.size} of {download.size} bytes", reason=Retry.CUT_OFF
                                )
                        else:
                            why = checks.check_body(expected, body, download.content_type, download.size)
                            if why is None and expected.kind is checks.Kind.ZIP:
                                why = checks.check_zip(expected, await out.inspect(_zip_member_sizes))
                            if why is not None:
                                raise TransientError(why, reason=Retry.WRONG_ANSWER)
                finally:
                    download.release()
            assert out.result is not None
            return out.result

        return await retrier.run(attempt, what)

    async def _save_whole(
        self, rel: PurePosixPath, data: bytes, download: Download, expected: checks.Expected
    ) -> WrittenFile:
        """Judge a body read whole, as a streamed one is judged, and write it in one thread call."""
        body = checks.Sample()
        body.feed(data)
        why = checks.check_body(expected, body, download.content_type, download.size)
        if why is None and expected.kind is checks.Kind.ZIP:
            why = checks.check_zip(expected, _zip_member_sizes(io.BytesIO(data)))
        if why is not None:
            raise TransientError(why, reason=Retry.WRONG_ANSWER)
        return await self.write(rel, data)

    async def write(self, rel: PurePosixPath, data: bytes) -> WrittenFile:
        """Write a whole small document into the object's folder, in one disk thread call."""
        return await write_file(self.place, rel, data, self.count_bytes, limiter=self.ctx.limits.disk)


def _open(opener: Callable[[], Download], small: bool) -> tuple[Download, bytes | None]:
    """Blocking: open a download and, if ``small`` and its ``Content-Length`` is at most
    :data:`SMALL_BODY`, read it whole (stopping past that, for a body longer than it said)."""
    download = opener()
    if not small or download.size is None or download.size > SMALL_BODY:
        return download, None
    parts: list[bytes] = []
    size = 0
    try:
        for chunk in download.chunks:
            parts.append(chunk)
            size += len(chunk)
            if size > SMALL_BODY:
                break  # longer than it said: judged wrong by its size, the rest unread
    except BaseException:
        download.release()
        raise
    return download, b"".join(parts)


def _zip_member_sizes(zipped: Path | BinaryIO) -> list[int] | None:
    """The sizes of the files a zip holds, from its directory; None when it is no zip."""
    try:
        with zipfile.ZipFile(zipped) as archive:
            return [member.file_size for member in archive.infolist()]
    except (zipfile.BadZipFile, OSError, ValueError):  # a cut directory can also give a bad offset
        return None


def fixed(rel: PurePosixPath, _: Download) -> PurePosixPath:
    """A file name that does not depend on the answer."""
    return rel
