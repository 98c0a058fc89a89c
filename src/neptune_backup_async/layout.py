"""Where each thing lives in a backup: a pure mapping from Neptune names to relative paths.

This module is the on-disk contract of ``docs/FORMAT.md``. It does no I/O. Every name that
comes from the server passes through :func:`safe_segment`, which keeps ordinary names as
they are and percent-encodes anything that could escape the backup folder, clash with our
own files or be illegal on a common filesystem. The rule is injective (different names
never map to one path) and stable (the same name always maps to the same path).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import PurePosixPath

from .source import FieldType

SIMPLE_METADATA = "simple_metadata.json"
MANIFEST = ".manifest.json"  # a leading dot: no escaped server name can start with one
JOURNAL = ".journal.jsonl"  # fields saved by an unfinished backup of the run
REPORT = "backup-report.json"
IMAGE_INDEX = "index.json"
ARTIFACT_SUFFIX = ".artifact.json"
TEMP_SUFFIX = ".partial"
# Folders of a project beside its runs; no run folder starts with "_" (see object_segment).
PROJECT_FOLDER = "_project"
MODELS_FOLDER = "_models"
VERSIONS_FOLDER = "_versions"  # inside a model's folder; no field of the model maps onto it

MAX_SEGMENT_BYTES = 200  # below the 255-byte NAME_MAX of common filesystems, leaving room for suffixes

_ESCAPED = set('/\\:*?"<>|%') | {chr(c) for c in range(32)} | {"\x7f"}
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{i}" for p in ("COM", "LPT") for i in range(1, 10)}
# Names we write beside field files; a field that would map onto one of them is escaped.
_OURS = {SIMPLE_METADATA, MANIFEST, REPORT}


def _encode(char: str) -> str:
    return "".join(f"%{b:02X}" for b in char.encode("utf-8"))


_ORDINARY = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_\-.]{0,100}")


def safe_segment(name: str) -> str:
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
    if len(encoded) > MAX_SEGMENT_BYTES:
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]
        head = encoded[: MAX_SEGMENT_BYTES - 18].decode("utf-8", errors="ignore")
        out = f"{head}~{digest}"
    return out


def safe_path(field_path: str) -> PurePosixPath:
    """A Neptune field path (``a/b/c``) as a relative path of safe segments."""
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


def _with_suffix(path: PurePosixPath, suffix: str) -> PurePosixPath:
    name = path.name + suffix
    if name in _OURS:
        name = _encode(name[0]) + name[1:]
    return path.with_name(name)


class RunLayout:
    """Where each field of one run goes, with names that differ only in case told apart.

    On a case-insensitive filesystem (macOS, Windows) ``Loss.csv`` and ``loss.csv`` are one
    file. So within a run, when several field paths map to folders or files that are equal
    ignoring case, each one that is not all lower case gets ``~`` and the first 8 hex
    digits of the sha256 of its path appended to its last segment. The result depends
    only on the set of field paths of the run.
    """

    def __init__(self, field_paths: Iterable[str] = (), reserved: Iterable[str] = ()) -> None:
        """``reserved``: names of our own folders beside the fields, such as :data:`VERSIONS_FOLDER`."""
        taken = {name.casefold() for name in reserved}
        stems = {path: safe_path(path) for path in field_paths}
        for path, stem in stems.items():
            if stem.parts[0].casefold() in taken:  # escape its first character, as safe_segment would
                stems[path] = PurePosixPath(_encode(stem.parts[0][0]) + stem.parts[0][1:], *stem.parts[1:])
        groups: dict[str, list[str]] = {}
        for path, stem in stems.items():
            groups.setdefault(str(stem).casefold(), []).append(path)
        for clashing in groups.values():
            if len(clashing) > 1:
                for path in clashing:
                    if path != path.lower():
                        digest = hashlib.sha256(path.encode("utf-8")).hexdigest()[:8]
                        stems[path] = stems[path].with_name(f"{stems[path].name}~{digest}")
        self._stems = stems

    def stem(self, field_path: str) -> PurePosixPath:
        return self._stems.get(field_path) or safe_path(field_path)

    def field_file(self, field_path: str, field_type: FieldType, ext: str | None = None) -> PurePosixPath:
        """The file (or, for an image series, the folder) that holds one field, relative to its run.

        Simple values all share :data:`SIMPLE_METADATA`.
        """
        if field_type.is_simple:
            return PurePosixPath(SIMPLE_METADATA)
        base = self.stem(field_path)
        if field_type in (FieldType.FLOAT_SERIES, FieldType.STRING_SERIES):
            return _with_suffix(base, ".csv")
        if field_type is FieldType.FILE:
            return _with_suffix(base, f".{safe_segment(ext)}" if ext else "")
        if field_type is FieldType.FILE_SET:
            return _with_suffix(base, ".zip")
        if field_type is FieldType.ARTIFACT:
            return _with_suffix(base, ARTIFACT_SUFFIX)
        if field_type is FieldType.IMAGE_SERIES:
            return base
        raise ValueError(f"no layout for field type {field_type!r}")

    def image_file(self, field_path: str, index: int, ext: str) -> PurePosixPath:
        """One image of a file series: ``<path>/<index>.<ext>``, as the seed script wrote it."""
        return self.stem(field_path) / f"{index}.{safe_segment(ext)}"

    def image_index(self, field_path: str) -> PurePosixPath:
        return self.stem(field_path) / IMAGE_INDEX

    def artifact_file(self, field_path: str, file_path: str) -> PurePosixPath:
        """A downloaded artifact file: ``<path>/<its own path inside the artifact>``."""
        return self.stem(field_path).joinpath(*(safe_segment(p) for p in file_path.split("/")))


_PLAIN = RunLayout()
field_file = _PLAIN.field_file
image_file = _PLAIN.image_file
image_index = _PLAIN.image_index
artifact_file = _PLAIN.artifact_file


def report_name(shard_label: str | None = None) -> str:
    """``backup-report.json``, or ``backup-report.shard-K-of-N.json`` for a shard, so shards never share one."""
    return REPORT if shard_label is None else f"backup-report.{shard_label}.json"


def temp_name(path: PurePosixPath, token: str) -> PurePosixPath:
    """The temporary name a file is written under before it is renamed into place."""
    return path.with_name(f".{path.name}.{token}{TEMP_SUFFIX}")
