"""W&B names for Neptune fields, runs, projects and tags (pure; docs/WANDB.md "Names").

A field's key is its path with, in each ``/``-separated segment, every character W&B would
read otherwise (``.`` nests summary and config keys, ``*`` is a glob in ``define_metric``,
``@`` marks our step metrics, ``%`` escapes) or a file system would refuse (``\\ : ? # " < > |``
and control characters) written ``%XX`` (each UTF-8 byte, upper-case hex); an empty segment
is ``%``, and a key starting with ``_`` (W&B's own: ``_step``, ``_timestamp``, ``_wandb``)
starts with ``%5F``. That alone is injective and reversible (``decode``). A segment longer
than 180 bytes is cut, and the key ends with ``-`` and 16 hex digits of the sha256 of the
path; keys that would clash ignoring case (or whose files would) get that hash too
(``loading.names``). ``neptune/fields.json`` in each run records every key.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Iterable

from ..loading import names

MAX_SEGMENT_BYTES = 180  # leaves room for the hash and a file suffix below NAME_MAX (255)
MAX_TAG = 64  # W&B refuses longer tags
MAX_ID = 64
STEP_SUFFIX = "@step"  # a series' own step metric: <key>@step (no key holds a bare @)
MAX_PROJECT = 128

_ESCAPE = re.compile(r'[%.*@\\:?#"<>|\x00-\x1f\x7f]')
_RUN_ID = re.compile(r"[^A-Za-z0-9_-]")
_PROJECT = re.compile(r'[/\\#?%:<>|"\x00-\x1f\x7f]')


def _quote(match: re.Match[str]) -> str:
    return "".join(f"%{b:02X}" for b in match.group().encode("utf-8"))


def encode(path: str) -> str:
    """The field path as a W&B key, before any cut or hash: injective and reversible."""
    segments = [_ESCAPE.sub(_quote, s) if s else "%" for s in path.split("/")]
    key = "/".join(segments)
    return "%5F" + key[1:] if key.startswith("_") else key


def decode(key: str) -> str:
    """The field path of a key that ``encode`` made (not one cut or hashed: see fields.json)."""
    return "/".join("" if s == "%" else urllib.parse.unquote(s) for s in key.split("/"))


def _cut(segment: str) -> str:
    return segment.encode("utf-8")[:MAX_SEGMENT_BYTES].decode("utf-8", errors="ignore")


def key_of(path: str, hashed: bool, digits: int = 16) -> str:
    natural = encode(path)
    segments = natural.split("/")
    cut = [_cut(s) for s in segments]
    if hashed or cut != segments:
        return "/".join(cut) + "-" + names.digest(path, digits)
    return natural


def assign(paths: Iterable[str], file_roots: Callable[[str, str], list[str]]) -> dict[str, str]:
    """The key of every field path of one object (see the module's rule)."""
    return names.assign(paths, file_roots, key_of, encode)


def step_metric(key: str) -> str:
    return key + STEP_SUFFIX


def tags(neptune_tags: Iterable[str]) -> list[str]:
    """W&B tags of Neptune's: as they are when W&B takes them (1 to 64 characters), else cut
    to 47 and ended with ``-`` and 16 hex digits of their sha256; the exact ones are in config."""
    out = set()
    for tag in neptune_tags:
        if not tag:
            continue
        out.add(tag if len(tag) <= MAX_TAG else f"{tag[: MAX_TAG - 17]}-{names.digest(tag, 16)}")
    return sorted(out)


def run_id(project: str, sys_id: str) -> str:
    """A deterministic W&B run id: the sys id made of the characters W&B takes, and 8 hex
    digits of the sha256 of the project and the sys id, so runs of two Neptune projects loaded
    into one W&B project never meet."""
    readable = _RUN_ID.sub("_", sys_id)[: MAX_ID - 9]
    return f"{readable}-{names.digest(project + chr(10) + sys_id, 8)}"


def project_name(neptune_project: str) -> str:
    """The default W&B project of a Neptune project ``workspace/project``: ``workspace-project``,
    with any other character W&B refuses in a project name as ``_``."""
    return _PROJECT.sub("_", neptune_project.replace("/", "-", 1))[:MAX_PROJECT]


_UNSAFE_FILE = re.compile(r'[\\:?#"<>|*\x00-\x1f\x7f]')


def plain_file_segment(segment: str) -> bool:
    """A segment of a zip member's name that can be a file's name in W&B as it is."""
    return (
        segment not in ("", ".", "..")
        and not _UNSAFE_FILE.search(segment)
        and len(segment.encode("utf-8")) <= MAX_SEGMENT_BYTES
    )
