"""What a backup records as it goes, into its report: bytes written, retries, failures and
notices, each change passed on to the progress callback (rate-limited, :mod:`.progress`)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..errors import TransientError
from ..format.report import BackupReport, Note, Progress
from .progress import ProgressFeed

log = logging.getLogger("neptune_backup_async")


class Recorder:
    def __init__(self, report: BackupReport, on_progress: Callable[[Progress], None] | None = None) -> None:
        self.report = report
        self._progress = ProgressFeed(report, on_progress)
        self._noticed: set[str] = set()  # the reasons of notice_once so far

    def changed(self, *, final: bool = False) -> None:
        """Counts changed: the progress callback hears of it, rate-limited; ``final``: at once."""
        self._progress.changed(final=final)

    def count_bytes(self, n: int) -> None:
        self.report.bytes_written += n
        self.changed()

    def retried(self, error: TransientError, seconds: float) -> None:
        """A request is retried after ``error``, once it waited ``seconds`` (see :class:`~.retry.Retrier`)."""
        self.report.retries[error.label] = self.report.retries.get(error.label, 0) + 1
        if error.throttled:
            self.report.throttled_seconds += seconds

    def fail(self, project: str, run: str | None, field: str | None, reason: str) -> None:
        self.report.failures.append(Note(project, run, field, reason))
        log.error("%s/%s/%s: %s", project, run or "-", field or "-", reason)

    def notice(self, project: str, run: str | None, field: str | None, reason: str) -> None:
        self.report.notices.append(Note(project, run, field, reason))
        log.warning("%s/%s/%s: %s", project, run or "-", field or "-", reason)

    def notice_once(self, project: str, run: str | None, field: str | None, reason: str) -> None:
        """A notice that holds for the whole backup: given where ``reason`` first comes up only."""
        if reason not in self._noticed:
            self._noticed.add(reason)
            self.notice(project, run, field, reason)
