"""The backup pipeline: a producer lists objects into a bounded stream; workers back them up.

The producer pages through each project's runs, models and model versions (:mod:`.paging`)
and sends each object of this backup's selection as a :class:`Job`. Where the jobs go is a
:class:`Workers`: tasks of this process, each backing up one object at a time
(:class:`~.object_backup.ObjectBackup`), or worker processes (:mod:`..processes`), each of
which runs a pipeline of its own fed by its parent. Concurrency has one bound, the
:class:`~.limiter.Gate`, and every request is retried by the :class:`~.retry.Retrier`, in
async code, so a cancel stops the whole backup at once.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Protocol

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..domain import ObjectRef, ProjectInfo
from ..errors import FetchError
from ..format import layout
from ..format.report import BACKING_UP, ProjectSummary, listing
from ..remote.source import Source
from ..settings import BackupSettings
from .gone import gone_runs
from .limiter import Limits, pull
from .paging import KeysetPager
from .recorder import Recorder
from .retry import Retrier

log = logging.getLogger("neptune_backup_async")


@dataclass(frozen=True)
class Job:
    project: ProjectInfo
    ref: ObjectRef
    number: int = 0  # which job of the backup: how a worker process names it when it is done


class Workers(Protocol):
    """Where the producer's jobs go: tasks of this process (:class:`Tasks`), or worker
    processes (:class:`~.pool.ProcessPool`). Returns once every job is finished."""

    async def work(self, pipeline: Pipeline, jobs: MemoryObjectReceiveStream[Job]) -> None: ...


class Tasks:
    """The pipeline's own tasks, as many as its share of requests, each backing up one object at a time."""

    async def work(self, pipeline: Pipeline, jobs: MemoryObjectReceiveStream[Job]) -> None:
        await pull(jobs, pipeline.back_up, pipeline.limits.share)


def project_ref(project: ProjectInfo) -> ObjectRef:
    """The project's own fields, read like a run's: the project's id is their container id."""
    return ObjectRef(sys_id=project.key, id=project.id, kind="project")


class Pipeline:
    """One process's producer and consumers, as :func:`~.assembly.build_pipeline` puts them
    together, under ``limits``. ``back_up(project, object)`` backs up one object (None: it
    failed, else whether it was unchanged); ``on_finished`` hears of each job done."""

    def __init__(
        self,
        source: Source,
        settings: BackupSettings,
        limits: Limits,
        *,
        retrier: Retrier,
        recorder: Recorder,
        back_up: Callable[[ProjectInfo, ObjectRef], Awaitable[bool | None]],
        on_finished: Callable[[Job, bool | None], None] | None = None,
    ) -> None:
        self.source = source
        self.settings = settings
        self.limits = limits
        self.retrier = retrier
        self.recorder = recorder
        self.report = recorder.report
        self._back_up = back_up
        self._on_finished = on_finished

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
        send, receive = anyio.create_memory_object_stream[Job](max_buffer_size=self.limits.share)
        async with anyio.create_task_group() as tg:
            tg.start_soon(produce, send)
            tg.start_soon(workers.work, self, receive)
        self.recorder.changed(final=True)

    async def _produce(self, projects: list[ProjectInfo], send: MemoryObjectSendStream[Job]) -> None:
        select = self.settings.selection
        objects = select.objects
        models_query = select.models_nql()
        runs_listed: set[str] | None = set()  # None once a listing failed: then nothing is known missing
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
                    runs_listed = None if runs is None or runs_listed is None else runs_listed | runs
                    if runs is not None and not select.runs.narrows:
                        await self._note_runs_gone(project, runs)
                if "models" in objects:
                    models = await self._list(project, "model", models_query, send)
                    if models:  # versions are saved under their model, so only those of a listed model
                        versions = await self._list(
                            project, "modelVersion", models_query, send, models.__contains__
                        )
                summary.listed = runs is not None and models is not None and versions is not None
                self.recorder.changed()
                log.info("%s: listed %s", project.qualified_name, summary.found_words())
            for sys_id in select.runs.runs:  # --runs: name each id that matched nothing
                if runs_listed is not None and sys_id not in runs_listed and select.owns(sys_id):
                    reason = "no run has this id (or the other filters, or the trash, leave it out)"
                    self.recorder.notice("all", sys_id, None, reason)
            self.report.stage = BACKING_UP
            self.recorder.changed()

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
        noun = "model versions" if kind == "modelVersion" else f"{kind}s"
        pager = KeysetPager[ObjectRef](what, noun, key=lambda ref: ref.sys_id)
        listed: set[str] = set()
        try:
            while (request := pager.next_request()) is not None:
                page = await self.retrier.call(
                    self.source.objects_page, project, kind, query, request, what=what
                )
                # A version goes with its model (to its shard); the whole page counts at once, for progress.
                owned = [
                    ref
                    for ref in pager.feed(page.entries, page.matching)
                    if self.settings.selection.owns(ref.model_id or ref.sys_id)
                    and (of_model is None or of_model(ref.model_id or ""))
                ]
                counts.found += len(owned)
                self.recorder.changed()
                for ref in owned:
                    listed.add(ref.sys_id)
                    await send.send(Job(project, ref))
        except FetchError as e:
            self.recorder.fail(project.qualified_name, None, None, f"listing {kind}s failed: {e}")
            return None
        return listed

    async def _note_runs_gone(self, project: ProjectInfo, listed: set[str]) -> None:
        folder = self.settings.destination / layout.project_dir(project.workspace, project.name)
        gone = await anyio.to_thread.run_sync(
            gone_runs, folder, listed, self.settings.selection, limiter=self.limits.disk
        )
        for name in gone:
            reason = "no longer listed by Neptune (deleted or trashed); its copy is kept"
            self.recorder.notice(project.qualified_name, name, None, reason)

    async def back_up(self, job: Job) -> None:
        self.finished(job, await self._back_up(job.project, job.ref))

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
        self.recorder.changed()
