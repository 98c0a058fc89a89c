"""A notebook ref's checkpoint: the notebook itself, saved as ``<path>.ipynb`` beside the ref.

The ref (notebook and checkpoint ids and names) is a simple value in ``simple_metadata.json``
whatever happens here. The checkpoint is read by its id: ``getCheckpoint`` for its size,
then ``getCheckpointContent`` for the ``.ipynb``, judged by that size (see :mod:`..remote.checks`).
A checkpoint never changes (a new one gets a new id), so a copy saved once is reused while
the ref names the same checkpoint. Where the server refuses (403) or no longer has it
(404), the ref alone stands, with the copy an earlier backup saved if there is one, and the
report says so once.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from pathlib import PurePosixPath
from typing import Any

from ..disk.files import WrittenFile
from ..domain import Download, FieldInfo, ProjectInfo
from ..errors import HttpStatusError
from ..format import layout
from ..format.manifest import FieldRecord
from ..format.object_folder import RunFolder
from ..format.reader import checkpoint_id
from ..remote import checks
from .context import Context

#: How a saver downloads one body: the opener, where it goes, what it is, what it must be.
Downloader = Callable[
    [Callable[[], Download], Callable[[Download], PurePosixPath], str, checks.Expected],
    Awaitable[WrittenFile],
]
REFUSED = frozenset({403, 404})


def has_checkpoint(info: FieldInfo) -> bool:
    """Whether ``info`` is a notebook ref that names a checkpoint, to save beside it."""
    return checkpoint_id(info) is not None


async def save(
    ctx: Context,
    project: ProjectInfo,
    folder: RunFolder,
    paths: layout.RunLayout,
    download: Downloader,
    info: FieldInfo,
    prev: FieldRecord | None,
) -> tuple[list[WrittenFile], dict[str, Any]]:
    """Save the checkpoint ``info`` names; no files when the server refused it (the field is
    then recorded here: by its ref alone, or with the copy an earlier backup saved)."""
    source, retrier = ctx.source, ctx.retrier
    checkpoint = checkpoint_id(info)
    assert checkpoint is not None
    rel = paths.notebook_file(info.path)
    try:
        size = await retrier.call(source.checkpoint_size, checkpoint, what="getCheckpoint")
        opener = functools.partial(source.open_checkpoint, checkpoint)
        expected = checks.Expected(checks.Kind.NOTEBOOK, size=size)
        return [await download(opener, lambda _: rel, info.path, expected)], {}
    except HttpStatusError as e:
        if e.status not in REFUSED:
            raise
        status = e.status
    earlier = _earlier_copy(folder, paths, info)
    if earlier is not None:
        folder.reuse(info.path, earlier)
    reason = (
        f"Neptune refused notebook checkpoints (HTTP {status}): simple_metadata.json keeps their"
        " notebook refs, with the .ipynb of an earlier backup where there is one"
    )
    ctx.recorder.notice_once(project.qualified_name, folder.manifest.sys_id, info.path, reason)
    return [], {}


def _earlier_copy(folder: RunFolder, paths: layout.RunLayout, info: FieldInfo) -> FieldRecord | None:
    """The record of the checkpoint an earlier backup saved of this field, if it is still
    on disk where this layout puts it."""
    previous = folder.previous
    record = previous.record(info.path) if previous is not None else None
    if previous is None or record is None or record.status != "ok" or record.type != info.type.value:
        return None  # a stale copy (an earlier failure) is still a copy
    if record.files == [layout.SIMPLE_METADATA] or not previous.is_intact(record):
        return None
    return record if paths.files_of(info.path, record.type, record.files, None) else None
