"""The per-container manifest: what was saved, where, and how to check it (docs/FORMAT.md)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from .. import domain
from ..disk.files import WrittenFile

FORMAT_VERSION = 2  # 2: the injective layout; a folder of format 1 is migrated (migration.py)
READABLE_FORMATS = (1, 2)
# Marks an ok field whose last backup failed (the value says why): the copy is an earlier backup's.
STALE = "stale"


@dataclass
class FieldRecord:
    type: str
    status: str  # "ok" or "failed"
    files: list[str] = field(default_factory=list)
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failure(self) -> str | None:
        """Why the last backup did not save this field; None when it did. A stale field still
        has the copy an earlier backup saved."""
        if self.status != "ok":
            return self.error or "failed"
        stale = self.extra.get(STALE)
        return None if stale is None else f"{stale} (the copy of an earlier backup is kept)"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "status": self.status, "files": self.files}
        if self.error is not None:
            out["error"] = self.error
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> FieldRecord:
        rec = dict(doc)
        return cls(rec.pop("type"), rec.pop("status"), rec.pop("files"), rec.pop("error", None), rec)


@dataclass
class Manifest:
    kind: str  # "run", "model", "modelVersion" or "project"
    project: str
    sys_id: str
    id: str
    modification_time: dt.datetime | None
    fields: dict[str, FieldRecord] = field(default_factory=dict)
    files: dict[str, WrittenFile] = field(default_factory=dict)
    complete: bool = False
    # The --include-fields/--exclude-fields it was saved with; None: every field.
    field_filter: dict[str, Any] | None = None
    model_id: str | None = None  # a model version's model
    format: int = FORMAT_VERSION  # as read; always written as FORMAT_VERSION

    def add_file(self, written: WrittenFile) -> None:
        self.files[written.path] = written

    @property
    def failures(self) -> dict[str, str]:
        """Why the last backup did not save each field it did not, stale ones included; by path."""
        return {p: why for p, r in sorted(self.fields.items()) if (why := r.failure) is not None}

    @property
    def failed_fields(self) -> list[str]:
        return list(self.failures)

    def to_json(self) -> dict[str, Any]:
        """Deterministic: the same run backed up twice gives the same bytes."""
        out = {
            "format": FORMAT_VERSION,
            "kind": self.kind,
            "project": self.project,
            "sys_id": self.sys_id,
            "id": self.id,
            "modification_time": domain.iso(self.modification_time) if self.modification_time else None,
            "complete": self.complete,
            "fields": {p: r.to_json() for p, r in sorted(self.fields.items())},
            "files": {p: {"size": f.size, "sha256": f.sha256} for p, f in sorted(self.files.items())},
        }
        if self.field_filter is not None:
            out["field_filter"] = self.field_filter
        if self.model_id is not None:
            out["model_id"] = self.model_id
        return out

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Manifest:
        if doc.get("format") not in READABLE_FORMATS:
            raise ValueError(f"unknown manifest format {doc.get('format')!r}")
        modified = doc.get("modification_time")
        out = cls(
            kind=doc["kind"],
            project=doc["project"],
            sys_id=doc["sys_id"],
            id=doc["id"],
            modification_time=domain.parse_iso(modified) if modified else None,
            complete=bool(doc["complete"]),
            field_filter=doc.get("field_filter"),
            model_id=doc.get("model_id"),
            format=doc["format"],
        )
        for path, rec in doc["fields"].items():
            out.fields[path] = FieldRecord.from_json(rec)
        for path, f in doc["files"].items():
            out.files[path] = WrittenFile(path, int(f["size"]), f["sha256"])
        return out

    @classmethod
    def loads(cls, text: str) -> Manifest:
        return cls.from_json(json.loads(text))
