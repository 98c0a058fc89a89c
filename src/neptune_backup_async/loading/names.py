"""Telling apart the names of one object's fields in a tracker (pure; docs/MLFLOW.md, docs/WANDB.md).

Each loader has its own rule for a field's key; both resolve clashes alike: keys equal
ignoring case (as on a case-insensitive database or file system), or files that would land
on one path, or one field's file path a folder above another's. All but the first of a
clashing group, taking all-lower-case paths first, then in order, get a hash of their path.
The result depends only on the object's set of field paths.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping


def digest(text: str, digits: int) -> str:
    """The first ``digits`` hex digits of the sha256 of ``text``."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:digits]


def _clashes(keys: Mapping[str, str], roots: Mapping[str, list[str]]) -> list[list[str]]:
    """Groups of fields whose keys are equal ignoring case, or whose artifacts would share a
    path ignoring case, or where one field's artifact path is a folder above another's."""
    groups: list[list[str]] = []
    by_key: dict[str, list[str]] = {}
    for field, key in keys.items():
        by_key.setdefault(key.casefold(), []).append(field)
    groups += [fields for fields in by_key.values() if len(fields) > 1]
    owners: dict[str, set[str]] = {}
    for field, paths in roots.items():
        for root in paths:
            owners.setdefault(root.casefold(), set()).add(field)
    groups += [sorted(fields) for fields in owners.values() if len(fields) > 1]
    for root, fields in owners.items():
        parts = root.split("/")
        for i in range(1, len(parts)):
            above = owners.get("/".join(parts[:i]))
            if above is not None and above != fields:
                groups.append(sorted(above | fields))
    return groups


def assign(
    paths: Iterable[str],
    artifact_roots: Callable[[str, str], list[str]],
    key_of: Callable[[str, bool, int], str],
    natural: Callable[[str], str],
) -> dict[str, str]:
    """The key of every field path of one object, none equal to another ignoring case.

    ``key_of(path, hashed, digits)`` is the key of a path, told apart by that many hex digits
    of a hash when ``hashed``; ``natural(path)`` the key a path has when kept as it is (such a
    key is hashed when it clashes). ``artifact_roots(path, key)`` gives the paths the field's
    files would use under that key (files, or folders holding its files), so clashes there are
    resolved too.
    """
    fields = sorted(set(paths))
    hashed = {p: False for p in fields}
    digits = 16
    while True:
        keys = {p: key_of(p, hashed[p], digits) for p in fields}
        groups = _clashes(keys, {p: artifact_roots(p, keys[p]) for p in fields})
        if not groups:
            return keys
        grew = False
        for group in groups:
            order = sorted(group, key=lambda p: (p != p.lower(), p))
            for p in order[1:]:
                if keys[p] == natural(p):  # kept as it was: the hash tells it apart
                    hashed[p] = grew = True
        if not grew:
            if digits >= 64:
                raise ValueError(f"cannot tell these fields apart: {groups[0]}")
            digits *= 2  # hashed names still clash: vanishingly rare, but never merge two fields
