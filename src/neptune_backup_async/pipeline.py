"""The backup pipeline: a producer lists runs into a bounded stream; workers save their fields.

Concurrency has one bound, :class:`Gate`: a ``CapacityLimiter`` of ``concurrency`` tokens,
held for each Neptune request for as long as it is in flight (a streamed download holds
one token from its first byte to its last). Parallelism is per field, so one run with
many fields uses the whole bound, and many small runs do too.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from . import layout, values
from .errors import AuthenticationError, BackupError, DestinationError, FetchError
from .manifest import FieldRecord, Manifest
from .report import BackupReport, Failure, Progress, ProjectSummary
from .retry import RetryPolicy, TransientError
from .source import Download, FieldInfo, FieldType, ProjectInfo, RunRef, Source
from .store import AtomicFile, WrittenFile, write_file

log = logging.getLogger("neptune_backup_async")
T = TypeVar("T")
IMAGE_PAGE = 1_000


class Gate:
    """The one knob: at most ``concurrency`` Neptune requests in flight."""

    def __init__(self, concurrency: int) -> None:
        self.requests = anyio.CapacityLimiter(concurrency)
        # Threads run only inside a request token, so this never binds; it exists because
        # anyio's default thread limiter (40) would cap a larger --concurrency.
        self._threads = anyio.CapacityLimiter(concurrency)

    async def thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking ``fn`` in a worker thread; the caller must hold a request token."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._threads, abandon_on_cancel=True)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """One Neptune request, in a thread, under the bound."""
        async with self.requests:
            return await self.thread(fn, *args)


@dataclass(frozen=True)
class Job:
    project: ProjectInfo
    run: RunRef


class Pipeline:
    def __init__(
        self,
        source: Source,
        destination: Path,
        *,
        concurrency: int,
        download_artifacts: bool,
        report: BackupReport,
        on_progress: Callable[[Progress], None] | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.source = source
        self.dest = destination
        self.concurrency = concurrency
        self.download_artifacts = download_artifacts
        self.report = report
        self.gate = Gate(concurrency)
        self.retry = retry or RetryPolicy()
        self._on_progress = on_progress

    # -- progress -----------------------------------------------------------------------------

    def _changed(self) -> None:
        if self._on_progress is not None:
            self._on_progress(self.report.progress())

    def _count_bytes(self, n: int) -> None:
        self.report.bytes_written += n
        self._changed()

    def _fail(self, project: str, run: str | None, field: str | None, reason: str) -> None:
        self.report.failures.append(Failure(project, run, field, reason))
        log.error("%s: %s", "/".join(p for p in (project, run, field) if p), reason)

    # -- producer and workers -----------------------------------------------------------------

    async def run(self, projects: list[ProjectInfo]) -> None:
        for project in projects:
            self.report.projects.setdefault(project.qualified_name, ProjectSummary())
        send, receive = anyio.create_memory_object_stream[Job](max_buffer_size=self.concurrency)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._produce, projects, send)
            with receive:
                for _ in range(self.concurrency):
                    tg.start_soon(self._work, receive.clone())

    async def _produce(self, projects: list[ProjectInfo], send: MemoryObjectSendStream[Job]) -> None:
        async with send:
            for project in projects:
                summary = self.report.projects[project.qualified_name]
                pages = self.source.iter_runs(project)
                try:
                    while (page := await self.gate.call(next, pages, None)) is not None:
                        summary.runs_found += len(page)
                        self._changed()
                        for run in page:
                            await send.send(Job(project, run))
                    summary.listed = True
                except FetchError as e:
                    self._fail(project.qualified_name, None, None, f"listing runs failed: {e}")
                self._changed()

    async def _work(self, receive: MemoryObjectReceiveStream[Job]) -> None:
        async with receive:
            async for job in receive:
                summary = self.report.projects[job.project.qualified_name]
                ok = await self._backup_run(job.project, job.run)
                if ok:
                    summary.runs_done += 1
                else:
                    summary.runs_failed += 1
                self._changed()

    # -- one run ------------------------------------------------------------------------------

    async def _backup_run(self, project: ProjectInfo, run: RunRef) -> bool:
        """Save every field of one run; True when all of them were saved."""
        where = project.qualified_name
        try:
            fields = await self.gate.call(self.source.get_fields, project, run)
        except FetchError as e:
            self._fail(where, run.sys_id, None, str(e))
            return False
        folder = layout.container_dir(project.workspace, project.name, run.sys_id)
        root = self.dest / folder
        manifest = Manifest("run", where, run.sys_id, run.id, run.modification_time)
        saver = _RunSaver(self, project, run, root, manifest)
        async with anyio.create_task_group() as tg:
            for info in fields:
                saver.start(tg, info)
        await saver.finish()
        for path in manifest.failed_fields:
            self._fail(where, run.sys_id, path, manifest.fields[path].error or "failed")
        return not manifest.failed_fields


class _RunSaver:
    """Saves the fields of one run into its folder and keeps its manifest."""

    def __init__(
        self, pipe: Pipeline, project: ProjectInfo, run: RunRef, root: Path, manifest: Manifest
    ) -> None:
        self.pipe = pipe
        self.project = project
        self.run = run
        self.root = root
        self.manifest = manifest
        self.simple: dict[str, Any] = {}

    def start(self, tg: TaskGroup, info: FieldInfo) -> None:
        if info.type.is_simple:
            self.simple[info.path] = values.simple_value(info.type, info.value)
            self.manifest.fields[info.path] = FieldRecord(info.type.value, "ok", [layout.SIMPLE_METADATA])
            return
        saver: Callable[[FieldInfo], Awaitable[tuple[list[WrittenFile], dict[str, Any]]]] = {
            FieldType.FLOAT_SERIES: self._series,
            FieldType.STRING_SERIES: self._series,
            FieldType.FILE: self._file,
            FieldType.FILE_SET: self._file_set,
            FieldType.IMAGE_SERIES: self._images,
            FieldType.ARTIFACT: self._artifact,
        }[info.type]
        if info.type is FieldType.ARTIFACT:
            self.simple[info.path] = info.value  # the hash, as the seed script kept it
        tg.start_soon(self._guarded, saver, info)

    async def _guarded(
        self,
        saver: Callable[[FieldInfo], Awaitable[tuple[list[WrittenFile], dict[str, Any]]]],
        info: FieldInfo,
    ) -> None:
        """Save one field; a failure is recorded against it and the run goes on."""
        try:
            written, extra = await saver(info)
        except (AuthenticationError, DestinationError):
            raise  # nothing else can succeed either
        except (BackupError, TransientError, OSError) as e:
            self._record_failure(info, str(e))
        except Exception as e:  # a malformed answer or a bug must not take the run down
            log.debug("%s/%s\n%s", self.run.sys_id, info.path, traceback.format_exc())
            self._record_failure(info, f"unexpected {type(e).__name__}: {e}")
        else:
            for w in written:
                self.manifest.add_file(w)
            self.manifest.fields[info.path] = FieldRecord(
                info.type.value, "ok", [w.path for w in written], extra=extra
            )
            self.pipe.report.fields_done += 1

    def _record_failure(self, info: FieldInfo, reason: str) -> None:
        self.manifest.fields[info.path] = FieldRecord(info.type.value, "failed", error=reason)
        self.pipe.report.fields_failed += 1

    async def finish(self) -> None:
        """Write simple_metadata.json, then the manifest: the run is complete only once both are in place."""
        report = self.pipe.report
        if self.simple:
            data = values.dumps(self.simple).encode("utf-8")
            written = await write_file(
                self.root, PurePosixPath(layout.SIMPLE_METADATA), data, self.pipe._count_bytes
            )
            self.manifest.add_file(written)
            report.fields_done += sum(1 for p in self.simple if self.manifest.fields[p].status == "ok")
        self.manifest.complete = not self.manifest.failed_fields
        document = self.manifest.to_json(dt.datetime.now(dt.timezone.utc))
        await write_file(self.root, PurePosixPath(layout.MANIFEST), values.dumps(document).encode("utf-8"))

    # -- field savers: each returns the files it wrote and extra manifest facts -----------------

    async def _series(self, info: FieldInfo) -> tuple[list[WrittenFile], dict[str, Any]]:
        source, gate = self.pipe.source, self.pipe.gate
        formatter = values.SeriesFormatter(info.type)
        rel = layout.field_file(info.path, info.type)
        limit = source.series_page_limit
        rows = 0
        async with AtomicFile(self.root, rel, self.pipe._count_bytes) as out:
            await out.write(values.SERIES_HEADER.encode())
            total = None
            while total is None or rows < total:
                page = await gate.call(source.series_page, self.run, info, rows, limit)
                total = page.total
                if not page.points:
                    if rows < total:
                        raise FetchError(f"the server promised {total} points but sent {rows}")
                    break
                await out.write(formatter.rows(page.points).encode("utf-8"))
                rows += len(page.points)
        assert out.result is not None
        return [out.result], {"rows": rows, "last_step": info.last_step}

    async def _download(
        self, opener: Callable[[], Download], rel_for: Callable[[Download], PurePosixPath], what: str
    ) -> WrittenFile:
        """Stream one body to disk, holding one request token throughout; retried from scratch if cut."""
        gate, policy = self.pipe.gate, self.pipe.retry
        for attempt in range(policy.attempts):
            try:
                async with gate.requests:
                    download = await gate.thread(opener)
                    try:
                        async with AtomicFile(self.root, rel_for(download), self.pipe._count_bytes) as out:
                            while chunk := await gate.thread(next, download.chunks, b""):
                                await out.write(chunk)
                            if download.size is not None and out.size != download.size:
                                raise TransientError(f"{what}: got {out.size} of {download.size} bytes")
                    finally:
                        download.release()
                assert out.result is not None
                return out.result
            except TransientError:
                if attempt == policy.attempts - 1:
                    raise
                await anyio.sleep(policy.delay(attempt, None))  # backoff before the next try
        raise AssertionError("unreachable")

    async def _file(self, info: FieldInfo) -> tuple[list[WrittenFile], dict[str, Any]]:
        source = self.pipe.source
        rel = layout.field_file(info.path, info.type, info.ext)
        opener = functools.partial(source.open_file, self.run, info)
        written = await self._download(opener, functools.partial(_fixed, rel), info.path)
        return [written], {"name": info.value, "ext": info.ext}

    async def _file_set(self, info: FieldInfo) -> tuple[list[WrittenFile], dict[str, Any]]:
        source = self.pipe.source
        rel = layout.field_file(info.path, info.type)
        opener = functools.partial(source.open_file_set, self.run, info)
        written = await self._download(opener, functools.partial(_fixed, rel), info.path)
        return [written], {}

    async def _images(self, info: FieldInfo) -> tuple[list[WrittenFile], dict[str, Any]]:
        source, gate = self.pipe.source, self.pipe.gate
        total, items = await gate.call(source.image_page, self.run, info, 0, IMAGE_PAGE)
        while len(items) < total:
            _, more = await gate.call(source.image_page, self.run, info, len(items), IMAGE_PAGE)
            if not more:
                break  # the server lists no metadata; the images themselves still come by index
            items.extend(more)
        by_index = {item.index: item for item in items}
        written: list[WrittenFile | None] = [None] * total

        def rel_for(index: int) -> Callable[[Download], PurePosixPath]:
            def rel(download: Download) -> PurePosixPath:
                subtype = (download.content_type or "application/octet-stream").split(";")[0].split("/")[-1]
                return layout.image_file(info.path, index, subtype.strip() or "bin")

            return rel

        async def one(index: int) -> None:
            opener = functools.partial(source.open_image, self.run, info, index)
            written[index] = await self._download(opener, rel_for(index), f"{info.path}[{index}]")

        async with anyio.create_task_group() as tg:
            for index in range(total):
                tg.start_soon(one, index)
        files = [w for w in written if w is not None]
        index_doc = [
            {
                "index": i,
                "file": PurePosixPath(files[i].path).name,
                "step": by_index[i].step if i in by_index else None,
                "timestamp": values.iso_from_ms(by_index[i].timestamp_ms)  # type: ignore[arg-type]
                if i in by_index and by_index[i].timestamp_ms is not None
                else None,
                "name": by_index[i].name if i in by_index else None,
                "description": by_index[i].description if i in by_index else None,
            }
            for i in range(total)
        ]
        index_file = await write_file(
            self.root, layout.image_index(info.path), values.dumps(index_doc).encode(), self.pipe._count_bytes
        )
        return [*files, index_file], {"count": total}

    async def _artifact(self, info: FieldInfo) -> tuple[list[WrittenFile], dict[str, Any]]:
        source, gate = self.pipe.source, self.pipe.gate
        files = await gate.call(source.list_artifact_files, self.project, info.value)
        listing = {
            "hash": info.value,
            "files": [
                {"path": f.path, "hash": f.hash, "type": f.type, "size": f.size, "metadata": f.metadata}
                for f in files
            ],
        }
        rel = layout.field_file(info.path, info.type)
        written = [await write_file(self.root, rel, values.dumps(listing).encode(), self.pipe._count_bytes)]
        if self.pipe.download_artifacts:
            for f in files:
                target = layout.artifact_file(info.path, f.path)
                opener = functools.partial(source.open_artifact_file, f)
                rel_for: Callable[[Download], PurePosixPath] = functools.partial(_fixed, target)
                written.append(await self._download(opener, rel_for, f"{info.path}:{f.path}"))
        return written, {"hash": info.value, "downloaded": self.pipe.download_artifacts}


def _fixed(rel: PurePosixPath, _: Download) -> PurePosixPath:
    """A file name that does not depend on the answer."""
    return rel
