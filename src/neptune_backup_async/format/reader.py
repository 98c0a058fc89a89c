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
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from ..disk.files import WrittenFile
from ..disk.place import Place, destination_error
from ..domain import FieldInfo, FieldType
from ..errors import DamagedError, DestinationError, LayoutError
from . import layout, migration, values
from .manifest import FORMAT_VERSION, Damaged, FieldRecord, Manifest, written_file


class Action(enum.Enum):
    REUSE = "reuse"
    EXTEND = "extend"
    FETCH = "fetch"


def facts(info: FieldInfo, download_artifacts: bool) -> dict[str, object]:
    """What the listing says of a field that decides whether its copy is current."""
    if info.type in (FieldType.FLOAT_SERIES, FieldType.STRING_SERIES, FieldType.IMAGE_SERIES):
        if info.config:  # a float series' min, max and unit: kept, and a change is a change
            return {"last_step": info.last_step, "config": values.plain(info.config)}
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
    # What of its manifest and journal was damaged, and left out (see read_saved): the user is told.
    damage: list[Damage] = field(default_factory=list)

    @property
    def notices(self) -> list[str]:
        return [
            f"damaged {why}; it was not acted on, and what it stands for is fetched again"
            for why in self.damage
        ]

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


def journal_entry(entry: Any) -> tuple[str, FieldRecord, list[WrittenFile]]:
    """The field, record and files of one journal line; raises Damaged for another shape."""
    if not isinstance(entry, dict) or not isinstance(entry.get("field"), str):
        raise Damaged("not a journal entry of a field")
    record = FieldRecord.from_json(entry.get("record"))
    files = entry.get("files")
    if not isinstance(files, dict):
        raise Damaged("its files are not an object")
    written = []
    for rel, facts in files.items():
        if not isinstance(facts, list) or len(facts) != 2:
            raise Damaged(f"the record of {rel!r} is not [size, sha256]")
        written.append(written_file(rel, *facts))
    record.check_files(files, entry["field"])
    return entry["field"], record, written


@dataclass(frozen=True)
class Damage:
    """One file of an object folder (or one line of its journal) that is not of the shape a
    backup writes, or names a path outside the folder: nothing of it is acted on."""

    file: str  # ".manifest.json", ".journal.jsonl line 3"
    why: str

    def __str__(self) -> str:
        return f"{self.file}: {self.why}"


@dataclass
class Saved:
    """What an object folder's manifest and journal say, checked (see :func:`read_saved`)."""

    manifest: Manifest | None  # None: there is none, or it is damaged (see damage)
    manifest_bytes: bytes | None  # as on disk, damaged or not
    journal: list[dict[str, Any]] | None  # its entries of our shape; None: there is no journal
    journal_bytes: bytes
    damage: list[Damage] = field(default_factory=list)  # what was left out

    def merged(self, base: Manifest | None = None) -> Manifest | None:
        """The manifest with the fields the journal adds (not complete then); ``base`` in place of
        a missing manifest; None when there is neither manifest nor journal."""
        manifest = self.manifest or base
        if self.journal is None or manifest is None:
            return manifest
        manifest = replace(manifest, fields=dict(manifest.fields), files=dict(manifest.files))
        for entry in self.journal:
            path, record, files = journal_entry(entry)
            manifest.fields[path] = record
            for written in files:
                manifest.files[written.path] = written
        manifest.complete = False
        return manifest


def read_own(path: Path) -> bytes | None:
    """Blocking: the bytes of one of our files in an object folder, never through a symbolic
    link; None when it does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        return None
    except OSError as e:
        if path.is_symlink():
            raise Damaged("it is a symbolic link, which a backup never writes") from None
        raise e from None
    with os.fdopen(fd, "rb") as f:
        return f.read()


def _leaving(root: Path, paths: Iterable[str]) -> str | None:
    """Blocking: the first of ``paths`` that leads out of ``root`` through a symbolic link.

    Every object of a backup is read on every backup, so each folder costs one lstat, a file
    one only when named (the same file is named by many simple fields), and a path is only
    resolved when a link is met on its way: with none, it cannot leave ``root``, as the
    paths were checked to be relative and without ``..`` (see ``manifest.checked_path``)."""
    base = os.fspath(root)
    real = ""  # root resolved, once a link asks for it

    def within(path: str) -> bool:
        nonlocal real
        real = real or os.path.realpath(root)
        return os.path.commonpath([real, os.path.realpath(path)]) == real

    def is_link(path: str) -> bool:
        try:
            return stat.S_ISLNK(os.lstat(path).st_mode)
        except OSError:
            return False  # no such file: nothing to follow, as realpath takes it

    plain = {"": True}  # by folder below root: whether no link is on the way down to it
    inside = {"": True}

    def folder_inside(folder: str) -> bool:
        if folder not in inside:
            parent = os.path.dirname(folder)
            folder_inside(parent)
            path = os.path.join(base, folder)
            plain[folder] = plain[parent] and not is_link(path)
            inside[folder] = plain[folder] or within(path)
        return inside[folder]

    for rel in dict.fromkeys(paths):
        path = os.path.join(base, rel)
        if not folder_inside(os.path.dirname(rel)) or (is_link(path) and not within(path)):
            return rel
    return None


def read_saved(root: Path) -> Saved:
    """Blocking: the manifest and journal of the object folder ``root``, each checked before
    anything acts on it: of the shape a backup writes, and naming only paths inside ``root``,
    also once symbolic links are resolved. A damaged manifest is left out whole, a damaged
    journal line alone; ``damage`` says what and why. A journal's last line cut short by a
    crash is no damage: it is skipped."""
    damage: list[Damage] = []
    manifest, text = None, None
    try:
        text = read_own(root / layout.MANIFEST)
        if text is not None:
            manifest = Manifest.from_json(json.loads(text.decode("utf-8")))
            out = _leaving(root, [*manifest.files, *(f for r in manifest.fields.values() for f in r.files)])
            if out is not None:
                raise Damaged(f"the path {out!r} leads out of its object folder through a symbolic link")
    except ValueError as e:  # Damaged, and JSON or UTF-8 that does not parse
        manifest = None
        damage.append(Damage(layout.MANIFEST, str(e)))
    journal_bytes = b""
    entries: list[dict[str, Any]] | None = None
    try:
        raw = read_own(root / layout.JOURNAL)
    except Damaged as e:
        raw = None
        damage.append(Damage(layout.JOURNAL, str(e)))
    if raw is not None:
        journal_bytes, entries = raw, []
        for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), start=1):
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # cut short by a crash
            try:
                _, record, files = journal_entry(entry)
                out = _leaving(root, [*record.files, *(f.path for f in files)])
                if out is not None:
                    raise Damaged(f"the path {out!r} leads out of its object folder through a symbolic link")
            except Damaged as e:
                damage.append(Damage(f"{layout.JOURNAL} line {number}", str(e)))
                continue
            entries.append(entry)
    return Saved(manifest, text, entries, journal_bytes, damage)


def check_folder(root: Path, dest: Path) -> bool:
    """Blocking: whether the object folder ``root`` (below ``dest``) exists. Raises
    DamagedError when a file or a symbolic link is in its place or in the place of a folder
    above it: nothing there is followed, nor written."""
    here = os.fspath(dest)
    for part in root.relative_to(dest).parts:
        here = os.path.join(here, part)
        try:
            st = os.lstat(here)
        except FileNotFoundError:
            return False
        if stat.S_ISLNK(st.st_mode):
            raise DamagedError(
                f"{here} is a symbolic link, which a backup never writes: it is not followed. Move it out"
                " of the backup folder and run the backup again."
            )
        if not stat.S_ISDIR(st.st_mode):
            raise DamagedError(
                f"{here} is a file where a folder of the backup should be. Move it out of the backup folder"
                " and run the backup again."
            )
    return True


def _migrated(place: Place) -> Saved:
    """Bring a folder of an older format to this one (see :mod:`.migration`), or finish such a
    move that a crash cut short (blocking); what it holds then."""
    root = place.path
    try:
        if (root / layout.MIGRATION).exists():
            migration.finish(place)
        saved = read_saved(root)
        entries = saved.journal
        old_journal = bool(entries) and entries is not None and entries[0].get("format") != FORMAT_VERSION
        if (saved.manifest is not None and saved.manifest.format != FORMAT_VERSION) or old_journal:
            migration.migrate(place, saved.manifest, entries)
            saved = read_saved(root)
    except OSError as e:
        raise destination_error(e, root) or DestinationError(
            f"Could not move {root} to backup format {FORMAT_VERSION} ({e}). "
            "Run the backup again: it finishes the move."
        ) from None
    return saved


def load_previous(place: Place, *, dry_run: bool = False) -> Previous | None:
    """Read the manifest and journal of the object folder ``place`` (blocking); None when there
    is neither.

    A folder of an older format is first brought to this one, except in a dry run, which
    changes nothing. Raises DamagedError when something else is in the folder's place.
    """
    root = place.path
    try:
        if not check_folder(root, place.dest):
            return None
        saved = read_saved(root) if dry_run else _migrated(place)
    except OSError as e:
        raise destination_error(e, root) or DamagedError(
            f"Cannot read {root} ({e.strerror or e}). Check it, or move it out of the backup folder, and run"
            " the backup again."
        ) from None
    manifest = saved.merged(Manifest("run", "", root.name, "", None))
    if saved.manifest is None and saved.journal is None and not saved.damage:
        return None
    assert manifest is not None
    intact = set()
    base = os.fspath(root)
    for rel, written in manifest.files.items():
        with contextlib.suppress(OSError):
            st = os.lstat(os.path.join(base, rel))  # a symbolic link is no file of ours
            if stat.S_ISREG(st.st_mode) and st.st_size == written.size:
                intact.add(rel)
    return Previous(manifest, intact, saved.damage)
