"""A file set's zip: asked for, polled until the server has built it, and its request kept
in DEST until the zip is saved.

Neptune builds a file set's zip on request (``prepare_file_set`` gives the request's id) and
says where to download it once built (``file_set_url``). A large file set may take the
server longer than a backup waits (:data:`ZIP_PATIENCE`); asking anew would start the build
over at every backup. So the request is kept in ``DEST/.neptune-backup/zip-requests/``, one
file per field, with what it was asked for: the object, the field, the file set's size and
the object's modification time. The next backup polls that request while all four are
still what Neptune lists, and asks anew otherwise.

What is read there is hostile input: the file's name is ours (a hash), its content is
shape-checked, and the id must look like one; it only ever goes into a query. The request
is dropped once its zip is saved, once a download of its zip has failed after its retries
(the next backup asks anew rather than fetch a bad zip again), and when the server no
longer knows it; a backup cancelled, or stopped by a lost server or a full disk, keeps it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import PurePosixPath
from typing import Any

import anyio

from .. import domain
from ..disk.files import write_whole
from ..disk.place import Place
from ..domain import FieldInfo, ObjectRef
from ..errors import FetchError, HttpStatusError
from .context import Context

ZIP_PATIENCE = 600.0  # seconds one backup polls for a zip the server is building
STATE_DIR = PurePosixPath(".neptune-backup/zip-requests")
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_WHAT = "file set download"


class ZipRequest:
    """The kept request of one file set field. Its methods block: call them in a disk thread."""

    def __init__(self, place: Place, run: ObjectRef, info: FieldInfo) -> None:
        """``place``: the object's folder, in its DEST."""
        self.place = Place(place.dest, STATE_DIR)
        key = hashlib.sha256(f"{place.rel.as_posix()}\n{info.path}".encode()).hexdigest()[:32]
        self.name = PurePosixPath(f"{key}.json")
        modified = run.modification_time
        self.facts: dict[str, Any] = {
            "object": run.id,
            "field": info.path,
            "size": info.size,
            "modification_time": domain.iso(modified) if modified is not None else None,
        }

    def load(self) -> str | None:
        """The id of the request kept for this field as it is now; None if there is none."""
        try:
            doc = json.loads(self.place.read(self.name))
        except (OSError, ValueError):  # none, or unreadable: asked anew, and written over
            return None
        if not isinstance(doc, dict):
            return None
        for key, value in self.facts.items():
            if type(doc.get(key)) is not type(value) or doc.get(key) != value:
                return None  # another field's, or of the file set as it was
        request = doc.get("request")
        return request if isinstance(request, str) and _REQUEST_ID.fullmatch(request) else None

    def keep(self, request_id: str) -> None:
        document = {**self.facts, "request": request_id}
        write_whole(self.place, self.name, json.dumps(document, sort_keys=True).encode("utf-8"))

    def forget(self) -> None:
        self.place.unlink(self.name, missing_ok=True)


@contextlib.asynccontextmanager
async def zip_url(ctx: Context, place: Place, run: ObjectRef, info: FieldInfo) -> AsyncIterator[str]:
    """Where the zip of a file set can be downloaded, once the server has built it: from the
    request an earlier backup kept, if it still holds, else from a new one, kept until the
    block that downloads the zip ends. A FetchError when it is not built in time."""
    source, retrier, disk = ctx.source, ctx.retrier, ctx.limits.disk
    kept = ZipRequest(place, run, info)
    request_id = await anyio.to_thread.run_sync(kept.load, limiter=disk)
    url: str | None = None
    if request_id is not None:
        try:
            url = await _poll(ctx, request_id)
        except HttpStatusError:  # the server no longer knows it
            request_id = None
    if request_id is None:
        request_id = await retrier.call(source.prepare_file_set, run, info, what=_WHAT)
        await anyio.to_thread.run_sync(kept.keep, request_id, limiter=disk)
        url = await _poll(ctx, request_id)
    if url is None:
        raise FetchError(
            f"{_WHAT}: Neptune did not prepare the zip in {ZIP_PATIENCE:.0f} s; run the same command"
            " again later: it goes on waiting for the same zip"
        )
    forget = functools.partial(anyio.to_thread.run_sync, kept.forget, limiter=disk)
    try:
        yield url
    except FetchError:  # the zip failed: a new request may build a good one
        with anyio.CancelScope(shield=True):
            await forget()
        raise
    # Saved. A cancel, a lost server or a full disk (no FetchError) keep the request.
    with anyio.CancelScope(shield=True):
        await forget()


async def _poll(ctx: Context, request_id: str) -> str | None:
    """The zip's URL once the server has built it; None if it did not in :data:`ZIP_PATIENCE`."""
    url: str | None = None
    delay = 0.1
    with anyio.move_on_after(ZIP_PATIENCE):
        while (url := await ctx.retrier.call(ctx.source.file_set_url, request_id, what=_WHAT)) is None:
            await anyio.sleep(delay)  # the server is still building the zip
            delay = min(delay * 2, 5.0)
    return url
