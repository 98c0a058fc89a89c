"""What a backup records as it goes, into its report: bytes written, retries, failures and
notices, each change passed on to the progress callback (rate-limited, :mod:`.progress`)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..format.report import BackupReport, Note, Progress
from .progress import ProgressFeed
from .retry import THROTTLED

log = logging.getLogger("neptune_backup_async")


class Recorder:
    def __init__(self, report: BackupReport, on_progress: Callable[[Progress], None] | None = None) -> None:
        self.report = report
        self._progress = ProgressFeed(report, on_progress)

    def changed(self, *, final: bool = False) -> None:
        """Counts changed: the progress callback hears of it, rate-limited; ``final``: at once."""
        self._progress.changed(final=final)

    def count_bytes(self, n: int) -> None:
        self.report.bytes_written += n
        self.changed()

    def retried(self, reason: str, seconds: float) -> None:
        """A request is retried for ``reason``, after waiting ``seconds`` (see :class:`~.retry.Retrier`)."""
        self.report.retries[reason] = self.report.retries.get(reason, 0) + 1
        if reason == THROTTLED:
            self.report.throttled_seconds += seconds

    def fail(self, project: str, run: str | None, field: str | None, reason: str) -> None:
        self.report.failures.append(Note(project, run, field, reason))
        log.error("%s/%s/%s: %s", project, run or "-", field or "-", reason)

    def notice(self, project: str, run: str | None, field: str | None, reason: str) -> None:
        self.report.notices.append(Note(project, run, field, reason))
        log.warning("%s/%s/%s: %s", project, run or "-", field or "-", reason)
