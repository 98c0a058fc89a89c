"""One process's backup put together, in one place for a backup in one process and for each
worker process (:mod:`..processes.worker`): the token, the connection to Neptune, the
pipeline, and the one error a backup ends with.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable, Iterator

import anyio

from ..errors import AuthenticationError, BackupError, UnexpectedError, leading_error
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


def resolve_token(api_token: str | None) -> str:
    token = (api_token if api_token is not None else os.environ.get(TOKEN_ENV, "")).strip()
    if not token:
        raise AuthenticationError(
            f"No Neptune API token. Set {TOKEN_ENV}, or pass --api-token-file with a file that holds it."
        )
    return token


async def connect(
    api_token: str | None, concurrency: int, *, limiter: anyio.CapacityLimiter | None = None
) -> Source:
    """Check the server and the token (cancellable), then start the Neptune client once, before
    any fan-out, in threads under ``limiter`` (a backup's request threads, :class:`.Limits`)."""
    token = resolve_token(api_token)
    # Imported in a thread: the client's import takes most of a second, which would stall an
    # embedding service's event loop the first time.
    neptune_source = await anyio.to_thread.run_sync(
        importlib.import_module, "..remote.neptune.client", __package__, limiter=limiter
    )
    source: Source = await neptune_source.connect(token, concurrency, limiter=limiter)
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
