"""Each field of a backup in worker processes counted once, though its object may pass
through several workers.

A worker counts the fields of each object it holds as they land (:class:`~.messages.Tally`),
and each job's own count when it finishes (:class:`~.messages.Finished`). When a worker
dies, the worker that takes over its job resumes from the journal and counts again the
fields it finds saved; so the report counts each job's fields as its last worker counts
them, never the dead worker's and the next one's together.
"""

from __future__ import annotations

from ..format.report import BackupReport

Fields = tuple[int, int]  # saved (or found unchanged), failed


class FieldLedger:
    """The fields of each unfinished job that the report counts, by job number."""

    def __init__(self, report: BackupReport) -> None:
        self._report = report
        self._counted: dict[int, Fields] = {}
        self._dead: dict[int, Fields] = {}  # what was counted of a job when its last worker died

    def tallied(self, number: int, fields: Fields) -> None:
        """The count so far of the worker holding job ``number``; until it has counted again
        what a dead worker saved, the dead one's count stands."""
        dead = self._dead.get(number, (0, 0))
        self._set(number, (max(dead[0], fields[0]), max(dead[1], fields[1])))

    def died(self, number: int) -> None:
        """The worker holding job ``number`` died; another one takes the job over."""
        self._dead[number] = self._counted.get(number, (0, 0))

    def finished(self, number: int, unchanged: bool, fields: Fields) -> None:
        """Job ``number`` is done, its worker counting ``fields``. One found unchanged after a
        death had been saved whole by the dead worker, whose count stands."""
        dead = self._dead.pop(number, None)
        self._set(number, dead if unchanged and dead is not None else fields)
        del self._counted[number]

    def failed(self, number: int) -> None:
        """Job ``number`` failed, its workers dead: what they saved stays counted."""
        self._counted.pop(number, None)
        self._dead.pop(number, None)

    def _set(self, number: int, fields: Fields) -> None:
        done, failed = self._counted.get(number, (0, 0))
        self._report.fields_done += fields[0] - done
        self._report.fields_failed += fields[1] - failed
        self._counted[number] = fields
