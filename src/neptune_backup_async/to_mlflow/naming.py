"""MLflow names for Neptune fields: one injective rule per object (pure; docs/MLFLOW.md).

MLflow accepts metric, param and tag keys of at most 250 characters made of word
characters, ``/ . - :`` and spaces, that do not change under ``posixpath.normpath``; its
artifact paths become file names. A Neptune field path is kept as it is when it already
fits (with no ``:``, which Windows forbids in file names; ``monitoring/`` becomes
``system/`` first, see ``placed``), and otherwise changed by this rule:

- in each ``/``-separated segment, a character MLflow rejects becomes ``_``; an empty
  segment, ``.`` or ``..`` becomes ``_``; a segment longer than 180 bytes of UTF-8 is cut;
- a first segment that starts with ``mlflow`` or ``neptune`` (any case) gets a leading
  ``_``, keeping MLflow's system tags and our ``neptune/`` artifacts apart;
- every changed name ends with ``-`` and the first 16 hex digits of the sha256 of the
  original field path, cut before that to fit in 250 characters.

Within one object, names that would clash (equal ignoring case, as on a case-insensitive
database or file system, or whose artifacts would land on one path) are told apart the
same way: all but the first of them, by (not all lower case, path), get the hash too. The
result depends only on the object's set of field paths, and ``fields.json`` keeps it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from ..loading import names

MAX_KEY = 250  # MAX_ENTITY_KEY_LENGTH of MLflow
MAX_SEGMENT_BYTES = 180  # leaves room for the hash and an artifact suffix below NAME_MAX (255)
RESERVED_PREFIXES = ("mlflow", "neptune")
MONITORING, SYSTEM = "monitoring/", "system/"
TAG_PREFIX = "neptune.tag."  # one MLflow tag per Neptune tag, so runs can be searched by them
OWN_FOLDER = "neptune"  # our own artifacts: neptune/fields.json and the like

_ALLOWED = re.compile(r"[\w.\- ]")
_ORDINARY = re.compile(r"[\w.\- ]+")


def _cut(segment: str, limit: int) -> str:
    return segment.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


def clean_segment(segment: str) -> str:
    if segment in ("", ".", ".."):
        return "_"
    out = (
        segment if _ORDINARY.fullmatch(segment) else "".join(c if _ALLOWED.match(c) else "_" for c in segment)
    )
    return _cut(out, MAX_SEGMENT_BYTES)


def is_plain_segment(segment: str) -> bool:
    """The segment is a name MLflow takes as it is (a zip member's, to be unpacked)."""
    return clean_segment(segment) == segment


def clean(path: str) -> str:
    """The field path with every segment made acceptable; equal to ``path`` when it already was."""
    segments = [clean_segment(s) for s in path.split("/")]
    if segments[0].casefold().startswith(RESERVED_PREFIXES):
        segments[0] = "_" + segments[0]
    return "/".join(segments)


def with_hash(base: str, path: str, digits: int = 16) -> str:
    suffix = "-" + names.digest(path, digits)
    head = base[: MAX_KEY - len(suffix)].rstrip("/")
    return head + suffix


def placed(path: str) -> str:
    """Where a field goes before any cleaning: Neptune's ``monitoring/`` namespace (CPU, memory,
    GPU, stdout of each process) under ``system/``, where MLflow's UI shows system metrics."""
    return SYSTEM + path[len(MONITORING) :] if path.startswith(MONITORING) else path


def key_of(path: str, hashed: bool, digits: int = 16) -> str:
    natural = placed(path)
    base = clean(natural)
    if hashed or base != natural or len(base) > MAX_KEY:
        return with_hash(base, path, digits)
    return base


def tag_keys(tags: Iterable[str]) -> dict[str, str]:
    """The MLflow tag of each Neptune tag (``sys/tags``): ``neptune.tag.<tag>``, the tag as it
    is when MLflow accepts it and no other tag equals it ignoring case; else made acceptable as
    a segment is (``/`` too) and told apart by the hash of the tag."""
    out: dict[str, str] = {}
    seen: set[str] = set()
    for tag in sorted(set(tags), key=lambda t: (t != t.lower(), t)):
        base = clean_segment(tag)
        key = TAG_PREFIX + base
        if base != tag or key.casefold() in seen or len(key) > MAX_KEY:
            key = with_hash(key, tag)
        seen.add(key.casefold())
        out[tag] = key
    return out


def assign(paths: Iterable[str], artifact_roots: Callable[[str, str], list[str]]) -> dict[str, str]:
    """The key of every field path of one object.

    ``artifact_roots(path, key)`` gives the artifact paths the field would use under that
    key (files, or folders holding its files), so clashes there are resolved too.
    """
    return names.assign(paths, artifact_roots, key_of, placed)
