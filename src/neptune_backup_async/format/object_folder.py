"""One run's folder as a backup fills it: the manifest, the journal, and the commit.

Fields are recorded as they are saved: each saved field gets a line in the journal, so an
interrupted backup resumes without fetching it again. The run is committed by writing
``simple_metadata.json`` and then the manifest; files the new manifest no longer names are
removed after that.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

import anyio

from ..disk.files import Journal, WrittenFile, file_sha256, write_whole
from ..disk.place import Place
from ..domain import FieldInfo, FieldType
from . import layout, values
from .manifest import STALE, FieldRecord, Manifest
from .reader import Previous, journal_line
from .report import BackupReport

# What a kept earlier copy is marked with: left out by the field filter, gone from Neptune, or
# failed in this backup (the mark then says why; see FieldRecord.failure).
KEPT_MARKS = ("excluded", "removed_upstream", STALE)


class RunFolder:
    """The folder of one run (or model, version, project) and its manifest, while it is backed up."""

    def __init__(
        self,
        place: Place,
        manifest: Manifest,
        previous: Previous | None,
        report: BackupReport,
        count_bytes: Callable[[int], None],
        notice: Callable[[str, str], None],
        *,
        limiter: anyio.CapacityLimiter | None = None,
    ) -> None:
        """``notice(field, reason)`` notes what a user should know of a field (gone from Neptune,
        changed since tracked); ``limiter`` bounds the threads that write the run's files (see
        :mod:`..disk.files`), this folder's and its savers'."""
        self.place = place
        self.root = place.path
        self.manifest = manifest
        self.previous = previous
        self.simple: dict[str, Any] = {}  # simple values, for simple_metadata.json
        self._report = report
        self._count_bytes = count_bytes
        self.notice = notice
        self._journal_lock = anyio.Lock()
        self._journal_file = Journal(place, PurePosixPath(layout.JOURNAL))
        self.limiter = limiter

    # -- recording fields ---------------------------------------------------------------------

    def keep_simple(self, info: FieldInfo, value: Any) -> None:
        """A simple value: saved with the others in simple_metadata.json when the run commits."""
        self.simple[info.path] = value
        self.manifest.fields[info.path] = FieldRecord(info.type.value, "ok", [layout.SIMPLE_METADATA])

    def reuse(self, path: str, prev: FieldRecord) -> None:
        """A field unchanged since the last backup: its files are in place already."""
        assert self.previous is not None
        extra = {k: v for k, v in prev.extra.items() if k not in KEPT_MARKS}  # it is current again
        self.manifest.fields[path] = FieldRecord(prev.type, prev.status, prev.files, prev.error, extra)
        for rel in prev.files:
            self.manifest.add_file(self.previous.manifest.files[rel])
        self._report.count_fields(self.manifest, done=1)

    async def saved(self, info: FieldInfo, written: list[WrittenFile], extra: dict[str, Any]) -> None:
        """A field whose files are in place: recorded, journalled, and only then counted."""
        record = FieldRecord(info.type.value, "ok", [w.path for w in written], extra=extra)
        for w in written:
            self.manifest.add_file(w)
        self.manifest.fields[info.path] = record
        await self._journal(journal_line(info.path, record, written))
        # No checkpoint since the line landed: no cancel between.
        self._report.count_fields(self.manifest, done=1)

    def failed(self, info: FieldInfo, reason: str) -> None:
        self.manifest.fields[info.path] = FieldRecord(info.type.value, "failed", error=reason)
        self._report.count_fields(self.manifest, failed=1)

    async def _journal(self, line: str) -> None:
        """Note a saved field, so an interrupted backup resumes without fetching it again.

        Returns once the whole line is in the journal; raises with none of it there. So the
        journal holds exactly the fields counted: the line is written by one worker-thread
        call that a cancel waits for (a cancel before it writes nothing), with no buffer left
        to be flushed later by a close, and a write cut short (a full disk) is taken back.
        Not fsynced: after a power cut a lost line only means fetching that field again,
        while the files it names were fsynced before they were renamed into place.
        """
        async with self._journal_lock:
            await anyio.to_thread.run_sync(
                self._journal_file.append, line.encode("utf-8"), limiter=self.limiter
            )

    async def close(self) -> None:
        if not self._journal_file.is_open:
            return  # no thread call for nothing
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._journal_file.close, limiter=self.limiter)

    # -- the commit ---------------------------------------------------------------------------

    async def commit(self, listed: set[str], kept: set[str]) -> None:
        """Write simple_metadata.json and then the manifest; the run is complete once both are in place.

        ``listed``: every field Neptune has; ``kept``: those the field filter let through.
        """
        if self.previous is not None:
            await self._keep_old(listed, kept)
        simple_fields = [
            path
            for path, record in self.manifest.fields.items()
            if record.files == [layout.SIMPLE_METADATA] and path in kept
        ]
        self.manifest.complete = not self.manifest.failed_fields
        # A manifest on disk is its simple fields counted and its run tidied, even on a cancel:
        # no journal then makes a committed run look unfinished, no old file is left unnamed.
        with anyio.CancelScope(shield=True):
            simple_bytes = await anyio.to_thread.run_sync(self._finish, limiter=self.limiter)
            # The simple fields are saved once the manifest names their file.
            self._report.count_fields(self.manifest, done=len(simple_fields))
        if simple_bytes:
            self._count_bytes(simple_bytes)

    async def _keep_old(self, listed: set[str], kept: set[str]) -> None:
        """Fields gone from Neptune, left out by the field filter, or failed in this backup keep
        their earlier copy and its record, marked as such: neither a narrower filter nor a
        failure ever deletes what was saved."""
        assert self.previous is not None
        old = self.previous.manifest
        marks: dict[str, tuple[str, str | bool]] = {}
        for path, record in old.fields.items():
            if record.status != "ok":
                continue
            now = self.manifest.fields.get(path)
            if path not in kept:
                marks[path] = ("excluded", True) if path in listed else ("removed_upstream", True)
            elif now is not None and now.status == "failed" and now.type == record.type:
                marks[path] = (STALE, now.error or "failed")
        failed = [p for p, (mark, _) in marks.items() if mark == STALE]
        for path in await anyio.to_thread.run_sync(self._not_whole, failed, limiter=self.limiter):
            del marks[path]
        old_simple: dict[str, Any] = {}
        if any(_has_simple_value(old.fields[p]) for p in marks):
            with contextlib.suppress(OSError, ValueError):
                read = functools.partial((self.root / layout.SIMPLE_METADATA).read_text, encoding="utf-8")
                text = await anyio.to_thread.run_sync(read, limiter=self.limiter)
                old_simple = json.loads(text)
        for path, (mark, value) in sorted(marks.items()):
            record = old.fields[path]
            if _has_simple_value(record) and path in old_simple:
                self.simple.setdefault(path, old_simple[path])  # a failed notebook's ref is the new one
            elif record.files == [layout.SIMPLE_METADATA]:
                continue
            for rel in record.files:
                if rel != layout.SIMPLE_METADATA:
                    self.manifest.add_file(old.files[rel])
            extra = {k: v for k, v in record.extra.items() if k not in KEPT_MARKS}
            self.manifest.fields[path] = FieldRecord(
                record.type, "ok", record.files, extra={**extra, mark: value}
            )
            if mark == "removed_upstream" and not record.extra.get(mark):
                self.notice(path, "no longer in Neptune; its copy is kept")

    def _not_whole(self, paths: list[str]) -> list[str]:
        """Blocking: the fields among ``paths`` whose earlier copy is no longer on disk as
        recorded, or whose files a field of this backup took. A field that failed may have
        replaced some of its files before it did (an image series, each image renamed into place)."""
        assert self.previous is not None
        old = self.previous.manifest
        recorded = old.files
        taken = {layout.fold(rel) for rel in self.manifest.files}

        def whole(rel: str) -> bool:
            if rel == layout.SIMPLE_METADATA:
                return True  # rewritten at the commit; its kept values are read from the old one
            if layout.fold(rel) in taken or rel not in recorded:
                return False
            try:
                return file_sha256(self.root / rel) == recorded[rel].sha256
            except OSError:
                return False

        return [p for p in paths if not all(whole(rel) for rel in old.fields[p].files)]

    def _finish(self) -> int:
        """Blocking: write simple_metadata.json, then the manifest, then tidy up, in one thread
        call; returns the bytes of simple_metadata.json (0 when the run has no simple value)."""
        size = 0
        if self.simple:
            data = values.dumps(self.simple).encode("utf-8")
            self.manifest.add_file(write_whole(self.place, PurePosixPath(layout.SIMPLE_METADATA), data))
            size = len(data)
        # Compact, unlike the documents users read: json's C encoder only serves indent=None.
        manifest = json.dumps(self.manifest.to_json(), sort_keys=True, ensure_ascii=False, allow_nan=False)
        write_whole(self.place, PurePosixPath(layout.MANIFEST), manifest.encode())
        self._tidy()
        return size

    def _tidy(self) -> None:
        """Drop the journal, and files of the old backup that no field refers to any more.

        A link met on the way is refused (a DestinationError), never followed: nothing
        outside the run's folder is deleted."""
        self._journal_file.remove()  # every field is in: nothing writes to it any more
        if self.previous is not None:
            current = {layout.fold(rel): rel for rel in self.manifest.files}
            for rel in set(self.previous.manifest.files) - set(self.manifest.files):
                twin = current.get(layout.fold(rel))  # on a case-insensitive disk, maybe the same file
                with contextlib.suppress(OSError):
                    if twin is None or not os.path.samefile(self.root / rel, self.root / twin):
                        self.place.unlink(rel)
                        for folder in PurePosixPath(rel).parents[:-1]:  # and the folders it leaves empty
                            self.place.rmdir(folder)


def _has_simple_value(record: FieldRecord) -> bool:
    """Whether a field's value is in simple_metadata.json: a simple one's, or a notebook ref's
    beside the .ipynb of its checkpoint."""
    return record.files == [layout.SIMPLE_METADATA] or record.type == FieldType.NOTEBOOK_REF.value
