"""Saving the fields of one object: one saver per field type.

The fields that need a request are saved by at most :attr:`~.limiter.Limits.tasks` tasks,
the images of a series likewise (:func:`~.limiter.each`), so one object with many fields
uses the whole bound and none spawns a task per field. Every request goes through the
:class:`~.retry.Retrier` of the :class:`~.context.Context` (one attempt per request thread,
the waits between attempts in async code); every file through :mod:`..disk.files`
(temporary name, renamed into place once complete), its blocking calls in disk threads;
every saved field into the :class:`~..format.object_folder.RunFolder`'s manifest and journal.

A series page costs one thread call: the request's worker thread fetches it, formats its
rows and appends them to the field's :class:`~..disk.files.ThreadFile` (and commits the file
after the last page). A download whose ``Content-Length`` is at most :data:`SMALL_BODY` is
read whole by the thread call that opens it and written by one more; larger ones stream
through :class:`~..disk.files.AtomicFile`, a disk thread call a chunk.
"""

from __future__ import annotations

import functools
import io
import logging
import sys
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, NamedTuple

import anyio

from .. import domain
from ..disk.files import AtomicFile, ThreadFile, WrittenFile, thread_file, write_file
from ..domain import Download, FieldInfo, FieldType, ImageInfo, ObjectRef, ProjectInfo
from ..errors import (
    BackupError,
    FetchError,
    HttpStatusError,
    LayoutError,
    Retry,
    TransientError,
    leading_error,
    unexpected,
)
from ..format import layout, values
from ..format.manifest import FieldRecord
from ..format.object_folder import RunFolder
from ..format.reader import Action, decide, facts
from ..remote import checks
from . import file_sets, notebooks
from .context import Context
from .limiter import each

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

log = logging.getLogger("neptune_backup_async")
IMAGE_PAGE = 1_000
Saved = tuple[list[WrittenFile], dict[str, Any]]  # the files a field was saved to, and facts for its record


class _Pending(NamedTuple):
    """A field to save with a request: its saver, and its record to extend (None: fetch it whole)."""

    saver: Callable[[FieldInfo, FieldRecord | None], Awaitable[Saved]]
    info: FieldInfo
    prev: FieldRecord | None


class FieldSavers:
    """Saves the fields of one run into its :class:`RunFolder`."""

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

    async def save(self, fields: list[FieldInfo]) -> None:
        """Save ``fields``: at once those that need no request, the others by at most
        ``limits.tasks`` tasks (see :func:`~.limiter.each`)."""
        pending = [p for p in map(self._pending, fields) if p is not None]
        await each(pending, self._guarded, self.ctx.limits.tasks)

    def _pending(self, info: FieldInfo) -> _Pending | None:
        """Save ``info`` if it needs no request; else what will save it."""
        folder = self.folder
        if info.type.is_simple:
            folder.keep_simple(info, values.simple_value(info.type, info.value))
            if not notebooks.has_checkpoint(info):  # a notebook ref's checkpoint is fetched too
                return None
        if info.type is FieldType.ARTIFACT:
            folder.simple[info.path] = info.value  # the hash, as the seed script kept it
        action, prev = decide(
            info,
            folder.previous,
            full=self.ctx.full,
            download_artifacts=self.ctx.download_artifacts,
            paths=self.paths,
        )
        if action is Action.REUSE:
            assert prev is not None
            folder.reuse(info.path, prev)
            return None
        savers: dict[FieldType, Callable[[FieldInfo, FieldRecord | None], Awaitable[Saved]]] = {
            FieldType.FLOAT_SERIES: self._series,
            FieldType.STRING_SERIES: self._series,
            FieldType.FILE: self._file,
            FieldType.FILE_SET: self._file_set,
            FieldType.IMAGE_SERIES: self._images,
            FieldType.ARTIFACT: self._artifact,
            FieldType.NOTEBOOK_REF: functools.partial(
                notebooks.save, self.ctx, self.project, folder, self.paths, self._download
            ),
        }
        return _Pending(savers[info.type], info, prev if action is Action.EXTEND else None)

    async def _guarded(self, pending: _Pending) -> None:
        """Save one field; a failure is recorded against it and the run goes on."""
        saver, info, prev = pending
        try:
            written, extra = await saver(info, prev)
        except (FetchError, LayoutError) as e:  # this field only
            self.folder.failed(info, str(e))
            return
        except BackupError:
            raise  # nothing else can succeed either: the token, the destination, the server
        except OSError as e:
            self.folder.failed(info, str(e))
            return
        except Exception as e:  # a bug: it must not take the run down, nor pass for the server's fault
            log.error("%s/%s: a bug", self.run.sys_id, info.path, exc_info=True)
            self.folder.failed(info, unexpected(e))
            return
        if written:  # none: the saver recorded what it kept itself (a notebook the server refused)
            await self.folder.saved(info, written, {**facts(info, self.ctx.download_artifacts), **extra})

    # -- series -------------------------------------------------------------------------------

    async def _series(self, info: FieldInfo, prev: FieldRecord | None) -> Saved:
        source, retrier = self.ctx.source, self.ctx.retrier
        formatter = values.SeriesFormatter(info.type)
        limit = source.series_page_limit
        disk = self.ctx.limits.disk
        async with thread_file(self.place, self.paths.field_file(info.path, info.type), limiter=disk) as out:
            rows = (
                0
                if prev is None
                else await anyio.to_thread.run_sync(self._copy_previous, out, prev, limiter=disk)
            )

            def page(offset: int) -> tuple[int, int, int]:
                """One attempt, in the request's worker thread: fetch the page at ``offset``,
                append its rows (under the header, for the first) and, after the last page,
                commit the file. Returns the total, the points it held and the bytes written.
                One thread call per page; the page's text is freed before it returns, and the
                event loop stays free."""
                page = source.series_page(self.run, info, offset, limit)
                count = len(page.points)
                if count == 0 and offset < page.total:
                    return page.total, 0, 0  # a lie: raised below, and the file is aborted
                text = formatter.rows(page.points).encode("utf-8")
                head = b"" if out.size else _SERIES_HEADER
                out.write(head, text)
                if count == 0 or offset + count >= page.total:
                    out.commit()
                return page.total, count, len(head) + len(text)

            while True:
                total, count, written = await retrier.call(page, rows, what="series page")
                if count == 0 and rows < total:
                    raise FetchError(f"the server promised {total} points but sent {rows}")
                self.count_bytes(written)
                rows += count
                if count == 0 or rows >= total:
                    break
        assert out.result is not None
        return [out.result], {"rows": rows}

    def _copy_previous(self, out: ThreadFile, prev: FieldRecord) -> int:
        """Blocking: copy the old CSV into ``out`` if it still hashes to its recorded sha256;
        return its rows (0 if not)."""
        previous = self.folder.previous
        assert previous is not None
        recorded = previous.manifest.files[prev.files[0]]
        with (self.root / recorded.path).open("rb") as f:
            while chunk := f.read(1024 * 1024):
                out.write(chunk)
        if out.size == recorded.size and out.sha256 == recorded.sha256:
            return int(prev.extra["rows"])
        out.reset()  # damaged since: fetch the whole series
        return 0

    # -- files --------------------------------------------------------------------------------

    async def _download(
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
        return await self._write(rel, data)

    async def _write(self, rel: PurePosixPath, data: bytes) -> WrittenFile:
        """Write a whole small document into the object's folder, in one disk thread call."""
        return await write_file(self.place, rel, data, self.count_bytes, limiter=self.ctx.limits.disk)

    async def _file(self, info: FieldInfo, prev: FieldRecord | None) -> Saved:
        rel = self.paths.field_file(info.path, info.type, info.ext)
        opener = functools.partial(self.ctx.source.open_file, self.run, info)
        expected = checks.Expected(checks.Kind.FILE, size=info.size, ext=info.ext)
        return [await self._download(opener, functools.partial(_fixed, rel), info.path, expected)], {}

    async def _file_set(self, info: FieldInfo, prev: FieldRecord | None) -> Saved:
        async with file_sets.zip_url(self.ctx, self.place, self.run, info) as url:
            rel = self.paths.field_file(info.path, info.type)
            opener = functools.partial(self.ctx.source.open_file_set, url)
            expected = checks.Expected(checks.Kind.ZIP, size=info.size)
            return [await self._download(opener, functools.partial(_fixed, rel), info.path, expected)], {}

    async def _image_metadata(self, info: FieldInfo, total: int) -> list[ImageInfo]:
        """The step, time, name and description of a series' images, as far as the server
        gives them: none where it does not offer the series as a channel (said once a backup)."""
        source, retrier = self.ctx.source, self.ctx.retrier
        items: list[ImageInfo] = []
        why = "the field listing gives no channel id" if info.value is None else None
        try:
            while why is None and len(items) < total:
                page = await retrier.call(
                    source.image_page, info, len(items), IMAGE_PAGE, what="getChannelValues"
                )
                if not page.entries:
                    break  # the channel holds fewer than the series: the rest stay without
                items += page.entries
        except HttpStatusError as e:
            items, why = [], f"getChannelValues answered HTTP {e.status}"
        if why is not None:
            self.ctx.recorder.notice_once(
                self.project.qualified_name,
                self.run.sys_id,
                info.path,
                f"Neptune gave no step, time, name or description of the images ({why}): the"
                " index.json of image series holds each image's index and file only",
            )
        return items

    async def _images(self, info: FieldInfo, prev: FieldRecord | None) -> Saved:
        source = self.ctx.source
        total = await self.ctx.retrier.call(source.image_count, self.run, info, what="image listing")
        by_index = {item.index: item for item in await self._image_metadata(info, total)}
        written: dict[int, WrittenFile] = {}
        previous = self.folder.previous
        if prev is not None and previous is not None:  # images are append-only: keep the old ones
            for rel in prev.files:
                stem = PurePosixPath(rel).stem
                if stem.isdigit() and rel in previous.intact and int(stem) < total:
                    written[int(stem)] = previous.manifest.files[rel]

        def rel_for(index: int, download: Download) -> PurePosixPath:
            subtype = (download.content_type or "application/octet-stream").split(";")[0].split("/")[-1]
            return self.paths.image_file(info.path, index, subtype.strip() or "bin")

        failed: dict[int, str] = {}

        async def one(index: int) -> None:
            opener = functools.partial(source.open_image, self.run, info, index)
            try:
                written[index] = await self._download(
                    opener, functools.partial(rel_for, index), f"{info.path}[{index}]", _IMAGE
                )
            except FetchError as e:  # the others go on, so that each is named
                failed[index] = str(e)

        try:
            await each([i for i in range(total) if i not in written], one, self.ctx.limits.tasks)
        except BaseExceptionGroup as group:  # one error, as for any other field
            error = leading_error(group)
            raise error from error.__cause__
        if failed:
            raise FetchError(
                f"images {', '.join(map(str, sorted(failed)))} of {total} were not saved: "
                + "; ".join(failed[i] for i in sorted(failed))
            )
        if empty := [str(i) for i in range(total) if not written[i].size]:  # whole, by checks.check_body
            why = "the neptune client uploads an image over 32 MB empty"
            self.folder.notice(
                info.path, f"images {', '.join(empty)} of {total} are empty ({why}): saved empty"
            )
        index_doc = []
        for i in range(total):
            item = by_index.get(i)
            stamp = item.timestamp_ms if item else None
            index_doc.append(
                {
                    "index": i,
                    "file": PurePosixPath(written[i].path).name,
                    "step": item.step if item else None,
                    "timestamp": domain.iso_from_ms(stamp) if stamp is not None else None,
                    "name": item.name if item else None,
                    "description": item.description if item else None,
                }
            )
        index_file = await self._write(self.paths.image_index(info.path), values.dumps(index_doc).encode())
        return [*(written[i] for i in range(total)), index_file], {"count": total}

    async def _artifact(self, info: FieldInfo, prev: FieldRecord | None) -> Saved:
        source, retrier = self.ctx.source, self.ctx.retrier
        what = f"artifact {info.value}"
        files = await retrier.call(source.list_artifact_files, self.project, info.value, what=what)
        listing = {
            "hash": info.value,
            "files": [
                {"path": f.path, "hash": f.hash, "type": f.type, "size": f.size, "metadata": f.metadata}
                for f in files
            ],
        }
        rel = self.paths.field_file(info.path, info.type)
        written = [await self._write(rel, values.dumps(listing).encode())]
        changed: dict[str, str] = {}
        if self.ctx.download_artifacts:
            targets = self.paths.artifact_files(info.path, [f.path for f in files])
            for f, rel in zip(files, targets, strict=True):
                fetch = self.ctx.artifact_files.fetch(f, self.place, rel, self.count_bytes)
                written.append(await self._download(fetch.open, fetch.sink, f"{info.path}:{f.path}", None))
                if fetch.changes:
                    changed[f.path] = "; ".join(fetch.changes)
                    reason = (
                        f"artifact file {f.path} changed since it was tracked ({changed[f.path]});"
                        " saved as it is now"
                    )
                    self.folder.notice(info.path, reason)
        return written, {"changed_since_tracking": changed} if changed else {}


SMALL_BODY = 1024 * 1024  # read whole when opened: one read of the stream (transport.CHUNK)


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


_IMAGE = checks.Expected(checks.Kind.IMAGE)
_SERIES_HEADER = values.SERIES_HEADER.encode()


def _fixed(rel: PurePosixPath, _: Download) -> PurePosixPath:
    """A file name that does not depend on the answer."""
    return rel
