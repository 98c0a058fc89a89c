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
import importlib
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
from .domain import ProjectInfo
from .engine.limiter import Gate
from .engine.pipeline import Pipeline
from .engine.retry import Retrier
from .errors import (
    AuthenticationError,
    BackupError,
    DestinationError,
    HttpStatusError,
    ProjectNotFoundError,
    UnexpectedError,
    UsageError,
    exit_code_of,
    leading_error,
)
from .format import layout, values
from .format.report import CHECKING_PROJECTS, BackupReport, Progress
from .format.reports import finished_time
from .processes.messages import Start
from .processes.pool import ProcessPool
from .processes.pool import shares as pool_shares
from .remote.http import LOST_AFTER, RetryPolicy
from .remote.source import Source
from .selection import Selection
from .settings import TOKEN_ENV

log = logging.getLogger("neptune_backup_async")


def resolve_token(api_token: str | None) -> str:
    token = (api_token if api_token is not None else os.environ.get(TOKEN_ENV, "")).strip()
    if not token:
        raise AuthenticationError(
            f"No Neptune API token. Set {TOKEN_ENV}, or pass --api-token-file with a file that holds it."
        )
    return token


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


async def connect(api_token: str | None, concurrency: int) -> Source:
    """Check the server and the token (cancellable), then start the Neptune client once, before any fan-out."""
    token = resolve_token(api_token)
    # Imported in a thread: the client's import takes most of a second, which would stall an
    # embedding service's event loop the first time.
    neptune_source = await anyio.to_thread.run_sync(
        importlib.import_module, f"{__package__}.remote.neptune.client"
    )
    source: Source = await neptune_source.connect(token, concurrency)
    return source


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


@one_error_only
async def backup(
    projects: Sequence[str] | str,
    output: str | os.PathLike[str],
    *,
    api_token: str | None = None,
    concurrency: int = 8,
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
    backup stops with :class:`~.errors.ServerLostError`; the same call resumes it.

    ``processes=N`` (N > 1) backs up in N worker processes (fewer when ``concurrency`` cannot
    give each one request besides the one this process keeps for listing): this process
    lists, and the workers save the objects, with ``concurrency`` still the total of
    requests in flight. The CPU-heavy work then leaves the caller's process entirely. It
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
    if not isinstance(concurrency, int) or concurrency < 1:
        raise UsageError(f"--concurrency must be a whole number of at least 1; got {concurrency!r}.")
    if not isinstance(processes, int) or processes < 1:
        raise UsageError(f"--processes must be a whole number of at least 1; got {processes!r}.")
    if not lost_server_after > 0:
        raise UsageError(
            f"--lost-server-after must be a number of seconds above 0; got {lost_server_after!r}."
        )
    names = parse_projects(projects)
    selection = selection or Selection()
    label = selection.shard_label
    # A dry run reads what an earlier backup left there, and never creates the folder.
    dest = Path(output).resolve() if dry_run else prepare_destination(Path(output))
    # Held until the end: a second backup into DEST fails at once, naming this one.
    lock = None if dry_run else await anyio.to_thread.run_sync(backup_lock, dest, selection)
    with tagged_temporaries(f"{label}-" if label else ""), lock or contextlib.nullcontext():
        if not dry_run:
            await anyio.to_thread.run_sync(remove_temporaries, dest, temp_tag.get())
        report = BackupReport(
            destination=str(dest),
            started_at=dt.datetime.now(dt.timezone.utc),
            dry_run=dry_run,
            selection=describe(selection),
            previous_backup=finished_time(dest / layout.report_name(label)),
        )
        here, shares = (
            (concurrency, [])
            if dry_run or source is not None
            else pool_shares(processes, concurrency, work_here=work_here)
        )
        pool: ProcessPool | None = None
        if shares:
            settings = Start(
                dest,
                concurrency,
                download_artifacts,
                full,
                selection,
                RetryPolicy(lost_after=lost_server_after),
                s3_endpoint_url,
                temp_tag.get(),
                {
                    name: logging.getLogger(name).getEffectiveLevel()
                    for name in ("neptune_backup_async", "neptune")
                },
            )
            pool = ProcessPool(settings, shares, resolve_token(api_token), work_here=work_here)
        started = False
        try:
            # The workers connect while this process connects and lists.
            async with pool.running() if pool else contextlib.nullcontext():
                own_source = source is None
                if source is None:
                    source = await connect(api_token, here)
                try:
                    pipeline = Pipeline(
                        source,
                        dest,
                        concurrency=here,
                        download_artifacts=download_artifacts,
                        full=full,
                        selection=selection,
                        dry_run=dry_run,
                        report=report,
                        on_progress=progress,
                        retry=RetryPolicy(lost_after=lost_server_after),
                        s3_endpoint_url=s3_endpoint_url,
                    )
                    report.stage = CHECKING_PROJECTS
                    pipeline.changed()
                    infos = await _resolve_projects(pipeline.retrier, source, names)
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
                            await write_file(dest, PurePosixPath(name), document)
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


def one_error(e: BaseException) -> BaseException:
    """What to raise for ``e``: the BackupError that stands for it, a bug as an UnexpectedError;
    a cancel (or KeyboardInterrupt) as it is."""
    leading = leading_error(e)
    if isinstance(leading, BackupError) or not isinstance(leading, Exception):
        return leading
    unexpected = UnexpectedError(
        f"unexpected {type(leading).__name__}: {leading}. Please report it with the log file; finished"
        " runs are kept."
    )
    unexpected.__cause__ = leading
    return unexpected


async def _resolve_projects(retrier: Retrier, source: Source, names: list[str] | None) -> list[ProjectInfo]:
    if names is None:
        names = await retrier.call(source.list_projects, what="listing projects")
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


@one_error_only
async def list_projects(api_token: str | None = None, *, lost_server_after: float = LOST_AFTER) -> list[str]:
    source = await connect(api_token, 1)
    try:
        retrier = Retrier(Gate(1), RetryPolicy(lost_after=lost_server_after))
        return await retrier.call(source.list_projects, what="listing projects")
    finally:
        source.close()
