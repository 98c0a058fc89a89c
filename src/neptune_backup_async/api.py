"""The embeddable entry point: ``await backup(...)`` inside any running event loop.

It installs no logging handlers and prints nothing. Cancelling it stops at once: every
wait (backoff, ``Retry-After``, the start-up connect) is in async code, so no request is
sent after the cancel returns; every file already under its final name is complete, and
the report written on the way out says the backup was interrupted. Every error it raises
is one :class:`~.errors.BackupError`, never an exception group.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import os
import re
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, ParamSpec, TypeVar

import anyio

from .disk.files import remove_temporaries, tagged_temporaries, temp_tag, write_file
from .disk.lock import Lock
from .disk.place import Place
from .domain import PageRequest, ProjectInfo
from .engine.assembly import build_pipeline, connect, one_error, resolve_token
from .engine.limiter import Limits
from .engine.paging import IncompleteListing, KeysetPager
from .engine.pipeline import Pipeline
from .engine.retry import Retrier
from .errors import DestinationError, HttpStatusError, ProjectNotFoundError, UsageError, exit_code_of
from .format import layout, values
from .format.report import CHECKING_PROJECTS, BackupReport, Progress
from .format.reports import finished_time
from .processes.pool import ProcessPool
from .processes.shares import shares as pool_shares
from .remote.http import LOST_AFTER, RetryPolicy
from .remote.source import Source
from .selection import Selection
from .settings import CONCURRENCY, BackupSettings

log = logging.getLogger("neptune_backup_async")
PROJECTS_PAGE = 100  # projects asked for at once; a server may hand back fewer


def parse_projects(projects: Sequence[str] | str) -> list[str] | None:
    """Project names from ``ws/a,ws/b`` or a list; None means every project the token can see."""
    names = [p.strip() for p in (projects.split(",") if isinstance(projects, str) else projects) if p.strip()]
    if names == ["all"]:
        return None
    if not names:
        raise UsageError("No project given. Name them as WORKSPACE/PROJECT, comma-separated, or say 'all'.")
    bad = [n for n in names if n.count("/") != 1 or n.startswith("/") or n.endswith("/")]
    if bad:
        raise UsageError(f"Project names must look like WORKSPACE/PROJECT; got {', '.join(map(repr, bad))}.")
    return list(dict.fromkeys(names))


def prepare_destination(output: Path) -> Path:
    """Create the destination and prove it is writable before any request is made."""
    try:
        output.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output, prefix=".write-test-"):
            pass
    except OSError as e:
        raise DestinationError(
            f"Cannot write to {output} ({e.strerror}). Choose another --output or fix its permissions."
        ) from None
    return output.resolve()


P = ParamSpec("P")
R = TypeVar("R")


def one_error_only(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Make ``fn`` raise one BackupError, not a task group's bundle (see :func:`one_error`)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except BaseException as e:
            error = one_error(e)
            if error is e:
                raise
            raise error from error.__cause__

    return wrapper


async def backup(
    projects: Sequence[str] | str,
    output: str | os.PathLike[str],
    *,
    api_token: str | None = None,
    concurrency: int = CONCURRENCY,
    download_artifacts: bool = False,
    full: bool = False,
    selection: Selection | None = None,
    dry_run: bool = False,
    progress: Callable[[Progress], None] | None = None,
    source: Source | None = None,
    lost_server_after: float = LOST_AFTER,
    s3_endpoint_url: str | None = None,
    processes: int = 1,
    work_here: bool = False,
    retry: RetryPolicy | None = None,
    allow_insecure_http: bool = False,
) -> BackupReport:
    """Back up ``projects`` (names, a comma-separated string, or ``"all"``) into ``output``.

    A backup into a folder that holds an earlier one is incremental: unchanged objects cost
    no request, and changed ones fetch only the fields that changed; ``full=True`` fetches
    everything again. ``selection`` narrows what is backed up: objects (runs, models, the
    project's own fields), run filters, field filters and a shard. ``dry_run=True`` lists
    what would be fetched, with sizes where Neptune gives them, and writes nothing.
    The token comes from ``api_token`` or ``NEPTUNE_API_TOKEN``. ``source`` replaces the
    Neptune client with any other :class:`~.source.Source`. ``s3_endpoint_url`` points the
    download of S3 artifacts at an S3-compatible store (else ``S3_ENDPOINT_URL``, else
    boto3's own configuration). Returns the report, which is also saved in ``output`` as
    ``backup-report.json`` (``backup-report.shard-K-of-N.json`` for a shard). When
    connections fail and no request has succeeded for ``lost_server_after`` seconds, the
    backup stops with :class:`~.errors.ServerLostError`; the same call resumes it. Tokens go
    to Neptune over https, or over plain http only to this machine (localhost, 127.0.0.0/8,
    ::1), unless ``allow_insecure_http=True``; no environment variable is set for it.
    ``retry``, for tests and embedding, replaces the retry budgets and backoffs (its own
    ``lost_after`` then stands for ``lost_server_after``).

    ``processes=N`` (N > 1) backs up in N worker processes (fewer when ``concurrency`` cannot
    give each one request besides the one this process keeps for listing): this process
    lists, and the workers save the objects, with ``concurrency`` still the total of
    requests in flight (at most :data:`~.settings.MAX_CONCURRENCY`, 256: more is cut to it).
    The CPU-heavy work then leaves the caller's process entirely. It
    is ignored (one process) for a dry run and with an injected ``source``, which cannot
    cross processes. The default, 1, backs up in this process. With ``work_here=True`` this
    process backs up too, as one of the ``processes`` (the command line does this): one
    Neptune client fewer to start, at the cost of CPU-heavy work in the caller's process.

    One backup writes into ``output`` at a time: it holds a lock there for its life (see
    :func:`backup_lock`), and :class:`~.errors.DestinationLockedError` names the holder of one
    already held. The report's ``exit_code`` is that of what stopped the backup, if anything did
    (130 for a cancel).

    Raises one :class:`~.errors.BackupError` (never an exception group) for what stops the
    backup: bad input (usage, token, project, destination), a lost server, a ``progress``
    callback that raised (:class:`~.errors.ProgressCallbackError`, the callback's exception
    as ``__cause__``), or a bug (:class:`~.errors.UnexpectedError`). Failures of single
    fields or runs are in the report instead.
    """
    settings = BackupSettings(
        Path(output),
        concurrency=concurrency,
        download_artifacts=download_artifacts,
        full=full,
        selection=selection or Selection(),
        dry_run=dry_run,
        retry=retry or RetryPolicy(lost_after=lost_server_after),
        s3_endpoint_url=s3_endpoint_url,
        processes=processes,
        work_here=work_here,
        allow_insecure_http=allow_insecure_http,
    )
    return await run_backup(projects, settings, api_token=api_token, progress=progress, source=source)


@one_error_only
async def run_backup(
    projects: Sequence[str] | str,
    settings: BackupSettings,
    *,
    api_token: str | None = None,
    progress: Callable[[Progress], None] | None = None,
    source: Source | None = None,
) -> BackupReport:
    """:func:`backup`, with its options already in ``settings`` (as the command line builds them)."""
    names = parse_projects(projects)
    selection, dry_run = settings.selection, settings.dry_run
    label = selection.shard_label
    # A dry run reads what an earlier backup left there, and never creates the folder.
    dest = settings.destination if dry_run else prepare_destination(settings.destination)
    # Held until the end: a second backup into DEST fails at once, naming this one.
    lock = None if dry_run else await anyio.to_thread.run_sync(backup_lock, dest, selection)
    with tagged_temporaries(f"{label}-" if label else ""), lock or contextlib.nullcontext():
        here, shares = (
            (settings.concurrency, [])
            if dry_run or source is not None
            else pool_shares(settings.processes, settings.concurrency, work_here=settings.work_here)
        )
        limits = Limits(here, settings.concurrency)
        if not dry_run:
            await anyio.to_thread.run_sync(remove_temporaries, dest, temp_tag.get(), limiter=limits.disk)
        report = BackupReport(
            destination=str(dest),
            started_at=dt.datetime.now(dt.timezone.utc),
            dry_run=dry_run,
            selection=describe(selection),
            previous_backup=finished_time(dest / layout.report_name(label)),
        )
        pool: ProcessPool | None = None
        if shares:
            pool = ProcessPool(settings, shares, resolve_token(api_token), limits.disk)
        started = False
        try:
            # The workers connect while this process connects and lists.
            async with pool.running() if pool else contextlib.nullcontext():
                own_source = source is None
                if source is None:
                    source = await connect(
                        api_token, limits.gate.threads, allow_insecure_http=settings.allow_insecure_http
                    )
                try:
                    with build_pipeline(
                        source, settings, limits, report=report, on_progress=progress
                    ) as pipeline:
                        report.stage = CHECKING_PROJECTS
                        pipeline.recorder.changed()
                        infos = await _resolve_projects(pipeline, source, names)
                        await _check_query(pipeline, source, infos, selection)
                        started = True
                        await pipeline.run(infos, pool)
                finally:
                    if own_source:
                        source.close()
        except BaseException as e:
            report.interrupted = started
            report.stopped_with = exit_code_of(e)  # the report's exit code is the process's
            raise
        finally:
            if started:
                report.finished_at = dt.datetime.now(dt.timezone.utc)
                name = layout.report_name(label)
                with anyio.CancelScope(shield=True):
                    document = values.dumps(report.to_json()).encode("utf-8")
                    try:
                        if not dry_run:
                            await write_file(Place(dest), PurePosixPath(name), document, limiter=limits.disk)
                    except (OSError, DestinationError) as e:  # e.g. the disk is full: keep the real error
                        log.error("could not write %s: %s", name, e)
        return report


def backup_lock(dest: Path, selection: Selection) -> Lock:
    """Blocking: the lock of a backup into ``dest`` (see :mod:`.disk.lock`). A backup without a
    shard excludes every other; the shards of one count run side by side, one process each."""
    shard = selection.shard
    if shard is None:
        return Lock.take(dest, "backup", "backup", lambda other: other.startswith("backup"))
    other_counts = re.compile(rf"backup\.shard-[0-9]+-of-(?!{shard.count}$)[0-9]+")
    return Lock.take(
        dest,
        f"backup.{shard.label}",
        f"backup --shard {shard}",
        lambda other: other == "backup" or other_counts.fullmatch(other) is not None,
    )


def describe(selection: Selection) -> dict[str, Any]:
    """What narrowed a backup, for its report; empty when nothing did."""
    out: dict[str, Any] = {}
    if selection.objects != Selection().objects:
        out["objects"] = sorted(selection.objects)
    if selection.runs.narrows or selection.runs.include_trashed:
        out["runs_query"] = selection.runs.nql()
    if selection.fields:
        out["fields"] = selection.fields.to_json()
    if selection.shard is not None:
        out["shard"] = str(selection.shard)
    return out


async def _project_names(retrier: Retrier, source: Source) -> tuple[list[str], IncompleteListing | None]:
    """Every project the token may read, by name; with why the list is incomplete, if it is."""
    pager = KeysetPager[str]("listing projects", "projects", key=str, cap=None, page=PROJECTS_PAGE)
    names: list[str] = []
    try:
        while (request := pager.next_request()) is not None:
            page = await retrier.call(
                source.projects_page, request.offset, request.limit, what="listing projects"
            )
            names += pager.feed([(name, None) for name in page.entries], page.matching)
    except IncompleteListing as e:
        return sorted(names), e
    return sorted(names), None


async def _resolve_projects(pipeline: Pipeline, source: Source, names: list[str] | None) -> list[ProjectInfo]:
    retrier = pipeline.retrier
    if names is None:
        names, incomplete = await _project_names(retrier, source)
        if incomplete is not None:  # back up those listed, and fail the backup
            pipeline.recorder.fail("all", None, None, f"listing projects failed: {incomplete}")
    infos = []
    for name in names:  # every name is checked before anything is fetched
        try:
            infos.append(await retrier.call(source.get_project, name, what=f"project {name}"))
        except HttpStatusError as e:
            if e.status not in (403, 404):
                raise
            raise ProjectNotFoundError(
                f"Project {name!r} does not exist or this API token may not read it."
                " Run `neptune-backup list-projects` to see the projects you can back up."
            ) from None
    return infos


async def _check_query(
    pipeline: Pipeline, source: Source, infos: list[ProjectInfo], selection: Selection
) -> None:
    """Have the server check ``--query`` (one listing of no runs) before anything is fetched, so
    that a query it refuses is a usage error, not a failed listing in every project."""
    query = selection.runs.query
    if not (query and query.strip() and infos and "runs" in selection.objects):
        return
    request = PageRequest(after=None, offset=0, limit=0)
    try:
        await pipeline.retrier.call(
            source.objects_page, infos[0], "run", selection.runs.nql(), request, what="checking the query"
        )
    except HttpStatusError as e:
        if e.status not in (400, 422):
            raise
        raise UsageError(
            f"Neptune refused the query {query.strip()!r} (HTTP {e.status}). Write --query as you would in"
            " the runs table of Neptune's web app."
        ) from None


@one_error_only
async def list_projects(
    api_token: str | None = None, *, lost_server_after: float = LOST_AFTER, allow_insecure_http: bool = False
) -> list[str]:
    limits = Limits(1, 1)
    source = await connect(api_token, limits.gate.threads, allow_insecure_http=allow_insecure_http)
    try:
        retrier = Retrier(limits.gate, RetryPolicy(lost_after=lost_server_after))
        names, incomplete = await _project_names(retrier, source)
        if incomplete is not None:
            raise incomplete
        return names
    finally:
        source.close()
