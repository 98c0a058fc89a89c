"""What a backup did: counts, failures with their reasons, and the exit code they imply."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import values
from .errors import NotABackupError


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

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            f"{LABELS[kind]}_{stat}": getattr(c, stat) for kind, c in self.counts.items() for stat in STATS
        }
        out["listed"] = self.listed
        if self.planned:
            out["planned"] = {t: {"fields": n, "bytes": b} for t, (n, b) in sorted(self.planned.items())}
        return out


@dataclass(frozen=True)
class Progress:
    """A snapshot handed to progress callbacks; objects are runs, models, versions and projects."""

    objects_found: int
    objects_done: int
    objects_failed: int
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
    dry_run: bool = False
    selection: dict[str, Any] = field(default_factory=dict)  # what narrowed it, as given
    # Requests tried again, by reason ("HTTP 429", "HTTP 503", "connection", "cut off"...),
    # and the seconds spent waiting out 429s (each request waits its own Retry-After).
    retries: dict[str, int] = field(default_factory=dict)
    throttled_seconds: float = 0.0

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
        return 1 if self.failures or self.interrupted else 0

    def progress(self) -> Progress:
        return Progress(
            objects_found=self.total("found"),
            objects_done=self.total("done"),
            objects_failed=self.total("failed"),
            bytes_written=self.bytes_written,
            listing_done=all(p.listed for p in self.projects.values()),
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
            "started_at": values.iso(self.started_at),
            "finished_at": values.iso(self.finished_at) if self.finished_at else None,
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


def summarize(report: dict[str, Any]) -> str:
    """A few lines for people, from a report document (this backup's, or merged shards')."""
    totals = report["totals"]
    seconds = 0.0
    if report.get("finished_at") and report.get("started_at"):
        finished, started = values.parse_iso(report["finished_at"]), values.parse_iso(report["started_at"])
        seconds = (finished - started).total_seconds()
    status = "Interrupted" if report.get("interrupted") else "Done"
    if report.get("dry_run"):
        status = "Dry run (nothing written)"
    objects = [f"{totals['projects']} project(s)"]
    for kind, label in LABELS.items():
        found, done = totals.get(f"{label}_found", 0), totals.get(f"{label}_done", 0)
        if kind != "run" and not found:
            continue
        name = label.replace("_", " ") if kind != "project" else "project folder(s)"
        unchanged, failed = totals.get(f"{label}_unchanged", 0), totals.get(f"{label}_failed", 0)
        verb = "to back up" if report.get("dry_run") else "backed up"
        objects.append(
            f"{found - unchanged if report.get('dry_run') else done} of {found} {name} {verb}"
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
    if report.get("dry_run"):
        for name, project in report["projects"].items():
            found = [
                f"{project.get(f'{label}_found', 0)} {label.replace('_', ' ')}"
                for label in LABELS.values()
                if project.get(f"{label}_found")
            ]
            lines.append(f"  {name}: {', '.join(found) or 'nothing to back up'}")
        planned: dict[str, list[int]] = {}
        for project in report["projects"].values():
            for kind, p in (project.get("planned") or {}).items():
                planned.setdefault(kind, [0, 0])
                planned[kind][0] += p["fields"]
                planned[kind][1] += p["bytes"]
        for kind, (n, size) in sorted(planned.items()):
            lines.append(f"  {kind}: {n} field(s)" + (f", {size / 1e6:.1f} MB" if size else ""))
        known = sum(size for _, size in planned.values())
        lines.append(f"  at least {known / 1e6:.1f} MB that the listing gives sizes for (series not counted)")
    else:
        lines.append(
            f"  {totals['fields_done']} field(s) saved, {totals['fields_failed']} failed;"
            f" {totals['bytes_written'] / 1e6:.1f} MB written."
        )
    for label, key in (("failed", "failures"), ("note", "notices")):
        notes = report.get(key) or []
        for n in notes[:10]:
            where = "/".join(p for p in (n["project"], n["run"], n["field"]) if p)
            lines.append(f"  {label}: {where}: {n['reason']}")
        if len(notes) > 10:
            lines.append(f"  ... and {len(notes) - 10} more ({label})")
    return "\n".join(lines)


def load_reports(dest: Path) -> dict[str, Any]:
    """The report of the backup in ``dest``, merged from its shards' reports if it has several."""
    paths = sorted(dest.glob("backup-report*.json"))
    if not paths:
        raise NotABackupError(f"{dest} holds no backup report (backup-report*.json).")
    docs = []
    for path in paths:
        try:
            docs.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as e:
            raise NotABackupError(f"Cannot read {path} ({e}). Run the backup again to rewrite it.") from None
    return merge(docs)


def merge(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """One report from several (of the shards of one backup): counts add up, notes are joined.

    Shards that a report names but none was found for are listed under ``missing_shards`` and
    make the exit code 1: that part of the workspace was not backed up.
    """
    if len(docs) == 1 and not docs[0].get("selection", {}).get("shard"):
        return docs[0]
    totals: dict[str, Any] = {}
    projects: dict[str, dict[str, Any]] = {}
    for doc in docs:
        for key, value in doc["totals"].items():
            if key != "projects":
                totals[key] = totals.get(key, 0) + value
        for name, summary in doc["projects"].items():
            into = projects.setdefault(name, {"listed": True})
            for key, value in summary.items():
                if key == "listed":
                    into["listed"] = into["listed"] and value
                elif key == "planned":
                    for kind, p in value.items():
                        tally = into.setdefault("planned", {}).setdefault(kind, {"fields": 0, "bytes": 0})
                        tally["fields"] += p["fields"]
                        tally["bytes"] += p["bytes"]
                else:
                    into[key] = into.get(key, 0) + value
    totals["projects"] = len(projects)
    retries: dict[str, int] = {}
    for doc in docs:
        for reason, count in doc.get("retries", {}).items():
            retries[reason] = retries.get(reason, 0) + count
    shards = sorted({d.get("selection", {}).get("shard") for d in docs} - {None})
    counts = {int(s.split("/")[1]) for s in shards}
    missing = [f"{k}/{n}" for n in sorted(counts) for k in range(n) if f"{k}/{n}" not in shards]
    started = [d["started_at"] for d in docs if d.get("started_at")]
    finished = [d["finished_at"] for d in docs if d.get("finished_at")]
    return {
        "format": 2,
        "merged_from": len(docs),
        "shards": shards,
        "missing_shards": missing,
        "destination": docs[0].get("destination"),
        "started_at": min(started, key=values.parse_iso) if started else None,
        "finished_at": max(finished, key=values.parse_iso) if len(finished) == len(docs) else None,
        "interrupted": any(d.get("interrupted") for d in docs),
        "dry_run": all(d.get("dry_run") for d in docs),
        "exit_code": max([int(d.get("exit_code", 1)) for d in docs] + [1 if missing else 0]),
        "totals": totals,
        "projects": dict(sorted(projects.items())),
        "failures": [n for d in docs for n in d.get("failures", [])],
        "notices": [n for d in docs for n in d.get("notices", [])],
        "retries": dict(sorted(retries.items())),
        "throttled_seconds": round(sum(d.get("throttled_seconds", 0.0) for d in docs), 3),
    }
