"""Where each thing lives in a backup: a pure mapping from Neptune names to relative paths.

This module is the on-disk contract of ``docs/FORMAT.md``. It does no I/O. Every name that
comes from the server passes through :func:`safe_segment`, which keeps ordinary names as
they are and percent-encodes anything that could escape the backup folder, clash with our
own files or be illegal on a common filesystem. The rule is injective (different names
never map to one path) and stable (the same name always maps to the same path).
"""

from __future__ import annotations

import hashlib
from pathlib import PurePosixPath

from .source import FieldType

SIMPLE_METADATA = "simple_metadata.json"
MANIFEST = ".manifest.json"  # a leading dot: no escaped server name can start with one
JOURNAL = ".journal.jsonl"  # fields saved by an unfinished backup of the run
REPORT = "backup-report.json"
IMAGE_INDEX = "index.json"
ARTIFACT_SUFFIX = ".artifact.json"
TEMP_SUFFIX = ".partial"

MAX_SEGMENT_BYTES = 200  # below the 255-byte NAME_MAX of common filesystems, leaving room for suffixes

_ESCAPED = set('/\\:*?"<>|%') | {chr(c) for c in range(32)} | {"\x7f"}
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{i}" for p in ("COM", "LPT") for i in range(1, 10)}
# Names we write beside field files; a field that would map onto one of them is escaped.
_OURS = {SIMPLE_METADATA, MANIFEST, REPORT}


def _encode(char: str) -> str:
    return "".join(f"%{b:02X}" for b in char.encode("utf-8"))


def safe_segment(name: str) -> str:
    """Map one name from the server to a file name that is safe on every common filesystem."""
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


def container_dir(workspace: str, project: str, sys_id: str) -> PurePosixPath:
    """``<workspace>/<project>/<RUN-ID>``, relative to the backup root."""
    return PurePosixPath(safe_segment(workspace), safe_segment(project), safe_segment(sys_id))


def project_dir(workspace: str, project: str) -> PurePosixPath:
    return PurePosixPath(safe_segment(workspace), safe_segment(project))


def _with_suffix(path: PurePosixPath, suffix: str) -> PurePosixPath:
    name = path.name + suffix
    if name in _OURS:
        name = _encode(name[0]) + name[1:]
    return path.with_name(name)


def field_file(field_path: str, field_type: FieldType, ext: str | None = None) -> PurePosixPath:
    """The file (or, for an image series, the folder) that holds one field, relative to its run.

    Simple values all share :data:`SIMPLE_METADATA`.
    """
    if field_type.is_simple:
        return PurePosixPath(SIMPLE_METADATA)
    base = safe_path(field_path)
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


def image_file(field_path: str, index: int, ext: str) -> PurePosixPath:
    """One image of a file series: ``<path>/<index>.<ext>``, as the seed script wrote it."""
    return safe_path(field_path) / f"{index}.{safe_segment(ext)}"


def image_index(field_path: str) -> PurePosixPath:
    return safe_path(field_path) / IMAGE_INDEX


def artifact_file(field_path: str, file_path: str) -> PurePosixPath:
    """A downloaded artifact file: ``<path>/<its own path inside the artifact>``."""
    return safe_path(field_path).joinpath(*(safe_segment(p) for p in file_path.split("/")))


def temp_name(path: PurePosixPath, token: str) -> PurePosixPath:
    """The temporary name a file is written under before it is renamed into place."""
    return path.with_name(f".{path.name}.{token}{TEMP_SUFFIX}")
