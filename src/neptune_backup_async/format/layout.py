"""Where each thing lives in a backup: a pure mapping from Neptune names to relative paths.

This module is the on-disk contract of ``docs/FORMAT.md`` (format 2). It does no I/O.
Every name that comes from the server passes through :func:`safe_segment`, which keeps
ordinary names as they are and percent-encodes anything that could escape the backup
folder or be illegal on a common filesystem, ``%`` and ``~`` included. So ``~`` in a
backup is always ours: it starts a hash that tells apart names that would otherwise
meet, which no name from the server can imitate.

Within one object folder, :class:`RunLayout` looks at the fields as a tree and, in each
folder, marks with ``~<hash>`` every name that would meet a sibling: on a case-insensitive
filesystem, or once we add our suffix (``loss`` + ``.csv`` against a field ``loss.csv``).
The result is injective, even ignoring case, and depends only on the set of field paths.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Collection, Iterable
from pathlib import PurePosixPath

from ..domain import FieldType
from ..errors import LayoutError

SIMPLE_METADATA = "simple_metadata.json"
MANIFEST = ".manifest.json"  # a leading dot: no escaped server name can start with one
JOURNAL = ".journal.jsonl"  # fields saved by an unfinished backup of the run
MIGRATION = ".migration.json"  # an object folder being brought to this format (see migration.py)
REPORT = "backup-report.json"
IMAGE_INDEX = "index.json"
ARTIFACT_SUFFIX = ".artifact.json"
NOTEBOOK_SUFFIX = ".ipynb"  # a notebook ref's checkpoint, beside the ref in simple_metadata.json
# Folders of a project beside its runs; no run folder starts with "_" (see object_segment).
PROJECT_FOLDER = "_project"
MODELS_FOLDER = "_models"
VERSIONS_FOLDER = "_versions"  # inside a model's folder; no field of the model maps onto it

MAX_SEGMENT_BYTES = 200  # below the 255-byte NAME_MAX of common filesystems, leaving room for suffixes
MAX_EXT_BYTES = 32  # a name, a mark and an extension stay within NAME_MAX
MARK = "~"  # escaped in every name from the server, so only we write it
_MARK_HEX = 8

_ESCAPED = set('/\\:*?"<>|%' + MARK) | {chr(c) for c in range(32)} | {"\x7f"}
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{i}" for p in ("COM", "LPT") for i in range(1, 10)}
# Names we write beside field files; a field file that would take one of them is escaped.
_OURS = {SIMPLE_METADATA, MANIFEST, REPORT}


def _encode(char: str) -> str:
    return "".join(f"%{b:02X}" for b in char.encode("utf-8"))


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def fold(name: str) -> str:
    """A name as a case-insensitive filesystem compares it (case and Unicode normal form)."""
    return unicodedata.normalize("NFC", name.casefold())


_ORDINARY = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_\-.]{0,100}")


def safe_segment(name: str, max_bytes: int = MAX_SEGMENT_BYTES) -> str:
    """Map one name from the server to a file name that is safe on every common filesystem."""
    if _ORDINARY.fullmatch(name) and name[-1] != "." and name.split(".")[0].upper() not in _WINDOWS_RESERVED:
        return name  # the common case, and the hot one: nothing to encode
    if name == "":
        return "%"  # "%" alone cannot come out of encoding a non-empty name
    out = "".join(_encode(c) if c in _ESCAPED else c for c in name)
    # A leading dot would hide the file, or make "." and ".."; a trailing dot or space is
    # dropped by Windows.
    if out[0] in ". ":
        out = _encode(out[0]) + out[1:]
    if out[-1] in ". ":
        out = out[:-1] + _encode(out[-1])
    if out.split(".")[0].upper() in _WINDOWS_RESERVED:
        out = _encode(out[0]) + out[1:]
    encoded = out.encode("utf-8")
    if len(encoded) > max_bytes:
        # The hash is of the whole name; "~" marks it as ours, so no plain name can equal it.
        head = encoded[: max_bytes - 17].decode("utf-8", errors="ignore")
        out = f"{head}{MARK}{_digest(name, 16)}"
    return out


def safe_path(field_path: str) -> PurePosixPath:
    """A path (``a/b/c``) as a relative path of safe segments, each alone (no sibling marks)."""
    return PurePosixPath(*(safe_segment(part) for part in field_path.split("/")))


def object_segment(sys_id: str) -> str:
    """A run, model or version folder name; a leading "_" is escaped, keeping "_..." for our folders."""
    out = safe_segment(sys_id)
    return _encode("_") + out[1:] if out.startswith("_") else out


def container_dir(
    workspace: str, project: str, sys_id: str, kind: str = "run", model_id: str | None = None
) -> PurePosixPath:
    """The folder of one object, relative to the backup root.

    A run: ``<ws>/<project>/<RUN-ID>``; the project's own fields: ``<ws>/<project>/_project``;
    a model: ``<ws>/<project>/_models/<MODEL-ID>``; a model version:
    ``<ws>/<project>/_models/<MODEL-ID>/_versions/<VERSION-ID>``.
    """
    base = project_dir(workspace, project)
    if kind == "run":
        return base / object_segment(sys_id)
    if kind == "project":
        return base / PROJECT_FOLDER
    if kind == "model":
        return base / MODELS_FOLDER / object_segment(sys_id)
    if kind == "modelVersion" and model_id is not None:
        return base / MODELS_FOLDER / object_segment(model_id) / VERSIONS_FOLDER / object_segment(sys_id)
    raise ValueError(f"no folder for a {kind!r} (model {model_id!r})")


def project_dir(workspace: str, project: str) -> PurePosixPath:
    return PurePosixPath(safe_segment(workspace), safe_segment(project))


# One name in one folder: the original segments up to it, and whether it is a field (a leaf,
# to which we add suffixes) rather than a folder of fields.
_Entry = tuple[tuple[str, ...], bool]


def _mark(entry: _Entry) -> str:
    key, leaf = entry
    # A field and a folder of the same path (possible only outside Neptune) get different marks.
    return MARK + _digest("/".join(key) + ("" if leaf else "/"), _MARK_HEX)


def _names(entries: Collection[_Entry], reserved: Collection[str], suffixed: bool) -> dict[_Entry, str]:
    """The name of each entry of one folder, so that no two meet, even ignoring case.

    Names equal ignoring case are marked, except one that is its own folded form (a folder
    before a field of that name). With ``suffixed``, a field ``n`` owns every ``n.<anything>``
    (its file ``n.csv``, ``n.<ext>``, ...), so a sibling named ``n.<anything>`` is marked.
    A mark holds ``~``, which no suffix and no plain name has, so marking settles it.
    """
    names = {e: safe_segment(e[0][-1]) for e in entries}
    folded = {e: fold(name) for e, name in names.items()}
    groups: dict[str, list[_Entry]] = {}
    for entry, key in folded.items():
        groups.setdefault(key, []).append(entry)
    for key, group in groups.items():
        if len(group) > 1:
            plain = [e for e in group if names[e] == key]
            keep = min(plain, key=lambda e: e[1]) if plain else None
            for entry in group:
                if entry != keep:
                    names[entry] += _mark(entry)
                    folded[entry] = fold(names[entry])
    if suffixed:
        owners = {folded[e] for e in names if e[1]}
        for entry, key in folded.items():
            if any(key[i] == "." and key[:i] in owners and MARK not in key[i:] for i in range(1, len(key))):
                names[entry] += _mark(entry)
    if reserved:
        reserved_folded = {fold(r) for r in reserved}
        for entry, name in names.items():
            if fold(name) in reserved_folded:
                names[entry] = _encode(name[0]) + name[1:]
    return names


def tree(
    paths: Iterable[str], *, suffixed: bool = True, reserved: Collection[str] = ()
) -> dict[str, PurePosixPath]:
    """Where each ``/``-separated path goes, each folder's names resolved by :func:`_names`.

    ``reserved``: names of our own beside the top-level names (such as ``_versions``); a
    name equal to one ignoring case gets its first character encoded.
    """
    folders: dict[tuple[str, ...], set[_Entry]] = {}
    split = {path: tuple(path.split("/")) for path in paths}
    for parts in split.values():
        for i in range(1, len(parts) + 1):
            folders.setdefault(parts[: i - 1], set()).add((parts[:i], i == len(parts)))
    named: dict[_Entry, str] = {}
    for parent, entries in folders.items():
        named.update(_names(entries, reserved if parent == () else (), suffixed))
    return {
        path: PurePosixPath("/".join(named[parts[:i], i == len(parts)] for i in range(1, len(parts) + 1)))
        for path, parts in split.items()
    }


def _with_suffix(path: PurePosixPath, suffix: str) -> PurePosixPath:
    name = path.name + suffix
    if fold(name) in _OURS:
        name = _encode(name[0]) + name[1:]
    return path.with_name(name)


class RunLayout:
    """Where each field of one object goes (see :func:`tree`).

    It also refuses, as a last line of defence, to hand one path (ignoring case) to two
    fields, or a file's path to a folder: :class:`LayoutError` then fails that field.
    """

    def __init__(self, field_paths: Iterable[str] = (), reserved: Iterable[str] = ()) -> None:
        """``reserved``: names of our own folders beside the fields, such as :data:`VERSIONS_FOLDER`."""
        self._reserved = tuple(reserved)
        self._stems = tree(field_paths, reserved=(SIMPLE_METADATA, *self._reserved))
        self._files: dict[str, tuple[str, str]] = {}  # folded path -> (field, path)
        self._folders: dict[str, str] = {}  # folded path -> path

    def stem(self, field_path: str) -> PurePosixPath:
        stem = self._stems.get(field_path)
        if stem is None:
            stem = tree([field_path], reserved=(SIMPLE_METADATA, *self._reserved))[field_path]
        return stem

    def claim(self, field_path: str, rel: PurePosixPath) -> PurePosixPath:
        """Record that ``rel`` holds ``field_path``; raise LayoutError if it meets another field's."""
        path = rel.as_posix()
        folded = fold(path)
        folders = [(path[:i], fold(path[:i])) for i, c in enumerate(path) if c == "/"]
        for folder, key in folders:
            if self._folders.get(key, folder) != folder:
                self._refuse(field_path, rel, f"the folder {self._folders[key]}")
            if key in self._files:
                self._refuse(field_path, rel, self._files[key][0])
        if folded in self._folders:
            self._refuse(field_path, rel, f"the folder {self._folders[folded]}")
        owner, _ = self._files.get(folded, (field_path, path))
        if owner != field_path:
            self._refuse(field_path, rel, owner)
        self._files[folded] = (field_path, path)
        for folder, key in folders:
            self._folders[key] = folder
        return rel

    def _refuse(self, field_path: str, rel: PurePosixPath, other: str) -> None:
        raise LayoutError(
            f"{field_path!r} would be saved as {rel}, which meets {other!r} (ignoring case); "
            "it was not saved. Please report this as a bug of neptune-backup-async."
        )

    def field_file(self, field_path: str, field_type: FieldType, ext: str | None = None) -> PurePosixPath:
        """The file (or, for an image series, the folder) that holds one field, relative to its run.

        Simple values all share :data:`SIMPLE_METADATA`.
        """
        if field_type.is_simple:
            return PurePosixPath(SIMPLE_METADATA)
        base = self.stem(field_path)
        if field_type in (FieldType.FLOAT_SERIES, FieldType.STRING_SERIES):
            return self.claim(field_path, _with_suffix(base, ".csv"))
        if field_type is FieldType.FILE:
            suffix = f".{safe_segment(ext, MAX_EXT_BYTES)}" if ext else ""
            return self.claim(field_path, _with_suffix(base, suffix))
        if field_type is FieldType.FILE_SET:
            return self.claim(field_path, _with_suffix(base, ".zip"))
        if field_type is FieldType.ARTIFACT:
            return self.claim(field_path, _with_suffix(base, ARTIFACT_SUFFIX))
        if field_type is FieldType.IMAGE_SERIES:
            return base
        raise ValueError(f"no layout for field type {field_type!r}")

    def notebook_file(self, field_path: str) -> PurePosixPath:
        """The checkpoint a notebook ref names: ``<path>.ipynb`` (the ref itself is a simple value)."""
        return self.claim(field_path, _with_suffix(self.stem(field_path), NOTEBOOK_SUFFIX))

    def image_file(self, field_path: str, index: int, ext: str) -> PurePosixPath:
        """One image of a file series: ``<path>/<index>.<ext>``, as the seed script wrote it."""
        return self.claim(field_path, self.stem(field_path) / f"{index}.{safe_segment(ext, MAX_EXT_BYTES)}")

    def image_index(self, field_path: str) -> PurePosixPath:
        return self.claim(field_path, self.stem(field_path) / IMAGE_INDEX)

    def artifact_files(self, field_path: str, file_paths: Iterable[str]) -> list[PurePosixPath]:
        """Downloaded artifact files: ``<path>/<each one's own path inside the artifact>``."""
        paths = list(file_paths)
        inside = tree(paths, suffixed=False)
        return [self.claim(field_path, self.stem(field_path) / inside[p]) for p in paths]

    def files_of(self, field_path: str, field_type: str, files: list[str], ext: str | None) -> bool:
        """Whether ``files``, an earlier record of the field, are where this layout puts it."""
        try:
            kind = FieldType(field_type)
        except ValueError:
            return False
        if files == [SIMPLE_METADATA]:
            return kind.is_simple  # a notebook ref's too, when its checkpoint was not saved
        if not files or (kind.is_simple and kind is not FieldType.NOTEBOOK_REF):
            return False
        stem = self.stem(field_path)
        try:
            if kind is FieldType.NOTEBOOK_REF:
                return files == [self.notebook_file(field_path).as_posix()]
            if kind is FieldType.IMAGE_SERIES:
                return all(PurePosixPath(f).parent == stem for f in files)
            if kind is FieldType.ARTIFACT:
                return files[0] == self.field_file(field_path, kind).as_posix() and all(
                    PurePosixPath(f).is_relative_to(stem) for f in files[1:]
                )
            return files == [self.field_file(field_path, kind, ext).as_posix()]
        except LayoutError:
            return False  # fetched again, and refused then, against the field


def field_file(field_path: str, field_type: FieldType, ext: str | None = None) -> PurePosixPath:
    """Where a field goes in an object folder that holds only it."""
    return RunLayout([field_path]).field_file(field_path, field_type, ext)


def image_file(field_path: str, index: int, ext: str) -> PurePosixPath:
    return RunLayout([field_path]).image_file(field_path, index, ext)


def notebook_file(field_path: str) -> PurePosixPath:
    return RunLayout([field_path]).notebook_file(field_path)


def image_index(field_path: str) -> PurePosixPath:
    return RunLayout([field_path]).image_index(field_path)


def artifact_file(field_path: str, file_path: str) -> PurePosixPath:
    return RunLayout([field_path]).artifact_files(field_path, [file_path])[0]


def report_name(shard_label: str | None = None) -> str:
    """``backup-report.json``, or ``backup-report.shard-K-of-N.json`` for a shard, so shards never share one."""
    return REPORT if shard_label is None else f"backup-report.{shard_label}.json"
