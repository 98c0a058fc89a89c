"""Saving an image series: each image a file, and an ``index.json`` of their steps, times,
names and descriptions (:func:`save_images`). The images of a series are saved by at most
:attr:`~.limiter.Limits.tasks` tasks (:func:`~.limiter.each`).
"""

from __future__ import annotations

import functools
import sys
from pathlib import PurePosixPath

from .. import domain
from ..disk.files import WrittenFile
from ..domain import Download, FieldInfo, ImageInfo
from ..errors import FetchError, HttpStatusError, leading_error
from ..format import values
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
    """Save every image of a series, or, given its earlier record ``prev``, the new ones."""
    source = obj.ctx.source
    total = await obj.ctx.retrier.call(source.image_count, obj.run, info, what="image listing")
    by_index = {item.index: item for item in await _image_metadata(obj, info, total)}
    written: dict[int, WrittenFile] = {}
    previous = obj.folder.previous
    if prev is not None and previous is not None:  # images are append-only: keep the old ones
        for rel in prev.files:
            stem = PurePosixPath(rel).stem
            if stem.isdigit() and rel in previous.intact and int(stem) < total:
                written[int(stem)] = previous.manifest.files[rel]

    def rel_for(index: int, download: Download) -> PurePosixPath:
        subtype = (download.content_type or "application/octet-stream").split(";")[0].split("/")[-1]
        return obj.paths.image_file(info.path, index, subtype.strip() or "bin")

    failed: dict[int, str] = {}

    async def one(index: int) -> None:
        opener = functools.partial(source.open_image, obj.run, info, index)
        try:
            written[index] = await obj.download(
                opener, functools.partial(rel_for, index), f"{info.path}[{index}]", _IMAGE
            )
        except FetchError as e:  # the others go on, so that each is named
            failed[index] = str(e)

    try:
        await each([i for i in range(total) if i not in written], one, obj.ctx.limits.tasks)
    except BaseExceptionGroup as group:  # one error, as for any other field
        error = leading_error(group)
        raise error from error.__cause__
    if failed:
        raise FetchError(
            f"images {', '.join(map(str, sorted(failed)))} of {total} were not saved: "
            + "; ".join(failed[i] for i in sorted(failed))
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
    index_file = await obj.write(obj.paths.image_index(info.path), values.dumps(index_doc).encode())
    return [*(written[i] for i in range(total)), index_file], {"count": total}
