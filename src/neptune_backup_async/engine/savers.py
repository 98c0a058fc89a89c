"""Saving the fields of one object: one saver per field type.

The fields that need a request are saved by at most :attr:`~.limiter.Limits.tasks` tasks
(:func:`~.limiter.each`), so one object with many fields uses the whole bound and none
spawns a task per field. Series are saved by :mod:`.series`, image series by :mod:`.images`,
files, file sets and artifacts here; every body through :mod:`.downloads`, every saved field
into the :class:`~..format.object_folder.RunFolder`'s manifest and journal.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from ..domain import FieldInfo, FieldType
from ..errors import BackupError, FetchError, LayoutError, unexpected
from ..format import values
from ..format.manifest import FieldRecord
from ..format.reader import Action, decide, facts
from ..remote import checks
from . import file_sets, notebooks
from .downloads import ObjectFiles, Saved, fixed
from .images import save_images
from .limiter import each
from .series import save_series

log = logging.getLogger("neptune_backup_async")


class _Pending(NamedTuple):
    """A field to save with a request: its saver, and its record to extend (None: fetch it whole)."""

    saver: Callable[[FieldInfo, FieldRecord | None], Awaitable[Saved]]
    info: FieldInfo
    prev: FieldRecord | None


class FieldSavers(ObjectFiles):
    """Saves the fields of one run into its :class:`RunFolder`."""

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
            FieldType.FLOAT_SERIES: functools.partial(save_series, self),
            FieldType.STRING_SERIES: functools.partial(save_series, self),
            FieldType.FILE: self._file,
            FieldType.FILE_SET: self._file_set,
            FieldType.IMAGE_SERIES: functools.partial(save_images, self),
            FieldType.ARTIFACT: self._artifact,
            FieldType.NOTEBOOK_REF: functools.partial(
                notebooks.save, self.ctx, self.project, folder, self.paths, self.download
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

    # -- files --------------------------------------------------------------------------------

    async def _file(self, info: FieldInfo, prev: FieldRecord | None) -> Saved:
        rel = self.paths.field_file(info.path, info.type, info.ext)
        opener = functools.partial(self.ctx.source.open_file, self.run, info)
        expected = checks.Expected(checks.Kind.FILE, size=info.size, ext=info.ext)
        return [await self.download(opener, functools.partial(fixed, rel), info.path, expected)], {}

    async def _file_set(self, info: FieldInfo, prev: FieldRecord | None) -> Saved:
        async with file_sets.zip_url(self.ctx, self.place, self.run, info) as url:
            rel = self.paths.field_file(info.path, info.type)
            opener = functools.partial(self.ctx.source.open_file_set, url)
            expected = checks.Expected(checks.Kind.ZIP, size=info.size)
            return [await self.download(opener, functools.partial(fixed, rel), info.path, expected)], {}

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
        written = [await self.write(rel, values.dumps(listing).encode())]
        changed: dict[str, str] = {}
        if self.ctx.download_artifacts:
            targets = self.paths.artifact_files(info.path, [f.path for f in files])
            for f, rel in zip(files, targets, strict=True):
                fetch = self.ctx.artifact_files.fetch(f, self.place, rel, self.count_bytes)
                written.append(await self.download(fetch.open, fetch.sink, f"{info.path}:{f.path}", None))
                if fetch.changes:
                    changed[f.path] = "; ".join(fetch.changes)
                    reason = (
                        f"artifact file {f.path} changed since it was tracked ({changed[f.path]});"
                        " saved as it is now"
                    )
                    self.folder.notice(info.path, reason)
        return written, {"changed_since_tracking": changed} if changed else {}
