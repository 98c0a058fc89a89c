"""The backup pipeline: a producer lists runs into a bounded stream; workers save their fields.

Concurrency has one bound, the :class:`~.gate.Gate`: request tokens, held for each Neptune
request for as long as it is in flight (a streamed download holds one token from its first
byte to its last), fewer while the server pushes back. Parallelism is per field, so one run
with many fields uses the whole bound, and many small runs do too. Every request is retried
by the :class:`~.retry.Retrier`, in async code, so a cancel stops the whole backup at once.
Where the listed objects go is a :class:`Workers`: tasks of this process, or worker
processes (:mod:`.processes`), each of which runs a pipeline of its own fed by its parent.

Backups are incremental: a run whose complete manifest carries the modification time the
runs table shows is skipped without a request, and within a changed run :mod:`.resume`
decides field by field what to reuse, extend or fetch.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..domain import FieldInfo, ObjectRef, ProjectInfo
from ..errors import DamagedError, FetchError
from ..format import layout
from ..format.manifest import Manifest
from ..format.object_folder import RunFolder
from ..format.reader import Action, Previous, decide, layout_for, load_previous
from ..format.report import BACKING_UP, BackupReport, Note, Progress, ProjectSummary, listing
from ..remote.artifacts.files import ArtifactFiles
from ..remote.http import RetryPolicy
from ..remote.source import Source
from ..selection import RunFilter, Selection
from .limiter import Gate
from .paging import KeysetPager
from .progress import ProgressFeed
from .retry import THROTTLED, Retrier
from .savers import FieldSavers

log = logging.getLogger("neptune_backup_async")


@dataclass(frozen=True)
class Job:
    project: ProjectInfo
    ref: ObjectRef
    number: int = 0  # which job of the backup: how a worker process names it when it is done


class Workers(Protocol):
    """Where the producer's jobs go: tasks of this process (:class:`Tasks`), or worker
    processes (:class:`~.processes.ProcessPool`). Returns once every job is finished."""

    async def work(self, pipeline: Pipeline, jobs: MemoryObjectReceiveStream[Job]) -> None: ...


class Tasks:
    """The pipeline's own tasks, as many as its concurrency, each backing up one object at a time."""

    async def work(self, pipeline: Pipeline, jobs: MemoryObjectReceiveStream[Job]) -> None:
        async with jobs, anyio.create_task_group() as tg:
            for _ in range(pipeline.concurrency):
                tg.start_soon(pipeline.work_on, jobs.clone())


def project_ref(project: ProjectInfo) -> ObjectRef:
    """The project's own fields, read like a run's: the project's id is their container id."""
    return ObjectRef(sys_id=project.key, id=project.id, kind="project")


class Pipeline:
    def __init__(
        self,
        source: Source,
        destination: Path,
        *,
        concurrency: int,
        download_artifacts: bool,
        report: BackupReport,
        full: bool = False,
        selection: Selection | None = None,
        dry_run: bool = False,
        on_progress: Callable[[Progress], None] | None = None,
        retry: RetryPolicy | None = None,
        s3_endpoint_url: str | None = None,
        on_finished: Callable[[Job, bool | None], None] | None = None,
    ) -> None:
        self.source = source
        self.dest = destination
        self.concurrency = concurrency
        self.download_artifacts = download_artifacts
        self.full = full
        self.selection = selection or Selection()
        self.dry_run = dry_run
        self.report = report
        self.artifact_files = ArtifactFiles(
            destination, s3_endpoint_url=s3_endpoint_url, connections=concurrency
        )
        self.gate = Gate(concurrency)
        self.retrier = Retrier(self.gate, retry, on_retry=self._retried)
        self._progress = ProgressFeed(report, on_progress)
        self._on_finished = on_finished

    # -- progress -----------------------------------------------------------------------------

    def changed(self, *, final: bool = False) -> None:
        """Counts changed: the progress callback hears of it, rate-limited (see :mod:`.progress_feed`)."""
        self._progress.changed(final=final)

    def count_bytes(self, n: int) -> None:
        self.report.bytes_written += n
        self.changed()

    def _retried(self, reason: str, seconds: float) -> None:
        self.report.retries[reason] = self.report.retries.get(reason, 0) + 1
        if reason == THROTTLED:
            self.report.throttled_seconds += seconds

    def fail(self, project: str, run: str | None, field: str | None, reason: str) -> None:
        self.report.failures.append(Note(project, run, field, reason))
        log.error("%s/%s/%s: %s", project, run or "-", field or "-", reason)

    def notice(self, project: str, run: str | None, field: str | None, reason: str) -> None:
        self.report.notices.append(Note(project, run, field, reason))
        log.warning("%s/%s/%s: %s", project, run or "-", field or "-", reason)

    # -- producer and workers -----------------------------------------------------------------

    async def run(self, projects: list[ProjectInfo], workers: Workers | None = None) -> None:
        """List ``projects`` and back up what the listings find, with ``workers`` (default: tasks here)."""
        for project in projects:
            self.report.projects.setdefault(project.qualified_name, ProjectSummary())
        await self.flow(functools.partial(self._produce, projects), workers or Tasks())

    async def flow(
        self,
        produce: Callable[[MemoryObjectSendStream[Job]], Coroutine[object, object, None]],
        workers: Workers,
    ) -> None:
        """Run ``produce`` into a bounded stream that ``workers`` take jobs from."""
        send, receive = anyio.create_memory_object_stream[Job](max_buffer_size=self.concurrency)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(produce, send)
                tg.start_soon(workers.work, self, receive)
            self.changed(final=True)
        finally:
            self.artifact_files.close()

    async def _produce(self, projects: list[ProjectInfo], send: MemoryObjectSendStream[Job]) -> None:
        objects, select = self.selection.objects, self.selection
        untrashed = RunFilter().nql()  # models and versions: every one not in the trash
        async with send:
            for project in projects:
                self.report.stage = listing(project.qualified_name)
                summary = self.report.projects[project.qualified_name]
                if "project" in objects and select.owns(project.key):
                    summary.counts["project"].found += 1
                    await send.send(Job(project, project_ref(project)))
                # What each listing found (None: it failed); empty when not asked for.
                runs: set[str] | None = set()
                models: set[str] | None = set()
                versions: set[str] | None = set()
                if "runs" in objects:
                    runs = await self._list(project, "run", select.runs.nql(), send)
                    if runs is not None and not select.runs.narrows:
                        await self._note_runs_gone(project, runs)
                if "models" in objects:
                    models = await self._list(project, "model", untrashed, send)
                    if models:  # versions are saved under their model, so only those of a listed model
                        versions = await self._list(
                            project, "modelVersion", untrashed, send, models.__contains__
                        )
                summary.listed = runs is not None and models is not None and versions is not None
                self.changed()
                log.info("%s: listed %s", project.qualified_name, summary.found_words())
            self.report.stage = BACKING_UP
            self.changed()

    async def _list(
        self,
        project: ProjectInfo,
        kind: str,
        query: str,
        send: MemoryObjectSendStream[Job],
        of_model: Callable[[str], bool] | None = None,
    ) -> set[str] | None:
        """Send this shard's objects of one kind to the workers; their sys ids, or None if listing failed.

        ``of_model``: which models' versions to keep.
        """
        counts = self.report.projects[project.qualified_name].counts[kind]
        what = f"listing {kind}s of {project.qualified_name}"
        pager = KeysetPager(what)
        listed: set[str] = set()
        try:
            while (request := pager.next_request()) is not None:
                entries = await self.retrier.call(
                    self.source.objects_page, project, kind, query, request, what=what
                )
                # A version goes with its model (to its shard); the whole page counts at once, for progress.
                owned = [
                    ref
                    for ref in pager.feed(entries)
                    if self.selection.owns(ref.model_id or ref.sys_id)
                    and (of_model is None or of_model(ref.model_id or ""))
                ]
                counts.found += len(owned)
                self.changed()
                for ref in owned:
                    listed.add(ref.sys_id)
                    await send.send(Job(project, ref))
        except FetchError as e:
            self.fail(project.qualified_name, None, None, f"listing {kind}s failed: {e}")
            return None
        return listed

    async def _note_runs_gone(self, project: ProjectInfo, listed: set[str]) -> None:
        folder = self.dest / layout.project_dir(project.workspace, project.name)
        folders = {layout.object_segment(s) for s in listed}

        def gone() -> list[str]:
            """Backed-up runs of this shard that the listing no longer has."""
            out = []
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):  # a file there fails each run
                for path in sorted(folder.iterdir()):
                    manifest = path / layout.MANIFEST
                    if path.name.startswith("_") or path.name in folders or not manifest.is_file():
                        continue
                    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                        # An ordinary id is its folder's name; only escaped ones need the manifest.
                        plain = layout.object_segment(path.name) == path.name
                        sys_id = path.name if plain else Manifest.loads(manifest.read_text("utf-8")).sys_id
                        if self.selection.owns(sys_id):
                            out.append(path.name)
            return out

        for name in await anyio.to_thread.run_sync(gone):
            reason = "no longer listed by Neptune (deleted or trashed); its copy is kept"
            self.notice(project.qualified_name, name, None, reason)

    async def work_on(self, receive: MemoryObjectReceiveStream[Job]) -> None:
        """Back up the objects of ``receive`` one by one, until it ends."""
        async with receive:
            async for job in receive:
                self.finished(job, await self._backup_object(job.project, job.ref))

    def finished(self, job: Job, outcome: bool | None) -> None:
        """Count a job's ``outcome``: None failed, else whether it was unchanged."""
        summary = self.report.projects.setdefault(job.project.qualified_name, ProjectSummary())
        counts = summary.counts[job.ref.kind]
        if outcome is None:
            counts.failed += 1
        else:
            counts.done += 1
            counts.unchanged += outcome
        if self._on_finished is not None:
            self._on_finished(job, outcome)
        self.changed()

    # -- one run ------------------------------------------------------------------------------

    async def _backup_object(self, project: ProjectInfo, run: ObjectRef) -> bool | None:
        """Save every field of one run (or model, version, project). None if any failed, else
        whether it was unchanged."""
        where = project.qualified_name
        root = self.dest / layout.container_dir(
            project.workspace, project.name, run.sys_id, run.kind, run.model_id
        )
        field_filter = self.selection.fields
        try:
            previous = await anyio.to_thread.run_sync(
                functools.partial(load_previous, root, self.dest, dry_run=self.dry_run)
            )
        except DamagedError as e:
            self.fail(where, run.sys_id, None, str(e))
            return None
        for why in previous.notices if previous is not None else ():
            self.notice(where, run.sys_id, None, why)
        if (
            previous is not None
            and not self.full
            and previous.unchanged_since(run.modification_time, field_filter.to_json())
        ):
            return True
        try:
            listed = await self.retrier.call(
                self.source.get_fields, project, run, what="getExperimentAttributes"
            )
        except FetchError as e:
            self.fail(where, run.sys_id, None, str(e))
            return None
        except (KeyError, TypeError, ValueError) as e:
            self.fail(
                where, run.sys_id, None, f"malformed field listing from Neptune ({type(e).__name__}: {e})"
            )
            return None
        if run.kind == "project":  # only its field listing says when it last changed
            modified = next((f.value for f in listed if f.path == "sys/modification_time"), None)
            run = replace(run, modification_time=modified)
            if previous and not self.full and previous.unchanged_since(modified, field_filter.to_json()):
                return True
        fields = [f for f in listed if field_filter.keeps(f.path)]
        if self.dry_run:
            self._plan(project, fields, previous)
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
            self.report,
            self.count_bytes,
            lambda path, reason: self.notice(where, run.sys_id, path, reason),
        )
        paths = layout_for(fields, previous, reserved)
        savers = FieldSavers(self, project, run, folder, paths)
        try:
            async with anyio.create_task_group() as tg:
                for info in fields:
                    await savers.start(tg, info)
            await folder.commit({info.path for info in listed}, {info.path for info in fields})
        finally:
            await folder.close()
        for path, reason in manifest.failures.items():
            self.fail(where, run.sys_id, path, reason)
        return None if manifest.failed_fields else False

    def _plan(self, project: ProjectInfo, fields: list[FieldInfo], previous: Previous | None) -> None:
        """A dry run: tally the fields a backup would fetch, by type, with the bytes the listing gives."""
        planned = self.report.projects[project.qualified_name].planned
        paths = layout_for(fields, previous, ())
        for info in fields:
            if not info.type.is_simple:
                action, _ = decide(
                    info, previous, full=self.full, download_artifacts=self.download_artifacts, paths=paths
                )
                if action is Action.REUSE:
                    continue
            tally = planned.setdefault(info.type.value, [0, 0])
            tally[0] += 1
            tally[1] += info.size or 0  # the listing gives sizes of files and file sets only
