"""Bringing an object folder of format 1 to format 2 (docs/FORMAT.md), safely across a crash.

Format 1 did not escape ``~`` and could give two fields one file; format 2 names some files
differently. The manifest and the journal keep every field's original path, so the new
name of each old file is known. The moves are planned, the plan is written (temp-then-
rename), every old file is moved to a temporary name, then each to its new name; the
manifest and journal, rewritten with the new names, are the last to change. Each step is a
rename, and the plan says which half was done, so the next backup finishes a migration
that a crash cut short. A folder is never left with files of both formats.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote

from ..disk.files import WrittenFile, write_whole
from ..disk.place import Place
from ..domain import FieldType
from ..errors import DamagedError, DestinationError, LayoutError
from . import layout
from .manifest import FORMAT_VERSION, Damaged, FieldRecord, Manifest, checked_path

_STAGED = ".migrating-"  # an old file between its two names: ".migrating-<n>" in the object folder


def new_names(
    fields: dict[str, FieldRecord], paths: layout.RunLayout, inner_paths: Callable[[str], list[str]]
) -> dict[str, str]:
    """Pure: the name in ``paths`` of every file the records list (``old -> new``).

    ``inner_paths``: the file paths inside an artifact, from its ``.artifact.json`` (by name).
    Raises LayoutError or ValueError when a record cannot be mapped.
    """
    moves: dict[str, str] = {}
    for path, record in fields.items():
        kind = FieldType(record.type)
        if kind.is_simple or not record.files:
            continue
        if kind is FieldType.IMAGE_SERIES:
            new = []
            for old in record.files:
                name = PurePosixPath(old).name
                if name == layout.IMAGE_INDEX:
                    new.append(paths.image_index(path))
                else:
                    index, _, ext = name.partition(".")
                    new.append(paths.image_file(path, int(index), unquote(ext)))
        elif kind is FieldType.ARTIFACT:
            downloaded = record.files[1:]
            inner = inner_paths(record.files[0]) if downloaded else []
            if len(inner) != len(downloaded):
                raise ValueError(
                    f"{record.files[0]} lists {len(inner)} files, the manifest {len(downloaded)}"
                )
            new = [paths.field_file(path, kind), *paths.artifact_files(path, inner)]
        else:
            new = [paths.field_file(path, kind, record.extra.get("ext"))]
        moves.update(zip(record.files, (n.as_posix() for n in new), strict=True))
    return moves


def _renamed(record: FieldRecord, moves: dict[str, str]) -> FieldRecord:
    return FieldRecord(
        record.type, record.status, [moves.get(f, f) for f in record.files], record.error, record.extra
    )


def _manifest_text(manifest: Manifest) -> str:
    return json.dumps(manifest.to_json(), sort_keys=True, ensure_ascii=False, allow_nan=False)


def migrate(place: Place, manifest: Manifest | None, entries: list[dict[str, Any]] | None) -> None:
    """Move the folder ``place``, whose manifest and journal entries are given, to format 2 (blocking).

    Raises DestinationError, saying what to do, when it cannot be done.
    """
    root = place.path
    saved = dict(manifest.fields) if manifest is not None else {}
    journal = [
        e for e in entries or () if isinstance(e.get("record"), dict) and isinstance(e.get("files"), dict)
    ]
    journaled = [(str(entry["field"]), FieldRecord.from_json(entry["record"])) for entry in journal]
    # Format 1 could give two fields one file: neither copy can be trusted, so both are
    # dropped (the file too), and fetched again by the backup that follows.
    owners: dict[str, set[str]] = {}
    for path, record in [*saved.items(), *journaled]:
        for rel in record.files:
            if rel != layout.SIMPLE_METADATA:
                owners.setdefault(rel, set()).add(path)
    lost = {path for paths in owners.values() if len(paths) > 1 for path in paths}
    drop = sorted(
        {rel for path, record in [*saved.items(), *journaled] if path in lost for rel in record.files}
    )
    everything = [*saved, *(p for p, _ in journaled)]
    saved = {p: r for p, r in saved.items() if p not in lost}
    fields = {**saved, **{p: r for p, r in journaled if p not in lost}}
    kind = (
        manifest.kind
        if manifest is not None
        else ("model" if root.parent.name == layout.MODELS_FOLDER else "")
    )
    reserved = (layout.VERSIONS_FOLDER,) if kind == "model" else ()

    def inner_paths(listing: str) -> list[str]:
        doc = json.loads((root / listing).read_text(encoding="utf-8"))
        return [str(f["path"]) for f in doc["files"]]

    try:
        # Laid out with every field, the lost ones too, as the next backup will lay them out.
        simple = {p for p, r in [*saved.items(), *journaled] if r.files == [layout.SIMPLE_METADATA]}
        paths = layout.RunLayout((p for p in dict.fromkeys(everything) if p not in simple), reserved)
        moves = new_names(fields, paths, inner_paths)
        if manifest is not None:  # files of records the journal replaced keep their place in the manifest
            moves = {**new_names(saved, paths, inner_paths), **moves}
    except (LayoutError, ValueError, KeyError, TypeError, OSError) as e:
        raise DestinationError(
            f"{root} holds a backup of format 1 that cannot be moved to format {FORMAT_VERSION} ({e}). "
            "Move that folder out of the backup and run the backup again."
        ) from None
    plan: dict[str, Any] = {
        "moves": [*sorted([o, n] for o, n in moves.items() if o != n), *([o, None] for o in drop)],
        "staged": False,
    }
    if manifest is not None:
        migrated = Manifest(
            manifest.kind, manifest.project, manifest.sys_id, manifest.id, manifest.modification_time,
            {p: _renamed(r, moves) for p, r in saved.items()},
            {moves.get(p, p): WrittenFile(moves.get(p, p), f.size, f.sha256) for p, f in manifest.files.items() if p not in drop},
            manifest.complete and not lost, manifest.field_filter, manifest.model_id,
        )  # fmt: skip
        plan["manifest"] = _manifest_text(migrated)
    if entries is not None:
        lines = []
        for entry in journal:
            if entry["field"] in lost:
                continue
            record = _renamed(FieldRecord.from_json(entry["record"]), moves)
            files = {moves.get(p, p): v for p, v in entry["files"].items()}
            lines.append(
                {
                    "format": FORMAT_VERSION,
                    "field": entry["field"],
                    "record": record.to_json(),
                    "files": files,
                }
            )
        plan["journal"] = "".join(
            json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n" for line in lines
        )
    _write_plan(place, plan)
    finish(place)


def _write(place: Place, name: str, text: str) -> None:
    write_whole(place, PurePosixPath(name), text.encode("utf-8"))


def _write_plan(place: Place, plan: dict[str, Any]) -> None:
    _write(place, layout.MIGRATION, json.dumps(plan, ensure_ascii=False, sort_keys=True))


def _read_plan(place: Place) -> dict[str, Any]:
    """The plan in ``place``, checked: each name a path inside the folder (blocking). Raises
    DamagedError for anything but a plan of ours: nothing of it is carried out."""
    path = place.path / layout.MIGRATION
    try:
        plan = json.loads(place.read(layout.MIGRATION))
        if not isinstance(plan, dict) or not isinstance(plan.get("moves"), list):
            raise Damaged("it holds no list of moves")
        for move in plan["moves"]:
            if not isinstance(move, list) or len(move) != 2:
                raise Damaged(f"{move!r} is not a move")
            checked_path(move[0])
            if move[1] is not None:
                checked_path(move[1])
        for key, types in (
            ("staged", (bool,)),
            ("manifest", (str, type(None))),
            ("journal", (str, type(None))),
        ):
            if not isinstance(plan.get(key), types):
                raise Damaged(f"its {key!r} is not of the shape a backup writes")
    except ValueError as e:  # Damaged, and JSON that does not parse
        raise DamagedError(
            f"{path} is damaged ({e}): the move of that folder to backup format {FORMAT_VERSION} cannot be"
            " finished. Move the folder out of the backup folder and run the backup again."
        ) from None
    return plan


def finish(place: Place) -> None:
    """Carry out the plan in ``place`` (blocking); safe to call again after a crash at any point.

    Every name in the plan stays inside ``place`` and no link is followed (see :class:`Place`)."""
    plan = _read_plan(place)
    moves = plan["moves"]
    if not plan["staged"]:
        # Every old file to a temporary name first, so that a new name that is another
        # file's old one (a swap) never overwrites it.
        for number, (old, _) in enumerate(moves):
            with contextlib.suppress(FileNotFoundError):  # moved before a crash, or lost before
                place.replace(old, place, f"{_STAGED}{number}")
        plan["staged"] = True
        _write_plan(place, plan)
    for number, (_, new) in enumerate(moves):
        with contextlib.suppress(FileNotFoundError):
            if new is None:  # dropped
                place.unlink(f"{_STAGED}{number}")
            else:
                place.replace(f"{_STAGED}{number}", place, new)
    if plan.get("manifest") is not None:
        _write(place, layout.MANIFEST, plan["manifest"])
    if plan.get("journal") is not None:
        _write(place, layout.JOURNAL, plan["journal"])
    for old, _ in moves:  # folders the old names left empty
        for folder in PurePosixPath(old).parents:
            if folder != PurePosixPath("."):
                with contextlib.suppress(OSError):
                    place.rmdir(folder)
    place.unlink(layout.MIGRATION)
