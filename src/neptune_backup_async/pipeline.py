"""The backup pipeline: a producer lists runs into a bounded stream; workers save their fields.

Concurrency has one bound, :class:`Gate`: a ``CapacityLimiter`` of ``concurrency`` tokens,
held for each Neptune request for as long as it is in flight (a streamed download holds
one token from its first byte to its last). Parallelism is per field, so one run with
many fields uses the whole bound, and many small runs do too.

Backups are incremental: a run whose complete manifest carries the modification time the
runs table shows is skipped without a request, and within a changed run :mod:`.resume`
decides field by field what to reuse, extend or fetch.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import traceback
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import aiofiles
import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from . import layout, values
from .errors import AuthenticationError, BackupError, DestinationError, FetchError
from .manifest import FieldRecord, Manifest
from .report import BACKING_UP, BackupReport, Note, Progress, ProjectSummary, listing
from .resume import Action, Previous, decide, facts, journal_line, load_previous
from .retry import RetryPolicy, TransientError
from .selection import RunFilter, Selection
from .source import Download, FieldInfo, FieldType, ObjectRef, ProjectInfo, Source
from .store import AtomicFile, WrittenFile, destination_error, write_file

log = logging.getLogger("neptune_backup_async")
T = TypeVar("T")
IMAGE_PAGE = 1_000
Saved = tuple[list[WrittenFile], dict[str, Any]]  # the files a field was saved to, and facts for its record


class Gate:
    """The one knob: at most ``concurrency`` Neptune requests in flight, fewer while the server pushes back.

    The first news of a 429 halves the bound at once; 429s during the next window of
    completed requests (as many as the bound) answer requests sent before the cut, so they
    do not cut again. Each later window without one adds a token back, up to
    ``concurrency`` (additive increase, multiplicative decrease, as TCP does once per round
    trip), so the backup settles near the rate the server allows instead of hammering it.
    """

    def __init__(self, concurrency: int, congestion: Callable[[], int] = lambda: 0) -> None:
        self.concurrency = concurrency
        self.requests = anyio.CapacityLimiter(concurrency)
        # Threads run only inside a request token, so this never binds; it exists because
        # anyio's default thread limiter (40) would cap a larger --concurrency.
        self._threads = anyio.CapacityLimiter(concurrency)
        self._congestion = congestion
        self._seen = 0
        self._window = 0  # requests completed in this window (a window is as long as the bound)
        self._grace = False  # this window follows a cut: its 429s are old news
        self._lowest = concurrency

    @property
    def limit(self) -> int:
        return int(self.requests.total_tokens)

    def observe(self) -> None:
        """Count a completed request: halve the bound on news of a 429, grow it after a quiet window."""
        seen = self._congestion()
        news = seen > self._seen
        self._seen = max(seen, self._seen)
        self._window += 1
        if news and not self._grace:
            self._resize(max(1, self.limit // 2))
            self._grace, self._window = True, 0
        elif self._window >= self.limit:
            if not self._grace:
                self._resize(min(self.concurrency, self.limit + 1))
            self._grace, self._window = False, 0

    def _resize(self, limit: int) -> None:
        if limit != self.limit:
            if limit < self._lowest:  # only new lows: the log sums up 429s, not each change
                self._lowest = limit
                log.info("requests in flight: at most %d", limit)
            self.requests.total_tokens = limit

    async def thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking ``fn`` in a worker thread; the caller must hold a request token."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._threads, abandon_on_cancel=True)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """One Neptune request, in a thread, under the bound."""
        async with self.requests:
            try:
                return await self.thread(fn, *args)
            finally:
                self.observe()


@dataclass(frozen=True)
class Job:
    project: ProjectInfo
    ref: ObjectRef


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
    ) -> None:
        self.source = source
        self.dest = destination
        self.concurrency = concurrency
        self.download_artifacts = download_artifacts
        self.full = full
        self.selection = selection or Selection()
        self.dry_run = dry_run
        self.report = report
        self.gate = Gate(concurrency, source.congestion)
        self.retry = retry or RetryPolicy()
        self._on_progress = on_progress

    # -- progress -----------------------------------------------------------------------------

    def changed(self) -> None:
        if self._on_progress is not None:
            self._on_progress(self.report.progress())

    def count_bytes(self, n: int) -> None:
        self.report.bytes_written += n
        self.changed()

    def fail(self, project: str, run: str | None, field: str | None, reason: str) -> None:
        self.report.failures.append(Note(project, run, field, reason))
        log.error("%s/%s/%s: %s", project, run or "-", field or "-", reason)

    def notice(self, project: str, run: str | None, field: str | None, reason: str) -> None:
        self.report.notices.append(Note(project, run, field, reason))
        log.warning("%s/%s/%s: %s", project, run or "-", field or "-", reason)

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
                log.info("%s: listed %s", project.qualified_name, summary.found_words())
                self.changed()
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
        pages = self.source.iter_objects(project, kind, query)
        listed: set[str] = set()
        try:
            while (page := await self.gate.call(next, pages, None)) is not None:
                # A version goes with its model (to its shard); the whole page counts at once, for progress.
                owned = [
                    ref
                    for ref in page
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
            with contextlib.suppress(FileNotFoundError):
                for path in sorted(folder.iterdir()):
                    manifest = path / layout.MANIFEST
                    if path.name.startswith("_") or path.name in folders or not manifest.is_file():
                        continue
                    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                        # An ordinary id is its folder's name; only escaped ones need the manifest.
                        plain = layout.object_segment(path.name) == path.name and "~" not in path.name
                        sys_id = path.name if plain else json.loads(manifest.read_text("utf-8"))["sys_id"]
                        if self.selection.owns(sys_id):
                            out.append(path.name)
            return out

        for name in await anyio.to_thread.run_sync(gone):
            reason = "no longer listed by Neptune (deleted or trashed); its copy is kept"
            self.notice(project.qualified_name, name, None, reason)

    async def _work(self, receive: MemoryObjectReceiveStream[Job]) -> None:
        async with receive:
            async for job in receive:
                counts = self.report.projects[job.project.qualified_name].counts[job.ref.kind]
                outcome = await self._backup_object(job.project, job.ref)
                if outcome is None:
                    counts.failed += 1
                else:
                    counts.done += 1
                    counts.unchanged += outcome
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
        previous = await anyio.to_thread.run_sync(load_previous, root)
        if (
            previous is not None
            and not self.full
            and previous.unchanged_since(run.modification_time, field_filter.to_json())
        ):
            return True
        try:
            listed = await self.gate.call(self.source.get_fields, project, run)
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
        saver = _RunSaver(
            self,
            project,
            run,
            root,
            manifest,
            previous,
            layout.RunLayout((f.path for f in fields if not f.type.is_simple), reserved),
        )
        try:
            async with anyio.create_task_group() as tg:
                for info in fields:
                    await saver.start(tg, info)
            await saver.finish({info.path for info in listed}, {info.path for info in fields})
        finally:
            await saver.close()
        for path in manifest.failed_fields:
            self.fail(where, run.sys_id, path, manifest.fields[path].error or "failed")
        return None if manifest.failed_fields else False

    def _plan(self, project: ProjectInfo, fields: list[FieldInfo], previous: Previous | None) -> None:
        """A dry run: tally the fields a backup would fetch, by type, with the bytes the listing gives."""
        planned = self.report.projects[project.qualified_name].planned
        for info in fields:
            if not info.type.is_simple:
                action, _ = decide(info, previous, full=self.full, download_artifacts=self.download_artifacts)
                if action is Action.REUSE:
                    continue
            tally = planned.setdefault(info.type.value, [0, 0])
            tally[0] += 1
            tally[1] += info.size or 0  # the listing gives sizes of files and file sets only


class _RunSaver:
    """Saves the fields of one run into its folder and keeps its manifest and journal."""

    def __init__(
        self,
        pipe: Pipeline,
        project: ProjectInfo,
        run: ObjectRef,
        root: Path,
        manifest: Manifest,
        previous: Previous | None,
        paths: layout.RunLayout,
    ) -> None:
        self.pipe = pipe
        self.paths = paths
        self.project = project
        self.run = run
        self.root = root
        self.manifest = manifest
        self.previous = previous
        self.simple: dict[str, Any] = {}
        self._journal_lock = anyio.Lock()
        self._journal_file: aiofiles.threadpool.text.AsyncTextIOWrapper | None = None

    # -- dispatch -----------------------------------------------------------------------------

    async def start(self, tg: TaskGroup, info: FieldInfo) -> None:
        if info.type.is_simple:
            self.simple[info.path] = values.simple_value(info.type, info.value)
            self.manifest.fields[info.path] = FieldRecord(info.type.value, "ok", [layout.SIMPLE_METADATA])
            self.pipe.report.fields_done += 1
            return
        if info.type is FieldType.ARTIFACT:
            self.simple[info.path] = info.value  # the hash, as the seed script kept it
        action, prev = decide(
            info, self.previous, full=self.pipe.full, download_artifacts=self.pipe.download_artifacts
        )
        if action is Action.REUSE:
            assert prev is not None and self.previous is not None
            extra = {k: v for k, v in prev.extra.items() if k not in _KEPT_MARKS}  # it is current again
            self.manifest.fields[info.path] = FieldRecord(
                prev.type, prev.status, prev.files, prev.error, extra
            )
            for rel in prev.files:
                self.manifest.add_file(self.previous.manifest.files[rel])
            self.pipe.report.fields_done += 1
            return
        savers: dict[FieldType, Callable[[FieldInfo, FieldRecord | None], Awaitable[Saved]]] = {
            FieldType.FLOAT_SERIES: self._series,
            FieldType.STRING_SERIES: self._series,
            FieldType.FILE: self._file,
            FieldType.FILE_SET: self._file_set,
            FieldType.IMAGE_SERIES: self._images,
            FieldType.ARTIFACT: self._artifact,
        }
        tg.start_soon(self._guarded, savers[info.type], info, prev if action is Action.EXTEND else None)

    async def _guarded(
        self,
        saver: Callable[[FieldInfo, FieldRecord | None], Awaitable[Saved]],
        info: FieldInfo,
        prev: FieldRecord | None,
    ) -> None:
        """Save one field; a failure is recorded against it and the run goes on."""
        try:
            written, extra = await saver(info, prev)
        except (AuthenticationError, DestinationError):
            raise  # nothing else can succeed either
        except (BackupError, TransientError, OSError) as e:
            self._failed(info, str(e))
            return
        except (KeyError, TypeError, ValueError) as e:  # the answer lacks what the API promises
            log.debug("%s/%s\n%s", self.run.sys_id, info.path, traceback.format_exc())
            self._failed(info, f"malformed answer from Neptune ({type(e).__name__}: {e})")
            return
        except Exception as e:  # a bug must not take the run down
            log.debug("%s/%s\n%s", self.run.sys_id, info.path, traceback.format_exc())
            self._failed(info, f"unexpected {type(e).__name__}: {e}")
            return
        extra = {**facts(info, self.pipe.download_artifacts), **extra}
        record = FieldRecord(info.type.value, "ok", [w.path for w in written], extra=extra)
        for w in written:
            self.manifest.add_file(w)
        self.manifest.fields[info.path] = record
        self.pipe.report.fields_done += 1
        await self._journal(journal_line(info.path, record, written))

    def _failed(self, info: FieldInfo, reason: str) -> None:
        self.manifest.fields[info.path] = FieldRecord(info.type.value, "failed", error=reason)
        self.pipe.report.fields_failed += 1

    async def _journal(self, line: str) -> None:
        """Note a saved field, so an interrupted backup resumes without fetching it again.

        Flushed to the OS, so it survives the process being killed, but not fsynced: after a
        power cut a lost line only means fetching that field again, while the files it
        names were fsynced before they were renamed into place.
        """
        async with self._journal_lock:
            try:
                if self._journal_file is None:
                    self._journal_file = await aiofiles.open(
                        self.root / layout.JOURNAL, "a", encoding="utf-8"
                    )
                await self._journal_file.write(line)
                await self._journal_file.flush()
            except OSError as e:
                raise destination_error(e, self.root) or e from None

    async def close(self) -> None:
        if self._journal_file is not None:
            with anyio.CancelScope(shield=True):
                await self._journal_file.close()
            self._journal_file = None

    async def finish(self, listed: set[str], kept: set[str]) -> None:
        """Write simple_metadata.json and then the manifest; the run is complete once both are in place.

        ``listed``: every field Neptune has; ``kept``: those the field filter let through.
        """
        if self.previous is not None:
            await self._keep_old(listed, kept)
        if self.simple:
            data = values.dumps(self.simple).encode("utf-8")
            written = await write_file(
                self.root, PurePosixPath(layout.SIMPLE_METADATA), data, self.pipe.count_bytes
            )
            self.manifest.add_file(written)
        self.manifest.complete = not self.manifest.failed_fields
        # Compact, unlike the documents users read: json's C encoder only serves indent=None.
        manifest = json.dumps(self.manifest.to_json(), sort_keys=True, ensure_ascii=False, allow_nan=False)
        await write_file(self.root, PurePosixPath(layout.MANIFEST), manifest.encode())
        await anyio.to_thread.run_sync(self._tidy)

    async def _keep_old(self, listed: set[str], kept: set[str]) -> None:
        """Fields gone from Neptune, or left out by the field filter, keep their earlier copy
        and their record, marked as such: a narrower filter never deletes what was saved."""
        assert self.previous is not None
        old = self.previous.manifest
        gone = sorted(p for p, r in old.fields.items() if p not in kept and r.status == "ok")
        old_simple: dict[str, Any] = {}
        if any(old.fields[p].files == [layout.SIMPLE_METADATA] for p in gone):
            with contextlib.suppress(OSError, ValueError):
                text = await anyio.Path(self.root / layout.SIMPLE_METADATA).read_text(encoding="utf-8")
                old_simple = json.loads(text)
        for path in gone:
            record = old.fields[path]
            if record.files == [layout.SIMPLE_METADATA]:
                if path not in old_simple:
                    continue
                self.simple[path] = old_simple[path]
            else:
                for rel in record.files:
                    self.manifest.add_file(old.files[rel])
            mark = "excluded" if path in listed else "removed_upstream"
            extra = {k: v for k, v in record.extra.items() if k not in _KEPT_MARKS}
            self.manifest.fields[path] = FieldRecord(
                record.type, "ok", record.files, extra={**extra, mark: True}
            )
            if mark == "removed_upstream" and not record.extra.get(mark):
                self.pipe.notice(
                    self.project.qualified_name,
                    self.run.sys_id,
                    path,
                    "no longer in Neptune; its copy is kept",
                )

    def _tidy(self) -> None:
        """Drop the journal, and files of the old backup that no field refers to any more."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.root / layout.JOURNAL)
        if self.previous is not None:
            for rel in set(self.previous.manifest.files) - set(self.manifest.files):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.root / rel)

    # -- field savers -------------------------------------------------------------------------

    async def _series(self, info: FieldInfo, prev: FieldRecord | None) -> Saved:
        source, gate = self.pipe.source, self.pipe.gate
        formatter = values.SeriesFormatter(info.type)
        rel = self.paths.field_file(info.path, info.type)
        limit = source.series_page_limit
        async with AtomicFile(self.root, rel, self.pipe.count_bytes) as out:
            rows = await self._copy_previous(out, prev) if prev is not None else 0
            if rows == 0:
                await out.write(values.SERIES_HEADER.encode())

            def fetch(offset: int) -> tuple[int, int, bytes]:
                # In the worker thread: the page is parsed, formatted and freed there, and the
                # event loop stays free.
                page = source.series_page(self.run, info, offset, limit)
                return page.total, len(page.points), formatter.rows(page.points).encode("utf-8")

            while True:
                total, count, text = await gate.call(fetch, rows)
                if count == 0 and rows < total:
                    raise FetchError(f"the server promised {total} points but sent {rows}")
                await out.write(text)
                # Dropped now, not when the next page replaces it: a run's series wait for
                # their next request together, and each would otherwise keep a page of CSV.
                del text
                rows += count
                if count == 0 or rows >= total:
                    break
        assert out.result is not None
        return [out.result], {"rows": rows}

    async def _copy_previous(self, out: AtomicFile, prev: FieldRecord) -> int:
        """Copy the old CSV into ``out`` if it still hashes to its recorded sha256; return its rows (0 if not)."""
        assert self.previous is not None
        recorded = self.previous.manifest.files[prev.files[0]]
        async with aiofiles.open(self.root / recorded.path, "rb") as f:
            while chunk := await f.read(1024 * 1024):
                await out.write(chunk, count=False)
        if out.size == recorded.size and out.sha256 == recorded.sha256:
            return int(prev.extra["rows"])
        await out.reset()  # damaged since: fetch the whole series
        return 0

    async def _download(
        self,
        opener: Callable[[], Download],
        rel_for: Callable[[Download], PurePosixPath],
        what: str,
        check: Callable[[Path], str | None] | None = None,
    ) -> WrittenFile:
        """Stream one body to disk, holding one request token throughout; retried from scratch if cut."""
        gate, policy = self.pipe.gate, self.pipe.retry
        for attempt in range(policy.attempts):
            try:
                async with gate.requests:
                    try:
                        download = await gate.thread(opener)
                    finally:
                        gate.observe()
                    try:
                        async with AtomicFile(
                            self.root, rel_for(download), self.pipe.count_bytes, check
                        ) as out:
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

    async def _file(self, info: FieldInfo, prev: FieldRecord | None) -> Saved:
        rel = self.paths.field_file(info.path, info.type, info.ext)
        opener = functools.partial(self.pipe.source.open_file, self.run, info)
        return [await self._download(opener, functools.partial(_fixed, rel), info.path)], {}

    async def _file_set(self, info: FieldInfo, prev: FieldRecord | None) -> Saved:
        rel = self.paths.field_file(info.path, info.type)
        opener = functools.partial(self.pipe.source.open_file_set, self.run, info)
        return [await self._download(opener, functools.partial(_fixed, rel), info.path, _not_a_zip)], {}

    async def _images(self, info: FieldInfo, prev: FieldRecord | None) -> Saved:
        source, gate = self.pipe.source, self.pipe.gate
        total, items = await gate.call(source.image_page, self.run, info, 0, IMAGE_PAGE)
        while len(items) < total:
            _, more = await gate.call(source.image_page, self.run, info, len(items), IMAGE_PAGE)
            if not more:
                break  # the server lists no metadata; the images themselves still come by index
            items.extend(more)
        by_index = {item.index: item for item in items}
        written: dict[int, WrittenFile] = {}
        if prev is not None and self.previous is not None:  # images are append-only: keep the old ones
            for rel in prev.files:
                stem = PurePosixPath(rel).stem
                if stem.isdigit() and rel in self.previous.intact and int(stem) < total:
                    written[int(stem)] = self.previous.manifest.files[rel]

        def rel_for(index: int, download: Download) -> PurePosixPath:
            subtype = (download.content_type or "application/octet-stream").split(";")[0].split("/")[-1]
            return self.paths.image_file(info.path, index, subtype.strip() or "bin")

        async def one(index: int) -> None:
            opener = functools.partial(source.open_image, self.run, info, index)
            written[index] = await self._download(
                opener, functools.partial(rel_for, index), f"{info.path}[{index}]"
            )

        async with anyio.create_task_group() as tg:
            for index in range(total):
                if index not in written:
                    tg.start_soon(one, index)
        index_doc = []
        for i in range(total):
            item = by_index.get(i)
            stamp = item.timestamp_ms if item else None
            index_doc.append(
                {
                    "index": i,
                    "file": PurePosixPath(written[i].path).name,
                    "step": item.step if item else None,
                    "timestamp": values.iso_from_ms(stamp) if stamp is not None else None,
                    "name": item.name if item else None,
                    "description": item.description if item else None,
                }
            )
        index_file = await write_file(
            self.root,
            self.paths.image_index(info.path),
            values.dumps(index_doc).encode(),
            self.pipe.count_bytes,
        )
        return [*(written[i] for i in range(total)), index_file], {"count": total}

    async def _artifact(self, info: FieldInfo, prev: FieldRecord | None) -> Saved:
        source, gate = self.pipe.source, self.pipe.gate
        files = await gate.call(source.list_artifact_files, self.project, info.value)
        listing = {
            "hash": info.value,
            "files": [
                {"path": f.path, "hash": f.hash, "type": f.type, "size": f.size, "metadata": f.metadata}
                for f in files
            ],
        }
        rel = self.paths.field_file(info.path, info.type)
        written = [await write_file(self.root, rel, values.dumps(listing).encode(), self.pipe.count_bytes)]
        if self.pipe.download_artifacts:
            for f in files:
                opener = functools.partial(source.open_artifact_file, f)
                target = functools.partial(_fixed, self.paths.artifact_file(info.path, f.path))
                written.append(await self._download(opener, target, f"{info.path}:{f.path}"))
        return written, {}


# What a kept earlier copy is marked with: left out by the field filter, or gone from Neptune.
_KEPT_MARKS = ("excluded", "removed_upstream")


def _not_a_zip(path: Path) -> str | None:
    if zipfile.is_zipfile(path):
        return None
    return "the file set download is not a zip archive"


def _fixed(rel: PurePosixPath, _: Download) -> PurePosixPath:
    """A file name that does not depend on the answer."""
    return rel
