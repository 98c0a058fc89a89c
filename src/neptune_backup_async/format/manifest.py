"""The per-container manifest: what was saved, where, and how to check it (docs/FORMAT.md)."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

from .. import domain
from ..disk.files import WrittenFile
from .layout import SIMPLE_METADATA

FORMAT_VERSION = 2  # 2: the injective layout; a folder of format 1 is migrated (migration.py)
READABLE_FORMATS = (1, 2)
# Marks an ok field whose last backup failed (the value says why): the copy is an earlier backup's.
STALE = "stale"
KINDS = ("run", "model", "modelVersion", "project")
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Facts of a record that code reads as more than a value to compare, and the types they must have.
_FACTS: dict[str, tuple[type, ...]] = {
    "ext": (str, type(None)),
    "rows": (int,),
    "last_step": (int, float, type(None)),
    "count": (int,),
    STALE: (str,),
}


class Damaged(ValueError):
    """A manifest, journal line or migration plan that is not of the shape a backup writes, or
    that names a path outside its object folder: nothing it says is acted on (docs/FORMAT.md
    "A damaged folder")."""


def checked_path(path: object) -> str:
    """``path`` if it is one a backup writes in an object folder: relative, ``/``-separated, no
    segment empty, ``..`` or hidden (the manifest, journal and temporaries start with a dot, no
    saved file does), no backslash or NUL; else raise :class:`Damaged`, saying why."""
    if not isinstance(path, str):
        raise Damaged(f"{path!r} is not a path")
    parts = path.split("/")
    if path.startswith("/") or ".." in parts or "\\" in path:
        raise Damaged(f"the path {path!r} leaves its object folder")
    if "\0" in path or any(not part or part.startswith(".") for part in parts):
        raise Damaged(f"the path {path!r} is not one a backup writes")
    return path


def typed(value: Any, types: tuple[type, ...], what: str) -> Any:
    """``value`` if it is of ``types`` (a bool is no int here); else raise Damaged naming ``what``."""
    if type(value) in types:  # JSON's own types: the usual case, in one test
        return value
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise Damaged(f"{what} is {type(value).__name__}, not {' or '.join(t.__name__ for t in types)}")
    return value


def written_file(path: object, size: object, sha256: object) -> WrittenFile:
    """A file's record as a manifest or journal gives it, checked (raises Damaged)."""
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise Damaged(f"the size of {path!r} is {size!r}, not a number of bytes")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise Damaged(f"the sha256 of {path!r} is {sha256!r}, not 64 hex digits")
    return WrittenFile(checked_path(path), size, sha256)


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
    def from_json(cls, doc: Any) -> FieldRecord:
        """Raises Damaged for a record of another shape than ours."""
        rec = dict(typed(doc, (dict,), "a field record"))
        kind = typed(rec.pop("type", None), (str,), "a field's type")
        status = rec.pop("status", None)
        if status not in ("ok", "failed"):
            raise Damaged(f"a field's status is {status!r}, not 'ok' or 'failed'")
        files = [checked_path(f) for f in typed(rec.pop("files", None), (list,), "a field's files")]
        error = typed(rec.pop("error", None), (str, type(None)), "a field's error")
        for key, types in _FACTS.items():
            if key in rec:
                typed(rec[key], types, f"a field's {key!r}")
        return cls(kind, status, files, error, rec)

    def check_files(self, files: dict[str, Any], path: str) -> None:
        """Raise Damaged unless ``files`` (paths recorded with a size and sha256) holds every
        file of this record but ``simple_metadata.json`` (its values are read from it by name)."""
        unlisted = [f for f in self.files if f not in files and f != SIMPLE_METADATA]
        if unlisted:
            raise Damaged(f"the field {path!r} names {unlisted[0]!r}, which has no size or sha256")


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
    def from_json(cls, doc: Any) -> Manifest:
        """The manifest ``doc`` holds; raises :class:`Damaged`, saying why, for anything but the
        shape a backup writes (docs/FORMAT.md), or a path that leaves the object folder."""
        typed(doc, (dict,), "the manifest")
        if doc.get("format") not in READABLE_FORMATS or isinstance(doc.get("format"), bool):
            raise Damaged(f"unknown manifest format {doc.get('format')!r}")
        if doc.get("kind") not in KINDS:
            raise Damaged(f"unknown kind of object {doc.get('kind')!r}")
        modified = typed(doc.get("modification_time"), (str, type(None)), "modification_time")
        try:
            when = domain.parse_iso(modified) if modified else None
        except ValueError:
            raise Damaged(f"modification_time {modified!r} is not a time") from None
        out = cls(
            kind=doc["kind"],
            project=typed(doc.get("project"), (str,), "project"),
            sys_id=typed(doc.get("sys_id"), (str,), "sys_id"),
            id=typed(doc.get("id"), (str,), "id"),
            modification_time=when,
            complete=typed(doc.get("complete"), (bool,), "complete"),
            field_filter=typed(doc.get("field_filter"), (dict, type(None)), "field_filter"),
            model_id=typed(doc.get("model_id"), (str, type(None)), "model_id"),
            format=doc["format"],
        )
        for path, f in typed(doc.get("files"), (dict,), "files").items():
            typed(f, (dict,), f"the record of {path!r}")
            out.files[path] = written_file(path, f.get("size"), f.get("sha256"))
        for path, rec in typed(doc.get("fields"), (dict,), "fields").items():
            record = FieldRecord.from_json(rec)
            record.check_files(out.files, path)
            out.fields[path] = record
        return out

    @classmethod
    def loads(cls, text: str) -> Manifest:
        return cls.from_json(json.loads(text))
