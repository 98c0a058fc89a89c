"""Saving a float or string series: its pages into one CSV (:func:`save_series`).

A series page costs one thread call: the request's worker thread fetches it, formats its
rows and appends them to the field's :class:`~..disk.files.ThreadFile` (and commits the file
after the last page).
"""

from __future__ import annotations

import anyio

from ..disk.files import ThreadFile, thread_file
from ..domain import FieldInfo
from ..errors import FetchError
from ..format import values
from ..format.manifest import FieldRecord
from .downloads import ObjectFiles, Saved

_SERIES_HEADER = values.SERIES_HEADER.encode()


async def save_series(obj: ObjectFiles, info: FieldInfo, prev: FieldRecord | None) -> Saved:
    """Save a series whole, or, given its earlier record ``prev``, its old rows and new pages."""
    source, retrier = obj.ctx.source, obj.ctx.retrier
    formatter = values.SeriesFormatter(info.type)
    limit = source.series_page_limit
    disk = obj.ctx.limits.disk
    async with thread_file(obj.place, obj.paths.field_file(info.path, info.type), limiter=disk) as out:
        rows = (
            0
            if prev is None
            else await anyio.to_thread.run_sync(_copy_previous, obj, out, prev, limiter=disk)
        )

        def page(offset: int) -> tuple[int, int, int]:
            """One attempt, in the request's worker thread: fetch the page at ``offset``,
            append its rows (under the header, for the first) and, after the last page,
            commit the file. Returns the total, the points it held and the bytes written.
            One thread call per page; the page's text is freed before it returns, and the
            event loop stays free."""
            page = source.series_page(obj.run, info, offset, limit)
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
            obj.count_bytes(written)
            rows += count
            if count == 0 or rows >= total:
                break
    assert out.result is not None
    return [out.result], {"rows": rows}


def _copy_previous(obj: ObjectFiles, out: ThreadFile, prev: FieldRecord) -> int:
    """Blocking: copy the old CSV into ``out`` if it still hashes to its recorded sha256;
    return its rows (0 if not)."""
    previous = obj.folder.previous
    assert previous is not None
    recorded = previous.manifest.files[prev.files[0]]
    with (obj.root / recorded.path).open("rb") as f:
        while chunk := f.read(1024 * 1024):
            out.write(chunk)
    if out.size == recorded.size and out.sha256 == recorded.sha256:
        return int(prev.extra["rows"])
    out.reset()  # damaged since: fetch the whole series
    return 0
