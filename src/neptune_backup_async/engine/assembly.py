"""One process's backup put together, in one place for a backup in one process and for each
worker process (:mod:`..processes.worker`): the token, the connection to Neptune, the
pipeline, and the one error a backup ends with.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
from collections.abc import Callable, Iterator

import anyio

from ..errors import AuthenticationError, BackupError, UnexpectedError, leading_error, unexpected
from ..format.report import BackupReport, Progress
from ..remote.artifacts.files import ArtifactFiles
from ..remote.source import Source
from ..settings import TOKEN_ENV, BackupSettings
from .context import Context
from .limiter import Limits
from .object_backup import ObjectBackup
from .pipeline import Job, Pipeline
from .recorder import Recorder
from .retry import Retrier

log = logging.getLogger("neptune_backup_async")


def resolve_token(api_token: str | None) -> str:
    token = (api_token if api_token is not None else os.environ.get(TOKEN_ENV, "")).strip()
    if not token:
        raise AuthenticationError(
            f"No Neptune API token. Set {TOKEN_ENV}, or pass --api-token-file with a file that holds it."
        )
    return token


async def connect(
    api_token: str | None, limit: int | anyio.CapacityLimiter, *, allow_insecure_http: bool = False
) -> Source:
    """Check the server and the token (cancellable), then start the Neptune client once, before
    any fan-out.

    ``limit`` (``--concurrency``, or a limiter holding it: a backup's request threads,
    :class:`.Limits`) bounds the threads the start-up runs in. A cancel returns at once, even
    while a step of it is still running in its thread.
    """
    token = resolve_token(api_token)
    limiter = limit if isinstance(limit, anyio.CapacityLimiter) else anyio.CapacityLimiter(limit)
    # Imported in a thread: the client's import takes most of a second, which would stall an
    # embedding service's event loop the first time.
    client = await anyio.to_thread.run_sync(
        importlib.import_module,
        "..remote.neptune.client",
        __package__,
        limiter=limiter,
        abandon_on_cancel=True,
    )
    source: Source = await client.connect(token, limiter, allow_insecure_http=allow_insecure_http)
    return source


@contextlib.contextmanager
def build_pipeline(
    source: Source,
    settings: BackupSettings,
    limits: Limits,
    *,
    report: BackupReport,
    on_progress: Callable[[Progress], None] | None = None,
    on_finished: Callable[[Job, bool | None], None] | None = None,
) -> Iterator[Pipeline]:
    """The pipeline of one process, under ``limits`` (from its share of ``settings.concurrency``),
    recording into ``report``; what it opened (the S3 client) is closed on the way out.

    ``on_progress`` hears of changed counts (rate-limited); ``on_finished`` of each job done.
    """
    recorder = Recorder(report, on_progress)
    retrier = Retrier(limits.gate, settings.retry, on_retry=recorder.retried)
    artifact_files = ArtifactFiles(
        settings.destination,
        limiter=limits.disk,
        s3_endpoint_url=settings.s3_endpoint_url,
        connections=settings.concurrency,  # what a share may grow to
    )
    try:
        context = Context(
            source,
            retrier,
            limits,
            artifact_files,
            recorder,
            full=settings.full,
            download_artifacts=settings.download_artifacts,
        )
        yield Pipeline(
            source,
            settings,
            limits,
            retrier=retrier,
            recorder=recorder,
            back_up=ObjectBackup(context, settings),
            on_finished=on_finished,
        )
    finally:
        artifact_files.close()


def one_error(e: BaseException) -> BaseException:
    """What to raise for ``e``: the BackupError that stands for it, a bug as an UnexpectedError
    (its traceback logged at ERROR); a cancel (or KeyboardInterrupt) as it is."""
    leading = leading_error(e)
    if isinstance(leading, BackupError) or not isinstance(leading, Exception):
        return leading
    log.error("a bug", exc_info=leading)
    error = UnexpectedError(f"{unexpected(leading)}; finished runs are kept.")
    error.__cause__ = leading
    return error
