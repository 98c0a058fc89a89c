"""Saving an image series: each image a file, and an ``index.json`` of their steps, times,
names and descriptions (:func:`save_images`). The images of a series are saved by at most
:attr:`~.limiter.Limits.tasks` tasks (:func:`~.limiter.each`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from pathlib import PurePosixPath
from typing import Any

import anyio

from ..disk.files import WrittenFile
from ..domain import Download, FieldInfo, ImageInfo
from ..errors import FetchError, HttpStatusError, leading_error
from ..format import layout, values
from ..format.manifest import FieldRecord
from ..remote import checks
from .downloads import ObjectFiles, Saved
from .limiter import each

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

IMAGE_PAGE = 1_000
_IMAGE = checks.Expected(checks.Kind.IMAGE)


async def _image_metadata(obj: ObjectFiles, info: FieldInfo, total: int) -> list[ImageInfo]:
    """The step, time, name and description of a series' images, as far as the server
    gives them: none where it does not offer the series as a channel (said once a backup)."""
    source, retrier = obj.ctx.source, obj.ctx.retrier
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
        obj.ctx.recorder.notice_once(
            obj.project.qualified_name,
            obj.run.sys_id,
            info.path,
            f"Neptune gave no step, time, name or description of the images ({why}): the"
            " index.json of image series holds each image's index and file only",
        )
    return items


async def save_images(obj: ObjectFiles, info: FieldInfo, prev: FieldRecord | None) -> Saved:
    """Save every image of a series, or, given its earlier record ``prev``, the new ones once
    the last one saved is proven still Neptune's (else all again)."""
    source = obj.ctx.source
    total = await obj.ctx.retrier.call(source.image_count, obj.run, info, what="image listing")
    by_index = {item.index: item for item in await _image_metadata(obj, info, total)}

    def rel_for(index: int, download: Download) -> PurePosixPath:
        subtype = (download.content_type or "application/octet-stream").split(";")[0].split("/")[-1]
        return obj.paths.image_file(info.path, index, subtype.strip() or "bin")

    failed: dict[int, str] = {}
    written: dict[int, WrittenFile] = {}

    async def one(index: int) -> None:
        opener = functools.partial(source.open_image, obj.run, info, index)
        try:
            written[index] = await obj.download(
                opener, functools.partial(rel_for, index), f"{info.path}[{index}]", _IMAGE
            )
        except FetchError as e:  # the others go on, so that each is named
            failed[index] = str(e)

    async def fetch(indices: list[int]) -> None:
        try:
            await each(indices, one, obj.ctx.limits.tasks)
        except BaseExceptionGroup as group:  # one error, as for any other field
            error = leading_error(group)
            raise error from error.__cause__
        if failed:
            raise FetchError(
                f"images {', '.join(map(str, sorted(failed)))} of {total} were not saved: "
                + "; ".join(failed[i] for i in sorted(failed))
            )

    if prev is not None:
        kept, last = await anyio.to_thread.run_sync(_kept, obj, prev, total, limiter=obj.ctx.limits.disk)
        if last is not None:  # the last image saved, fetched again: is it still Neptune's?
            index, recorded, entry = last
            await fetch([index])
            same_meta = entry is None or index not in by_index or entry == _entry(by_index[index])
            if written[index].sha256 == recorded.sha256 and same_meta:
                written.update(kept)
            else:
                obj.folder.notice(
                    info.path,
                    "its last saved image is no longer Neptune's (the series was logged anew): fetched whole",
                )
    await fetch([i for i in range(total) if i not in written])
    if empty := [str(i) for i in range(total) if not written[i].size]:  # whole, by checks.check_body
        why = "the neptune client uploads an image over 32 MB empty"
        obj.folder.notice(info.path, f"images {', '.join(empty)} of {total} are empty ({why}): saved empty")
    index_doc = []
    for i in range(total):
        item = by_index.get(i)
        index_doc.append({"index": i, "file": PurePosixPath(written[i].path).name, **_entry(item)})
    index_file = await obj.write(obj.paths.image_index(info.path), values.dumps(index_doc).encode())
    return [*(written[i] for i in range(total)), index_file], {"count": total}


def _entry(item: ImageInfo | None) -> dict[str, Any]:
    """What ``index.json`` says of an image besides its index and file."""
    stamp = item.timestamp_ms if item else None
    return {
        "step": item.step if item else None,
        "timestamp": values.time_from_ms(stamp) if stamp is not None else None,
        "name": item.name if item else None,
        "description": item.description if item else None,
    }


def _kept(
    obj: ObjectFiles, prev: FieldRecord, total: int
) -> tuple[dict[int, WrittenFile], tuple[int, WrittenFile, dict[str, Any] | None] | None]:
    """Blocking: the images an earlier backup saved that are intact and still in the series'
    count, but the last one; and that one, with its record and what that backup's
    ``index.json`` said of it (None where it said nothing). Nothing when that last one is
    not among them: then nothing proves the rest is still Neptune's."""
    previous = obj.folder.previous
    assert previous is not None
    count = int(prev.extra.get("count", 0))
    kept: dict[int, WrittenFile] = {}
    index_doc: list[dict[str, Any]] = []
    for rel in prev.files:
        stem = PurePosixPath(rel).stem
        if stem.isdigit() and rel in previous.intact and int(stem) < total:
            kept[int(stem)] = previous.manifest.files[rel]
        elif PurePosixPath(rel).name == layout.IMAGE_INDEX and rel in previous.intact:
            with contextlib.suppress(OSError, ValueError):
                index_doc = json.loads((obj.root / rel).read_text(encoding="utf-8"))
    recorded = kept.pop(count - 1, None)
    if recorded is None:
        return {}, None
    said = next((e for e in index_doc if isinstance(e, dict) and e.get("index") == count - 1), None)
    entry = {k: said.get(k) for k in ("step", "timestamp", "name", "description")} if said else None
    if entry is not None and all(v is None for v in entry.values()):
        entry = None  # that backup had no word of it from the server
    return kept, (count - 1, recorded, entry)
