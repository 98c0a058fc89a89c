"""The embeddable entry point: ``await backup(...)`` inside any running event loop.

It installs no logging handlers and prints nothing. Cancelling it stops promptly: every
file already under its final name is complete, and the report written on the way out
says the backup was interrupted.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import anyio

from . import layout, values
from .errors import AuthenticationError, BackupError, DestinationError, UsageError
from .pipeline import Pipeline
from .report import CHECKING_PROJECTS, BackupReport, Progress, finished_time
from .retry import RetryPolicy
from .selection import Selection
from .source import ProjectInfo, Source
from .store import remove_temporaries, tagged_temporaries, temp_tag, write_file

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

TOKEN_ENV = "NEPTUNE_API_TOKEN"
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


async def connect(
    api_token: str | None, concurrency: int, on_retry: Callable[[str], None] | None = None
) -> Source:
    """Start the Neptune client once, in a thread, before any fan-out; ``on_retry`` hears of each retry."""
    from .neptune_source import NeptuneSource

    token = resolve_token(api_token)
    retry = RetryPolicy(on_retry=on_retry)
    return await anyio.to_thread.run_sync(
        lambda: NeptuneSource(token, concurrency=concurrency, retry=retry), abandon_on_cancel=True
    )


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
) -> BackupReport:
    """Back up ``projects`` (names, a comma-separated string, or ``"all"``) into ``output``.

    A backup into a folder that holds an earlier one is incremental: unchanged objects cost
    no request, and changed ones fetch only the fields that changed; ``full=True`` fetches
    everything again. ``selection`` narrows what is backed up: objects (runs, models, the
    project's own fields), run filters, field filters and a shard. ``dry_run=True`` lists
    what would be fetched, with sizes where Neptune gives them, and writes nothing.
    The token comes from ``api_token`` or ``NEPTUNE_API_TOKEN``. ``source`` replaces the
    Neptune client with any other :class:`~.source.Source`. Returns the report, which is
    also saved in ``output`` as ``backup-report.json`` (``backup-report.shard-K-of-N.json``
    for a shard). Raises a :class:`~.errors.BackupError` for bad input (usage, token,
    project, destination); failures of single fields or runs are in the report instead.
    """
    if not isinstance(concurrency, int) or concurrency < 1:
        raise UsageError(f"--concurrency must be a whole number of at least 1; got {concurrency!r}.")
    names = parse_projects(projects)
    selection = selection or Selection()
    label = selection.shard_label
    # A dry run reads what an earlier backup left there, and never creates the folder.
    dest = Path(output).resolve() if dry_run else prepare_destination(Path(output))
    with tagged_temporaries(f"{label}-" if label else ""):
        if not dry_run:
            await anyio.to_thread.run_sync(remove_temporaries, dest, temp_tag.get())
        report = BackupReport(
            destination=str(dest),
            started_at=dt.datetime.now(dt.timezone.utc),
            dry_run=dry_run,
            selection=describe(selection),
            previous_backup=finished_time(dest / layout.report_name(label)),
        )
        own_source = source is None
        if source is None:
            source = await connect(api_token, concurrency, report.count_retry)
        try:
            report.stage = CHECKING_PROJECTS
            if progress is not None:
                progress(report.progress())
            infos = await _resolve_projects(source, names)
            pipeline = Pipeline(
                source,
                dest,
                concurrency=concurrency,
                download_artifacts=download_artifacts,
                full=full,
                selection=selection,
                dry_run=dry_run,
                report=report,
                on_progress=progress,
            )
            try:
                await pipeline.run(infos)
            except BaseException as e:
                report.interrupted = True
                error = _backup_error_in(e)
                if error is not None and error is not e:
                    raise error from None  # one clear error, not a task group's bundle
                raise
            finally:
                report.finished_at = dt.datetime.now(dt.timezone.utc)
                name = layout.report_name(label)
                with anyio.CancelScope(shield=True):
                    document = values.dumps(report.to_json()).encode("utf-8")
                    try:
                        if not dry_run:
                            await write_file(dest, PurePosixPath(name), document)
                    except (OSError, DestinationError) as e:  # e.g. the disk is full: keep the real error
                        log.error("could not write %s: %s", name, e)
        finally:
            if own_source:
                source.close()
        return report


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


def _backup_error_in(e: BaseException) -> BackupError | None:
    """The error to report from what a task group raised: the first BackupError inside it."""
    if isinstance(e, BackupError):
        return e
    if isinstance(e, BaseExceptionGroup):
        for inner in e.exceptions:
            if (found := _backup_error_in(inner)) is not None:
                return found
    return None


async def _resolve_projects(source: Source, names: list[str] | None) -> list[ProjectInfo]:
    if names is None:
        names = await anyio.to_thread.run_sync(source.list_projects, abandon_on_cancel=True)
    infos = []
    for name in names:  # every name is checked before anything is fetched
        infos.append(await anyio.to_thread.run_sync(source.get_project, name, abandon_on_cancel=True))
    return infos


async def list_projects(api_token: str | None = None) -> list[str]:
    source = await connect(api_token, 1)
    try:
        return await anyio.to_thread.run_sync(source.list_projects, abandon_on_cancel=True)
    finally:
        source.close()
