"""What a backup did: counts, failures with their reasons, and the exit code they imply."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from . import values


@dataclass(frozen=True)
class Note:
    """A failure, or a notice such as a field gone from Neptune: where, and why."""

    project: str
    run: str | None
    field: str | None
    reason: str

    @property
    def where(self) -> str:
        return "/".join(p for p in (self.project, self.run, self.field) if p)


@dataclass
class ProjectSummary:
    runs_found: int = 0
    runs_done: int = 0  # saved in this backup, or found unchanged since the last
    runs_unchanged: int = 0  # of runs_done, those that needed no request at all
    runs_failed: int = 0
    listed: bool = False  # the whole runs table was read


@dataclass(frozen=True)
class Progress:
    """A snapshot handed to progress callbacks."""

    runs_found: int
    runs_done: int
    runs_failed: int
    bytes_written: int
    listing_done: bool


@dataclass
class BackupReport:
    destination: str
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    projects: dict[str, ProjectSummary] = field(default_factory=dict)
    fields_done: int = 0
    fields_failed: int = 0
    bytes_written: int = 0
    failures: list[Note] = field(default_factory=list)
    notices: list[Note] = field(default_factory=list)
    interrupted: bool = False

    @property
    def runs_found(self) -> int:
        return sum(p.runs_found for p in self.projects.values())

    @property
    def runs_done(self) -> int:
        return sum(p.runs_done for p in self.projects.values())

    @property
    def runs_unchanged(self) -> int:
        return sum(p.runs_unchanged for p in self.projects.values())

    @property
    def runs_failed(self) -> int:
        return sum(p.runs_failed for p in self.projects.values())

    @property
    def exit_code(self) -> int:
        return 1 if self.failures or self.interrupted else 0

    def progress(self) -> Progress:
        return Progress(
            runs_found=self.runs_found,
            runs_done=self.runs_done,
            runs_failed=self.runs_failed,
            bytes_written=self.bytes_written,
            listing_done=all(p.listed for p in self.projects.values()),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": 1,
            "destination": self.destination,
            "started_at": values.iso(self.started_at),
            "finished_at": values.iso(self.finished_at) if self.finished_at else None,
            "interrupted": self.interrupted,
            "exit_code": self.exit_code,
            "totals": {
                "projects": len(self.projects),
                "runs_found": self.runs_found,
                "runs_done": self.runs_done,
                "runs_unchanged": self.runs_unchanged,
                "runs_failed": self.runs_failed,
                "fields_done": self.fields_done,
                "fields_failed": self.fields_failed,
                "bytes_written": self.bytes_written,
            },
            "projects": {name: asdict(p) for name, p in sorted(self.projects.items())},
            "failures": [asdict(f) for f in self.failures],
            "notices": [asdict(n) for n in self.notices],
        }

    def summary(self) -> str:
        seconds = (self.finished_at - self.started_at).total_seconds() if self.finished_at else 0.0
        lines = [
            f"{'Interrupted' if self.interrupted else 'Done'} in {seconds:.1f}s: {len(self.projects)} project(s),"
            f" {self.runs_done} of {self.runs_found} run(s) backed up ({self.runs_unchanged} unchanged),"
            f" {self.runs_failed} failed;"
            f" {self.fields_done} field(s) saved, {self.fields_failed} failed;"
            f" {self.bytes_written / 1e6:.1f} MB written.",
        ]
        for label, notes in (("failed", self.failures), ("note", self.notices)):
            lines += [f"  {label}: {n.where}: {n.reason}" for n in notes[:10]]
            if len(notes) > 10:
                lines.append(f"  ... and {len(notes) - 10} more ({label})")
        return "\n".join(lines)
