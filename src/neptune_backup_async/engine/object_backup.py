"""Backing up one object (run, model, model version, or a project's own fields): is it
unchanged since the last backup, which fields it has, and, field by field, what to reuse,
extend or fetch (:mod:`..format.reader`); the fields are then saved by
:class:`~.savers.FieldSavers` into the object's :class:`~..format.object_folder.RunFolder`,
which commits the object once every field is in. A dry run plans instead (:mod:`.dry_run`).
"""

from __future__ import annotations

import functools
from dataclasses import replace

import anyio

from ..disk.place import Place
from ..domain import ObjectRef, ProjectInfo
from ..errors import DamagedError, FetchError
from ..format import layout
from ..format.manifest import Manifest
from ..format.object_folder import RunFolder
from ..format.reader import layout_for, load_previous
from ..settings import BackupSettings
from .context import Context
from .dry_run import plan
from .savers import FieldSavers


class ObjectBackup:
    """Backs up objects into ``settings.destination``, one per call."""

    def __init__(self, context: Context, settings: BackupSettings) -> None:
        self.context = context
        self.settings = settings

    async def __call__(self, project: ProjectInfo, run: ObjectRef) -> bool | None:
        """Save every field of one object. None if any failed, else whether it was unchanged."""
        ctx, settings, recorder = self.context, self.settings, self.context.recorder
        where = project.qualified_name
        root = Place(
            settings.destination,
            layout.container_dir(project.workspace, project.name, run.sys_id, run.kind, run.model_id),
        )
        field_filter = settings.selection.fields
        try:
            previous = await anyio.to_thread.run_sync(
                functools.partial(load_previous, root, dry_run=settings.dry_run), limiter=ctx.limits.disk
            )
        except DamagedError as e:
            recorder.fail(where, run.sys_id, None, str(e))
            return None
        for why in previous.notices if previous is not None else ():
            recorder.notice(where, run.sys_id, None, why)
        if (
            previous is not None
            and not settings.full
            and previous.unchanged_since(run.modification_time, field_filter.to_json())
        ):
            return True
        try:
            listed = await ctx.retrier.call(
                ctx.source.get_fields, project, run, what="getExperimentAttributes"
            )
        except FetchError as e:
            recorder.fail(where, run.sys_id, None, str(e))
            return None
        if run.kind == "project":  # only its field listing says when it last changed
            modified = next((f.value for f in listed if f.path == "sys/modification_time"), None)
            run = replace(run, modification_time=modified)
            if previous and not settings.full and previous.unchanged_since(modified, field_filter.to_json()):
                return True
        fields = [f for f in listed if field_filter.keeps(f.path)]
        if settings.dry_run:
            planned = recorder.report.projects[where].planned
            plan(
                planned, fields, previous, full=settings.full, download_artifacts=settings.download_artifacts
            )
            return False
        manifest = Manifest(
            run.kind,
            where,
            run.sys_id,
            run.id,
            run.modification_time,
            field_filter=field_filter.to_json(),
            model_id=run.model_id,
        )
        reserved = (layout.VERSIONS_FOLDER,) if run.kind == "model" else ()
        folder = RunFolder(
            root,
            manifest,
            previous,
            recorder.report,
            recorder.count_bytes,
            lambda path, reason: recorder.notice(where, run.sys_id, path, reason),
            limiter=ctx.limits.disk,
        )
        paths = layout_for(fields, previous, reserved)
        savers = FieldSavers(ctx, project, run, folder, paths)
        try:
            await savers.save(fields)
            await folder.commit({info.path for info in listed}, {info.path for info in fields})
        finally:
            await folder.close()
        for path, reason in manifest.failures.items():
            recorder.fail(where, run.sys_id, path, reason)
        return None if manifest.failed_fields else False
