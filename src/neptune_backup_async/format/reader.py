"""What an earlier backup of a run left, and which fields need fetching again.

An earlier backup leaves a manifest (if it finished the run) and a journal (if it was
interrupted while saving fields). Together they say what each field looked like when it
was saved. :func:`plan` compares that with the attribute listing: an unchanged field is
reused, a series or image series that only grew is extended, anything else is fetched.
Files, file sets and image series have no checksum in Neptune's listing, so they are
compared by what it does give: name, extension, size, last step and count.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..disk.files import WrittenFile
from ..disk.place import Place, destination_error
from ..domain import FieldInfo, FieldType
from ..errors import DestinationError, LayoutError
from . import layout, migration
from .manifest import FORMAT_VERSION, FieldRecord, Manifest


class Action(enum.Enum):
    REUSE = "reuse"
    EXTEND = "extend"
    FETCH = "fetch"


def facts(info: FieldInfo, download_artifacts: bool) -> dict[str, object]:
    """What the listing says of a field that decides whether its copy is current."""
    if info.type in (FieldType.FLOAT_SERIES, FieldType.STRING_SERIES, FieldType.IMAGE_SERIES):
        return {"last_step": info.last_step}
    if info.type is FieldType.FILE:
        return {"name": info.value, "ext": info.ext, "size": info.size}
    if info.type is FieldType.FILE_SET:
        return {"size": info.size}
    if info.type is FieldType.ARTIFACT:
        return {"hash": info.value, "downloaded": download_artifacts}
    if info.type is FieldType.NOTEBOOK_REF:  # a checkpoint never changes: a new one has a new id
        return {"checkpoint_id": checkpoint_id(info)}
    return {}


def checkpoint_id(info: FieldInfo) -> str | None:
    """The checkpoint a notebook ref names, or None (no ref, or one without a checkpoint)."""
    ref = info.value if info.type is FieldType.NOTEBOOK_REF else None
    found = ref.get("checkpoint_id") if isinstance(ref, dict) else None
    return found if isinstance(found, str) and found else None


def plan(info: FieldInfo, previous: FieldRecord | None, intact: bool, download_artifacts: bool) -> Action:
    # A stale copy (kept when the last backup failed the field) is fetched again, whole.
    if previous is None or previous.failure is not None or previous.type != info.type.value or not intact:
        return Action.FETCH
    now = facts(info, download_artifacts)
    before = {k: previous.extra.get(k) for k in now}
    if info.type is FieldType.ARTIFACT and before["hash"] == now["hash"] and before["downloaded"]:
        return Action.REUSE  # what was downloaded once still serves a listing-only backup
    if before == now:
        return Action.REUSE
    grown = info.type in (FieldType.FLOAT_SERIES, FieldType.STRING_SERIES, FieldType.IMAGE_SERIES)
    old, new = before.get("last_step"), now.get("last_step")
    if grown and isinstance(old, (int, float)) and isinstance(new, (int, float)) and new > old:
        return Action.EXTEND
    return Action.FETCH


def decide(
    info: FieldInfo,
    previous: Previous | None,
    *,
    full: bool,
    download_artifacts: bool,
    paths: layout.RunLayout | None = None,
) -> tuple[Action, FieldRecord | None]:
    """What to do with one field, given the earlier backup; and that backup's record of it.

    ``paths``: this backup's layout; a copy that is not where it puts the field (another field
    now meets its old name) is fetched again, into its new place.
    """
    prev = previous.record(info.path) if previous is not None else None
    if full:
        return Action.FETCH, prev
    intact = prev is not None and previous is not None and previous.is_intact(prev)
    if intact and paths is not None and prev is not None:
        intact = paths.files_of(info.path, prev.type, prev.files, prev.extra.get("ext"))
    return plan(info, prev, intact, download_artifacts), prev


def layout_for(
    fields: Iterable[FieldInfo], previous: Previous | None, reserved: tuple[str, ...]
) -> layout.RunLayout:
    """The layout of one object: of the fields listed now and of those an earlier backup saved
    (kept when gone), so a field that disappears never moves another. The files of fields kept
    but not listed are claimed first: a new field that would meet one fails instead."""
    # A notebook ref's checkpoint is a file of its own (.ipynb), beside its simple value.
    listed = {f.path for f in fields if not f.type.is_simple or f.type is FieldType.NOTEBOOK_REF}
    old = previous.manifest.fields if previous is not None else {}
    kept = {p: r for p, r in old.items() if p not in listed and r.files != [layout.SIMPLE_METADATA]}
    paths = layout.RunLayout([*listed, *kept], reserved)
    for path, record in kept.items():
        for rel in record.files:
            with contextlib.suppress(LayoutError):  # an old clash among kept files: nothing to guard
                paths.claim(path, PurePosixPath(rel))
    return paths


@dataclass
class Previous:
    """An earlier backup's view of one run folder."""

    manifest: Manifest
    intact: set[str]  # files on disk with the recorded size

    def record(self, path: str) -> FieldRecord | None:
        return self.manifest.fields.get(path)

    def is_intact(self, record: FieldRecord) -> bool:
        return all(f in self.intact for f in record.files)

    def unchanged_since(self, modification_time: object, field_filter: dict[str, object] | None) -> bool:
        """Complete, saved with the same field filter, and not modified in Neptune since."""
        m = self.manifest
        return (
            m.complete
            and m.modification_time is not None
            and m.modification_time == modification_time
            and m.field_filter == field_filter
        )


def journal_line(path: str, record: FieldRecord, files: list[WrittenFile]) -> str:
    entry = {
        "format": FORMAT_VERSION,
        "field": path,
        "record": record.to_json(),
        "files": {f.path: [f.size, f.sha256] for f in files},
    }
    return json.dumps(entry, ensure_ascii=False, allow_nan=False, sort_keys=True) + "\n"


def _journal_entries(root: Path) -> list[dict[str, Any]] | None:
    """The journal's entries (blocking), without a last line cut short by a crash; None when there is none."""
    try:
        lines = (root / layout.JOURNAL).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None
    entries = []
    for line in lines:
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict):
                entries.append(entry)
    return entries


def merge_journal(manifest: Manifest, root: Path) -> bool:
    """Add the fields an unfinished backup journaled to ``manifest`` (blocking); True if there was a journal."""
    entries = _journal_entries(root)
    if entries is None:
        return False
    for entry in entries:
        try:
            record = FieldRecord.from_json(entry["record"])
            files = [WrittenFile(rel, size, sha) for rel, (size, sha) in entry["files"].items()]
        except (ValueError, KeyError, TypeError):
            continue
        manifest.fields[entry["field"]] = record
        for written in files:
            manifest.files[written.path] = written
    manifest.complete = False
    return True


def _read_manifest(root: Path) -> Manifest | None:
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError, TypeError):
        return Manifest.loads((root / layout.MANIFEST).read_text(encoding="utf-8"))
    return None


def _up_to_date(place: Place) -> Manifest | None:
    """Bring a folder of an older format to this one (see :mod:`.migration`), or finish such a
    move that a crash cut short (blocking); its manifest."""
    root = place.path
    if (root / layout.MIGRATION).exists():
        migration.finish(place)
    manifest = _read_manifest(root)
    entries = _journal_entries(root)
    old_journal = entries is not None and bool(entries) and entries[0].get("format") != FORMAT_VERSION
    if (manifest is not None and manifest.format != FORMAT_VERSION) or old_journal:
        migration.migrate(place, manifest, entries)
        manifest = _read_manifest(root)
    return manifest


def load_previous(place: Place, *, dry_run: bool = False) -> Previous | None:
    """Read the manifest and journal of a run folder (blocking); None when there is neither.

    A folder of an older format is first brought to this one, except in a dry run, which
    changes nothing.
    """
    root = place.path
    if dry_run:
        manifest = _read_manifest(root)
    else:
        try:
            manifest = _up_to_date(place)
        except OSError as e:
            raise destination_error(e, root) or DestinationError(
                f"Could not move {root} to backup format {FORMAT_VERSION} ({e}). "
                "Run the backup again: it finishes the move."
            ) from None
    found = manifest is not None
    if manifest is None:
        manifest = Manifest("run", "", root.name, "", None)
    found = merge_journal(manifest, root) or found
    if not found:
        return None
    intact = set()
    for rel, written in manifest.files.items():
        with contextlib.suppress(OSError):
            if os.stat(root / rel).st_size == written.size:
                intact.add(rel)
    return Previous(manifest, intact)
