"""What a backup did: counts, failures with their reasons, and the exit code they imply."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from .. import domain
from ..errors import THROTTLE_LABELS
from .manifest import Manifest


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


# How the report names each kind of object.
LABELS = {"run": "runs", "model": "models", "modelVersion": "model_versions", "project": "project"}
STATS = ("found", "done", "unchanged", "failed")


@dataclass
class Counts:
    found: int = 0
    done: int = 0  # saved in this backup, or found unchanged since the last
    unchanged: int = 0  # of done, those that needed no request at all
    failed: int = 0


@dataclass
class ProjectSummary:
    counts: dict[str, Counts] = field(default_factory=lambda: {kind: Counts() for kind in LABELS})
    listed: bool = False  # every listing of what to back up was read to its end
    # A dry run: per field type, [fields, bytes that the listing gives sizes for].
    planned: dict[str, list[int]] = field(default_factory=dict)

    def found_words(self) -> str:
        """What its listings found, in words: ``4 runs, 1 model, 2 model versions and its own fields``."""
        return found_words({kind: c.found for kind, c in self.counts.items()})

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            f"{LABELS[kind]}_{stat}": getattr(c, stat) for kind, c in self.counts.items() for stat in STATS
        }
        out["listed"] = self.listed
        if self.planned:
            out["planned"] = {t: {"fields": n, "bytes": b} for t, (n, b) in sorted(self.planned.items())}
        return out


# What a backup is doing, for progress displays: these, then "listing WORKSPACE/PROJECT" for each project.
CONNECTING = "connecting to Neptune"
CHECKING_PROJECTS = "checking projects"
BACKING_UP = "backing up"


def listing(project: str) -> str:
    return f"listing {project}"


@dataclass(frozen=True)
class Progress:
    """A snapshot handed to progress callbacks; objects are runs, models, versions and projects."""

    objects_found: int
    objects_done: int
    objects_failed: int
    bytes_written: int
    listing_done: bool  # objects_found is final
    stage: str = BACKING_UP  # CONNECTING, CHECKING_PROJECTS, listing(project) or BACKING_UP
    retries: int = 0  # requests tried again so far, 429s included


@dataclass
class FieldTally:
    """The fields counted so far of one object being backed up."""

    done: int = 0
    failed: int = 0


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
    dry_run: bool = False
    selection: dict[str, Any] = field(default_factory=dict)  # what narrowed it, as given
    # Requests tried again, by reason ("HTTP 429", "HTTP 503", "connection", "cut off"...),
    # and the seconds spent waiting out 429s, summed over the requests that waited (each waits
    # its own Retry-After, side by side: the sum may exceed the backup's duration).
    retries: dict[str, int] = field(default_factory=dict)
    throttled_seconds: float = 0.0
    previous_backup: dt.datetime | None = None  # when the last backup into this destination finished
    stage: str = CONNECTING  # what it is doing now (not saved)
    stopped_with: int | None = None  # the exit code of what stopped it (errors.exit_code_of; not saved)
    # The fields counted of each object still being backed up, by (project, sys id), when they are
    # kept (a worker process keeps them, so that its parent counts each field once; not saved).
    by_object: dict[tuple[str, str], FieldTally] | None = None

    def count_fields(self, manifest: Manifest, *, done: int = 0, failed: int = 0) -> None:
        """Count fields of the object of ``manifest`` saved (or found unchanged) and failed."""
        self.fields_done += done
        self.fields_failed += failed
        if self.by_object is not None:
            tally = self.by_object.setdefault((manifest.project, manifest.sys_id), FieldTally())
            tally.done += done
            tally.failed += failed

    def total(self, stat: str, kinds: tuple[str, ...] = tuple(LABELS)) -> int:
        return sum(getattr(p.counts[k], stat) for p in self.projects.values() for k in kinds)

    @property
    def runs_found(self) -> int:
        return self.total("found", ("run",))

    @property
    def runs_done(self) -> int:
        return self.total("done", ("run",))

    @property
    def runs_unchanged(self) -> int:
        return self.total("unchanged", ("run",))

    @property
    def runs_failed(self) -> int:
        return self.total("failed", ("run",))

    @property
    def exit_code(self) -> int:
        """The command's: what stopped the backup says (2, 130, 143...), else 1 when something failed."""
        if self.stopped_with is not None:
            return self.stopped_with
        return 1 if self.failures or self.interrupted else 0

    def progress(self) -> Progress:
        return Progress(
            objects_found=self.total("found"),
            objects_done=self.total("done"),
            objects_failed=self.total("failed"),
            bytes_written=self.bytes_written,
            listing_done=self.stage == BACKING_UP,
            stage=self.stage,
            retries=sum(self.retries.values()),
        )

    def to_json(self) -> dict[str, Any]:
        projects = {name: p.to_json() for name, p in sorted(self.projects.items())}
        totals: dict[str, Any] = {"projects": len(self.projects)}
        for key in next(iter(projects.values()), ProjectSummary().to_json()):
            if key not in ("listed", "planned"):
                totals[key] = sum(p[key] for p in projects.values())
        totals.update(
            fields_done=self.fields_done, fields_failed=self.fields_failed, bytes_written=self.bytes_written
        )
        return {
            "format": 2,
            "destination": self.destination,
            "started_at": domain.iso(self.started_at),
            "finished_at": domain.iso(self.finished_at) if self.finished_at else None,
            "previous_backup": domain.iso(self.previous_backup) if self.previous_backup else None,
            "interrupted": self.interrupted,
            "dry_run": self.dry_run,
            "exit_code": self.exit_code,
            "selection": self.selection,
            "totals": totals,
            "projects": projects,
            "failures": [asdict(f) for f in self.failures],
            "notices": [asdict(n) for n in self.notices],
            "retries": dict(sorted(self.retries.items())),
            "throttled_seconds": round(self.throttled_seconds, 3),
        }

    def summary(self) -> str:
        return summarize(self.to_json())


# Each kind of object in words: one, many.
NAMES = {
    "run": ("run", "runs"),
    "model": ("model", "models"),
    "modelVersion": ("model version", "model versions"),
    "project": ("project folder", "project folders"),
}


def found_words(found: dict[str, int]) -> str:
    """``4 runs, 1 model, 2 model versions and its own fields`` from counts by kind."""
    words = [plural(n, *NAMES[kind]) for kind, n in found.items() if n and kind != "project"]
    if found.get("project"):
        words.append("its own fields")
    return _words(words) if words else "nothing to back up"


def plural(n: int, one: str, many: str | None = None) -> str:
    """``1 run``, ``2 runs``."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


def human_size(n: float) -> str:
    """Bytes in decimal units, as file managers show them: ``512 B``, ``1.5 kB``, ``12 kB``, ``3.4 GB``."""
    if n < 1000:
        return f"{int(n)} B"
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        n /= 1000
        if n < 999.5 or unit == "PB":
            return f"{n:.1f} {unit}" if n < 9.95 else f"{n:.0f} {unit}"
    raise AssertionError("unreachable")


def when(text: str) -> str:
    """A report's ISO time for people: ``2026-11-28 17:09:03 UTC``."""
    return domain.parse_iso(text).strftime("%Y-%m-%d %H:%M:%S UTC")


def when_line(report: dict[str, Any]) -> str:
    """When the backup a report describes ran."""
    started, finished = report.get("started_at"), report.get("finished_at")
    if not started:
        return "When the backup ran is not recorded."
    if not finished:
        return f"Backup started {when(started)}; it has no end time (a shard's report is missing, or it stopped)."
    end = when(finished)
    if end[:10] == when(started)[:10]:
        end = end[11:]  # the same day
    return f"Backup started {when(started)}, finished {end}."


def retries_text(retries: dict[str, int]) -> str:
    """``12 retries (HTTP 503: 8, HTTP 429 (throttled): 4)``: requests tried again, by reason."""
    reasons = sorted(retries.items(), key=lambda item: (-item[1], item[0]))
    parts = [f"{reason}{' (throttled)' if reason in THROTTLE_LABELS else ''}: {n}" for reason, n in reasons]
    return f"{plural(sum(retries.values()), 'retry', 'retries')} ({', '.join(parts)})"


def _words(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _nothing_changed(report: dict[str, Any]) -> bool:
    """Every object found was unchanged since the last backup, and nothing else happened."""
    totals = report["totals"]
    found = sum(totals.get(f"{label}_found", 0) for label in LABELS.values())
    unchanged = sum(totals.get(f"{label}_unchanged", 0) for label in LABELS.values())
    quiet = not (report.get("failures") or report.get("notices") or report.get("interrupted"))
    return quiet and not report.get("dry_run") and found > 0 and unchanged == found


def summarize(report: dict[str, Any]) -> str:
    """A few lines for people, from a report document (this backup's, or merged shards')."""
    totals = report["totals"]
    seconds = 0.0
    if report.get("finished_at") and report.get("started_at"):
        finished, started = domain.parse_iso(report["finished_at"]), domain.parse_iso(report["started_at"])
        seconds = (finished - started).total_seconds()
    dry = bool(report.get("dry_run"))
    if _nothing_changed(report):
        found = [
            plural(totals[f"{label}_found"], *NAMES[kind])
            for kind, label in LABELS.items()
            if totals.get(f"{label}_found")
        ]
        since = f" ({when(report['previous_backup'])})" if report.get("previous_backup") else ""
        lines = [
            f"Nothing changed since the last backup{since}: {_words(found)}, all as they were"
            f" (checked in {seconds:.1f}s)."
        ]
    else:
        status = "Interrupted" if report.get("interrupted") else "Done"
        if dry:
            status = "Dry run (nothing written)"
        objects = [plural(totals["projects"], "project")]
        for kind, label in LABELS.items():
            found, done = totals.get(f"{label}_found", 0), totals.get(f"{label}_done", 0)
            if kind != "run" and not found:
                continue
            unchanged, failed = totals.get(f"{label}_unchanged", 0), totals.get(f"{label}_failed", 0)
            verb = "to back up" if dry else "backed up"
            name = NAMES[kind][found != 1]
            objects.append(
                f"{found - unchanged if dry else done} of {found} {name} {verb}"
                f" ({unchanged} unchanged, {failed} failed)"
            )
        lines = [f"{status} in {seconds:.1f}s: " + "; ".join(objects) + "."]
    if report.get("merged_from"):
        lines.append(
            f"  merged from {report['merged_from']} reports (shards: {', '.join(report['shards']) or '-'})"
        )
    if report.get("missing_shards"):
        lines.append(
            f"  missing shards: {', '.join(report['missing_shards'])}: run them (--shard K/N) and copy"
            " their output here"
        )
    if dry:
        lines += _planned(report)
    elif not _nothing_changed(report):
        lines.append(
            f"  {plural(totals['fields_done'], 'field')} saved, {totals['fields_failed']} failed;"
            f" {human_size(totals['bytes_written'])} written."
        )
    if report.get("retries"):
        waited = report.get("throttled_seconds") or 0
        throttled = f"; throttled requests waited {waited:.1f} s in all (summed over requests, not wall time)"
        throttled = throttled if waited else ""
        lines.append(f"  {retries_text(report['retries'])}{throttled}")
    for label, key in (("failed", "failures"), ("note", "notices")):
        notes = report.get(key) or []
        for n in notes[:10]:
            where = "/".join(p for p in (n["project"], n["run"], n["field"]) if p)
            lines.append(f"  {label}: {where}: {n['reason']}")
        if len(notes) > 10:
            lines.append(f"  ... and {len(notes) - 10} more ({label})")
    return "\n".join(lines)


def _planned(report: dict[str, Any]) -> list[str]:
    """A dry run's lines: what each project holds, and the fields a backup would fetch by type."""
    lines = []
    for name, project in report["projects"].items():
        found = {kind: project.get(f"{label}_found", 0) for kind, label in LABELS.items()}
        lines.append(f"  {name}: {found_words(found)}")
    planned: dict[str, list[int]] = {}
    for project in report["projects"].values():
        for kind, p in (project.get("planned") or {}).items():
            planned.setdefault(kind, [0, 0])
            planned[kind][0] += p["fields"]
            planned[kind][1] += p["bytes"]
    for kind, (n, size) in sorted(planned.items()):
        lines.append(f"  {kind}: {plural(n, 'field')}" + (f", {human_size(size)}" if size else ""))
    known = sum(size for _, size in planned.values())
    lines.append(f"  at least {human_size(known)} that the listing gives sizes for (series not counted)")
    return lines
