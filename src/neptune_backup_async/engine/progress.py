"""Progress snapshots for a callback, rate-limited: a backup changes its counts thousands of
times a second (every write), and a display needs a few updates a second.

A change costs nothing when nobody listens, and a clock reading otherwise. A snapshot goes
out at most every :data:`EVERY` seconds, and at once when the stage changes or when the
backup ends (:meth:`ProgressFeed.changed` with ``final``), so a display never keeps stale
final numbers. A callback that raises stops the backup with
:class:`~.errors.ProgressCallbackError`, from whichever change handed it the snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..errors import ProgressCallbackError
from ..format.report import BackupReport, Progress

EVERY = 0.1  # seconds between snapshots, at most: tqdm redraws no faster


class ProgressFeed:
    def __init__(
        self,
        report: BackupReport,
        callback: Callable[[Progress], None] | None,
        *,
        every: float = EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._report = report
        self._callback = callback
        self._every = every
        self._clock = clock
        self._stage: str | None = None  # the stage of the last snapshot
        self._next = 0.0  # no snapshot before this time, unless the stage changed

    def changed(self, *, final: bool = False) -> None:
        """Something a display shows changed; ``final``: the backup ended, show it now."""
        if self._callback is None:
            return
        now = self._clock()
        stage = self._report.stage
        if not final and stage == self._stage and now < self._next:
            return
        self._stage, self._next = stage, now + self._every
        try:
            self._callback(self._report.progress())
        except Exception as e:
            raise ProgressCallbackError(
                f"The progress callback raised {type(e).__name__}: {e}. The backup stopped; finished"
                " runs are kept, and the same call resumes."
            ) from e
