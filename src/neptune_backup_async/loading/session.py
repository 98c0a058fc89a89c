"""The frame of one load, the same for every loader: the objects it finds, its workers' one
limiter and progress, and its report, written however the load ends."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import shutil
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Generic, TypeVar

import anyio

from ..disk.files import write_whole
from ..disk.place import Place
from ..errors import UsageError, exit_code_of
from ..format import values
from ..format.report import Note
from . import backup
from .report import LoadProgress, LoadReport

T = TypeVar("T")
R = TypeVar("R", bound=LoadReport)


class Workers(Generic[R]):
    """What a loader's workers share: every blocking call in a thread under one limiter of
    ``concurrency`` tokens, and the progress callback told of the report's counts."""

    def __init__(self, report: R, concurrency: int, progress: Callable[[LoadProgress], None] | None) -> None:
        self.report = report
        self.limiter = anyio.CapacityLimiter(concurrency)
        self.concurrency = concurrency
        self.progress = progress

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(functools.partial(fn, *args), limiter=self.limiter)

    def tick(self) -> None:
        if self.progress is not None:
            self.progress(self.report.progress())


async def find(
    dest: Path,
    projects: Sequence[str] | None,
    runs: Sequence[str] | None,
    mapping: str,
    concurrency: int,
    report: LoadReport,
) -> list[backup.BackupObject]:
    """The objects to load; those that cannot be are failures of the report."""
    if concurrency < 1:
        raise UsageError("--concurrency must be at least 1.")
    objects, bad = await anyio.to_thread.run_sync(
        backup.find_objects, dest, set(projects) if projects else None, set(runs) if runs else None, mapping
    )
    for b in bad:
        report.failures.append(Note("/".join(b.rel.split("/")[:2]), b.rel.split("/")[-1], None, b.reason))
    report.objects_found = len(objects) + len(bad)
    report.objects_failed = len(bad)
    return objects


@contextlib.asynccontextmanager
async def reported(dest: Path, report: LoadReport, name: str, staging: Path | None) -> AsyncIterator[None]:
    """Write ``report`` to ``dest/name`` however the load ends, with what stopped it, after
    removing the load's ``staging``."""
    try:
        yield
    except BaseException as e:  # the report says what stopped it, with the command's exit code
        report.interrupted = True
        report.stopped_with = exit_code_of(e)
        raise
    finally:
        report.finished_at = dt.datetime.now(dt.timezone.utc)
        with anyio.CancelScope(shield=True):
            if staging is not None:
                await anyio.to_thread.run_sync(functools.partial(shutil.rmtree, staging, ignore_errors=True))
            document = values.dumps(report.to_json()).encode("utf-8")
            await anyio.to_thread.run_sync(write_whole, Place(dest), PurePosixPath(name), document)
