"""Saving a float or string series: its pages into one CSV (:func:`save_series`).

A series page costs one thread call: the request's worker thread fetches it, checks it,
formats its rows and appends them to the field's :class:`~..disk.files.ThreadFile` (and
commits the file after the last page).

No page is written that does not continue the points before it (see docs/NEPTUNE_CLIENT.md):
Neptune keeps a series' steps strictly increasing, so a page whose first point is an exact
copy of the last point read (same step, value and timestamp) starts one early, and that copy
is dropped; any other page whose first step is not past the last one, or that holds more
points than its offset leaves of ``totalItemCount``, is a wrong answer, retried, and the field
fails if it persists. A series extended from an earlier backup first re-reads its last saved
point; if Neptune's differs, the series was written anew and is fetched whole.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio

from ..disk.files import ThreadFile, thread_file
from ..domain import FieldInfo
from ..errors import FetchError, HttpStatusError, MalformedAnswerError, Retry, TransientError
from ..format import values
from ..format.manifest import FieldRecord
from .downloads import ObjectFiles, Saved

log = logging.getLogger("neptune_backup_async")
_SERIES_HEADER = values.SERIES_HEADER.encode()
_TAIL = 64 * 1024  # the last bytes of an earlier CSV kept, to find its last row in
SMALLEST_PAGE = 100  # points: the least a series page asks for when larger ones are refused
REFUSED = frozenset({400, 413, 422})  # how a server may refuse a page too large
T = TypeVar("T")


@dataclass(frozen=True)
class _Kept:
    """An earlier backup's CSV of a series, copied into this one: its rows, last bytes, and
    how many ``"`` it holds."""

    rows: int
    tail: bytes
    quotes: int

    def ends_with(self, row: bytes) -> bool:
        """Whether ``row`` is the file's last row: it ends the file, right after a line end that
        lies outside any quoted value (every ``"`` before it is paired)."""
        start = len(self.tail) - len(row)
        return (
            start > 0
            and self.tail.endswith(row)
            and self.tail[start - 1 : start] == b"\n"
            and (self.quotes - row.count(b'"')) % 2 == 0
        )


class _Short(FetchError):
    """The pages held fewer points than the series: one skipped a point, or the series changed."""


class _Reading:
    """One series read into ``out`` page by page, each page checked against the points before it."""

    def __init__(self, obj: ObjectFiles, info: FieldInfo, out: ThreadFile) -> None:
        self._source, self._run, self._info, self._out = obj.ctx.source, obj.run, info, out
        self.path = info.path
        self._formatter = values.SeriesFormatter(info.type)
        self.rows = 0  # points in the file
        self._last: tuple[float, Any, int] | None = None  # the last point read, and its row
        self._last_row = b""

    def resume(self, kept: _Kept, limit: int) -> tuple[int, bool] | None:
        """Blocking, one attempt: re-read the last point the earlier copy holds, with the page
        after it. If Neptune's is the same, take the page as :meth:`page` does; if not, or the
        series holds fewer points now, start the file over (None)."""
        page = self._source.series_page(self._run, self._info, kept.rows - 1, limit)
        if page.points and page.total >= kept.rows:
            first = self._row(page.points[:1])
            if kept.ends_with(first):
                self.rows, self._last, self._last_row = kept.rows, page.points[0], first
                return self._take(page.points[1:], page.total)
        self._out.reset()
        return None

    def page(self, limit: int) -> tuple[int, bool]:
        """Blocking, one attempt: fetch the page at :attr:`rows` and append its rows (under the
        header, for the first); after the last page, commit the file. Returns the bytes
        written and whether the series is complete. The page's text is freed before it returns."""
        page = self._source.series_page(self._run, self._info, self.rows, limit)
        return self._take(page.points, page.total)

    def _take(self, points: list[tuple[float, Any, int]], total: int) -> tuple[int, bool]:
        offset = self.rows
        first = self._row(points[:1])
        if first and first == self._last_row:
            log.debug("%s: the page at %d repeats the point before it; dropped", self._info.path, offset)
            points, first = points[1:], self._row(points[1:2])
        if points and self._last is not None and not _past(points[0][0], self._last[0]):
            raise TransientError(
                f"the series page at offset {offset} starts at step {points[0][0]!r}, not past"
                f" the step {self._last[0]!r} before it",
                reason=Retry.WRONG_ANSWER,
            )
        if total < offset:
            raise TransientError(
                f"the series holds {total} points now, fewer than the {offset} read: it changed"
                " while it was read",
                reason=Retry.WRONG_ANSWER,
            )
        if len(points) > total - offset:
            raise TransientError(
                f"the series page at offset {offset} holds {len(points)} points, but the"
                f" {total} points of the series leave {total - offset} from there",
                reason=Retry.WRONG_ANSWER,
            )
        if not points and offset < total:
            raise _Short(f"the server promised {total} points but sent {offset}")
        text = first + self._row(points[1:])
        head = b"" if self._out.size else _SERIES_HEADER
        self._out.write(head, text)
        self.rows += len(points)
        if points:
            self._last = points[-1]
            self._last_row = self._row(points[-1:])
        done = self.rows == total
        if done:
            self._out.commit()
        return len(head) + len(text), done

    def _row(self, points: list[tuple[float, Any, int]]) -> bytes:
        return self._formatter.rows(points).encode("utf-8")


async def save_series(obj: ObjectFiles, info: FieldInfo, prev: FieldRecord | None) -> Saved:
    """Save a series whole, or, given its earlier record ``prev``, its old rows and new pages."""
    disk = obj.ctx.limits.disk
    async with thread_file(obj.place, obj.paths.field_file(info.path, info.type), limiter=disk) as out:
        kept = (
            None
            if prev is None
            else await anyio.to_thread.run_sync(_copy_previous, obj, out, prev, limiter=disk)
        )
        try:
            rows = await _read(obj, _Reading(obj, info, out), kept)
        except _Short as e:  # a page skipped a point, or the series changed: read it once more, whole
            log.info("%s/%s: %s; reading it again", obj.run.sys_id, info.path, e)
            await anyio.to_thread.run_sync(out.reset, limiter=disk)
            rows = await _read(obj, _Reading(obj, info, out), None)
    assert out.result is not None
    return [out.result], {"rows": rows}


async def _read(obj: ObjectFiles, reading: _Reading, kept: _Kept | None) -> int:
    """Read the series into the file until it is committed (after the rows ``kept``, if they
    are still Neptune's); the rows it holds."""
    done = False
    if kept is not None and kept.rows:
        resumed = await _sized(obj, reading.resume, kept)
        if resumed is None:
            obj.folder.notice(
                reading.path,
                "its last saved point is no longer Neptune's (the series was logged anew): fetched whole",
            )
        else:
            written, done = resumed
            obj.count_bytes(written)
    while not done:
        written, done = await _sized(obj, reading.page)
        obj.count_bytes(written)
    return reading.rows


async def _sized(obj: ObjectFiles, attempt: Callable[..., T], *args: Any) -> T:
    """``attempt(*args, limit)``, retried, with the page size learnt so far; while the server
    refuses a page that large (HTTP 400, 413 or 422), with half as many points, down to
    :data:`SMALLEST_PAGE`. A smaller size that works is kept for the rest of the backup."""
    pages = obj.ctx.series_pages
    limit = pages.limit or obj.ctx.source.series_page_limit
    while True:
        try:
            result = await obj.ctx.retrier.call(attempt, *args, limit, what="series page")
        except HttpStatusError as e:
            if e.status not in REFUSED or limit <= SMALLEST_PAGE:
                raise
            log.info("a series page of %d points was refused (HTTP %d): asking for fewer", limit, e.status)
            limit = max(limit // 2, SMALLEST_PAGE)
        else:
            pages.worked(limit)
            return result


def _past(step: Any, before: Any) -> bool:
    """Whether ``step`` lies past ``before``; steps that are no numbers are the server's fault."""
    try:
        return bool(step > before)
    except TypeError:
        raise MalformedAnswerError(f"malformed answer from Neptune: a series step {step!r}") from None


def _copy_previous(obj: ObjectFiles, out: ThreadFile, prev: FieldRecord) -> _Kept | None:
    """Blocking: copy the old CSV into ``out`` if it still hashes to its recorded sha256, and
    say what it holds; None if it does not (then ``out`` is empty)."""
    previous = obj.folder.previous
    assert previous is not None
    recorded = previous.manifest.files[prev.files[0]]
    tail, quotes = b"", 0
    with (obj.root / recorded.path).open("rb") as f:
        while chunk := f.read(1024 * 1024):
            out.write(chunk)
            quotes += chunk.count(b'"')
            tail = (tail + chunk)[-_TAIL:]
    if out.size == recorded.size and out.sha256 == recorded.sha256:
        return _Kept(int(prev.extra["rows"]), tail, quotes)
    out.reset()  # damaged since: fetch the whole series
    return None
