"""What a load did: counts, failures, notices and the exit code they imply; each loader names
its tracker, where it loaded and its places (MLflow's experiments, W&B's projects)."""

from __future__ import annotations

import datetime as dt
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .. import domain
from ..format.report import Note


def redact_uri(uri: str) -> str:
    """The URI without its secret, for messages and the report: the password, or a user name
    given alone (which is then an API key: ``https://KEY@host``)."""
    parts = urllib.parse.urlsplit(uri)
    if parts.username is None:
        return uri
    user = "***" if parts.password is None else f"{parts.username}:***"
    netloc = f"{user}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class LoadProgress:
    """A snapshot handed to progress callbacks."""

    objects_found: int
    objects_done: int
    objects_failed: int
    points: int
    starting: bool = False  # the tracker's client is starting (MLflow's new database takes tens of seconds)


@dataclass
class LoadReport:
    SYSTEM: ClassVar[str] = "the tracker"
    TARGET: ClassVar[str] = "target"  # the report's key for where it loaded
    PLACES: ClassVar[str] = "places"  # ... and for the places it made or used, name -> id
    WORDS: ClassVar[tuple[str, str, str]] = ("points", "values", "file bytes")  # of the counts below

    destination: str
    target: str  # where it loaded, without a password
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    objects_found: int = 0
    objects_loaded: int = 0  # created, or updated with what a later backup added
    objects_unchanged: int = 0  # already loaded from the same backup: no write at all
    objects_replaced: int = 0  # changed in a way the tracker cannot update in place: loaded anew
    objects_failed: int = 0
    points: int = 0
    params: int = 0
    artifact_bytes: int = 0
    places: dict[str, str] = field(default_factory=dict)  # name -> id
    failures: list[Note] = field(default_factory=list)
    notices: list[Note] = field(default_factory=list)
    interrupted: bool = False
    dry_run: bool = False
    stopped_with: int | None = None  # the exit code of what stopped the load (errors.exit_code_of)

    @property
    def exit_code(self) -> int:
        """The command's: what stopped the load says, else 1 when something failed."""
        if self.stopped_with is not None:
            return self.stopped_with
        return 1 if self.failures or self.interrupted else 0

    def progress(self, starting: bool = False) -> LoadProgress:
        done = self.objects_loaded + self.objects_unchanged
        return LoadProgress(self.objects_found, done, self.objects_failed, self.points, starting)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": 1,
            "destination": self.destination,
            self.TARGET: self.target,
            "started_at": domain.iso(self.started_at),
            "finished_at": domain.iso(self.finished_at) if self.finished_at else None,
            "interrupted": self.interrupted,
            "dry_run": self.dry_run,
            "exit_code": self.exit_code,
            "totals": {
                "objects_found": self.objects_found,
                "objects_loaded": self.objects_loaded,
                "objects_unchanged": self.objects_unchanged,
                "objects_replaced": self.objects_replaced,
                "objects_failed": self.objects_failed,
                "points": self.points,
                "params": self.params,
                "artifact_bytes": self.artifact_bytes,
            },
            self.PLACES: dict(sorted(self.places.items())),
            "failures": [vars(n) for n in self.failures],
            "notices": [vars(n) for n in self.notices],
        }

    def summary(self) -> str:
        points, values, files = self.WORDS
        if self.dry_run:
            lines = [
                f"Would load {self.objects_loaded} object(s) into {self.SYSTEM} at {self.target}"
                f" ({self.objects_unchanged} already loaded and unchanged, {self.objects_failed} that cannot be"
                f" loaded, of {self.objects_found}), with at most {self.points} {points}."
            ]
        else:
            lines = [
                f"Loaded {self.objects_loaded} object(s) into {self.SYSTEM} at {self.target}"
                f" ({self.objects_unchanged} unchanged, {self.objects_replaced} replaced,"
                f" {self.objects_failed} failed, of {self.objects_found}): {self.points} {points},"
                f" {self.params} {values}, {self.artifact_bytes} {files}.",
            ]
        lines += [f"failed: {n.where}: {n.reason}" for n in self.failures]
        lines += [f"notice: {n.where}: {n.reason}" for n in self.notices]
        if self.interrupted:
            lines.append("Interrupted: run the same command again to finish; nothing is loaded twice.")
        return "\n".join(lines)
