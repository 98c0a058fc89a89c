"""What a backup covers: which objects, which runs, which fields, which shard. Pure.

Run filters become one NQL query, so the server does the filtering; field filters are
globs over field paths; a shard owns the objects whose sys id hashes to it.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import domain
from .errors import UsageError

OBJECTS = ("runs", "models", "project")
STATES = ("idle", "running")


def parse_list(text: str | Iterable[str] | None) -> tuple[str, ...]:
    """``a,b`` or a list of strings, without blanks or repeats, in order."""
    if text is None:
        return ()
    items = text.split(",") if isinstance(text, str) else text
    return tuple(dict.fromkeys(s.strip() for s in items if s.strip()))


def parse_time(text: str, flag: str) -> dt.datetime:
    """An ISO 8601 date or date-time; without an offset it is UTC."""
    try:
        moment = domain.parse_iso(text.strip())
    except ValueError:
        raise UsageError(
            f"{flag} takes an ISO 8601 date or time, such as 2024-05-01 or 2024-05-01T12:00:00+02:00;"
            f" got {text!r}."
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def parse_objects(text: str | Iterable[str] | None) -> frozenset[str]:
    chosen = parse_list(text)
    if not chosen:
        return frozenset(OBJECTS)
    unknown = [o for o in chosen if o not in OBJECTS]
    if unknown:
        raise UsageError(f"--objects takes {', '.join(OBJECTS)} (comma-separated); got {', '.join(unknown)}.")
    return frozenset(chosen)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _any_of(column: str, kind: str, wanted: Iterable[str]) -> str:
    terms = [f"(`{column}`:{kind} = {_quote(v)})" for v in wanted]
    return terms[0] if len(terms) == 1 else "(" + " OR ".join(terms) + ")"


@dataclass(frozen=True)
class RunFilter:
    """Which runs to back up; every condition given must hold (tags: all of them)."""

    runs: tuple[str, ...] = ()  # sys ids
    tags: tuple[str, ...] = ()
    states: tuple[str, ...] = ()  # "idle" and/or "running"
    owners: tuple[str, ...] = ()
    query: str | None = None  # raw NQL
    created_since: dt.datetime | None = None
    created_until: dt.datetime | None = None
    modified_since: dt.datetime | None = None
    include_trashed: bool = False  # runs, and models and model versions too

    def __post_init__(self) -> None:
        bad = [s for s in self.states if s not in STATES]
        if bad:
            raise UsageError(f"--state takes {' or '.join(STATES)}; got {', '.join(bad)}.")
        for name in ("created_since", "created_until", "modified_since"):
            moment = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                raise UsageError(f"{name} must be timezone-aware; got {moment.isoformat()}.")
        if self.created_since and self.created_until and self.created_since >= self.created_until:
            raise UsageError("--created-since must be earlier than --created-until.")

    @property
    def narrows(self) -> bool:
        """Whether some listed-by-default run may be left out."""
        return self != RunFilter(include_trashed=self.include_trashed)

    def nql(self) -> str:
        """The runs-table query; "" when every run, trashed or not, is wanted."""
        parts = [] if self.include_trashed else ["(`sys/trashed`:bool = false)"]
        if self.runs:
            parts.append(_any_of("sys/id", "string", self.runs))
        if self.states:
            parts.append(_any_of("sys/state", "experimentState", self.states))
        if self.owners:
            parts.append(_any_of("sys/owner", "string", self.owners))
        parts += [f"(`sys/tags`:stringSet CONTAINS {_quote(t)})" for t in self.tags]
        for column, op, moment in (
            ("sys/creation_time", ">=", self.created_since),
            ("sys/creation_time", "<", self.created_until),
            ("sys/modification_time", ">=", self.modified_since),
        ):
            if moment is not None:
                parts.append(f"(`{column}`:datetime {op} {_quote(domain.iso(moment))})")
        if self.query and self.query.strip():
            parts.append(f"({self.query.strip()})")
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")" if parts else ""


def _namespaces(path: str) -> list[str]:
    """``a/b/c`` and the namespaces it sits in: ``a``, ``a/b``."""
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _matches(path: str, patterns: tuple[str, ...]) -> bool:
    """A glob (``*`` and ``?`` also cross ``/``) matches the path or a namespace it sits in."""
    return any(fnmatch.fnmatchcase(name, p) for name in _namespaces(path) for p in patterns)


@dataclass(frozen=True)
class FieldFilter:
    """Which fields of each object to back up: those matching an include (if any) and no exclude."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for flag, patterns in (("--include-fields", self.include), ("--exclude-fields", self.exclude)):
            if any(not p.strip("/") for p in patterns):
                raise UsageError(f"{flag} takes field path globs such as monitoring/*; got an empty one.")
        # Sorted: the same filter given in another order is recorded, and compared, as the same.
        object.__setattr__(self, "include", tuple(sorted({p.strip("/") for p in self.include})))
        object.__setattr__(self, "exclude", tuple(sorted({p.strip("/") for p in self.exclude})))

    def __bool__(self) -> bool:
        return bool(self.include or self.exclude)

    def keeps(self, path: str) -> bool:
        if self.include and not _matches(path, self.include):
            return False
        return not _matches(path, self.exclude)

    def to_json(self) -> dict[str, Any] | None:
        """How a manifest records it; None for no filter."""
        return {"include": list(self.include), "exclude": list(self.exclude)} if self else None


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count``: the objects whose sys id hashes to it."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not (self.count >= 1 and 0 <= self.index < self.count):
            raise UsageError(
                f"--shard takes K/N with 0 <= K < N, such as 0/4; got {self.index}/{self.count}."
            )

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match:
            raise UsageError(f"--shard takes K/N, such as 0/4 for the first of four shards; got {text!r}.")
        return cls(int(match[1]), int(match[2]))

    def owns(self, sys_id: str) -> bool:
        # sha256, not hash(): the same on every machine, in every process and Python version.
        digest = hashlib.sha256(sys_id.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def label(self) -> str:
        """``shard-K-of-N``: marks the report, log and temporary files of this shard."""
        return f"shard-{self.index}-of-{self.count}"


@dataclass(frozen=True)
class Selection:
    """Everything that narrows a backup. The default backs up every object in full."""

    objects: frozenset[str] = frozenset(OBJECTS)
    runs: RunFilter = RunFilter()
    fields: FieldFilter = FieldFilter()
    shard: Shard | None = None

    def __post_init__(self) -> None:
        unknown = set(self.objects) - set(OBJECTS)
        if unknown or not self.objects:
            raise UsageError(f"objects must be some of {', '.join(OBJECTS)}; got {sorted(self.objects)}.")

    def owns(self, sys_id: str) -> bool:
        return self.shard is None or self.shard.owns(sys_id)

    def models_nql(self) -> str:
        """The query of the models and model versions listings: the run filters narrow runs
        only, but ``include_trashed`` brings in the trashed models and versions too."""
        return RunFilter(include_trashed=self.runs.include_trashed).nql()

    @property
    def shard_label(self) -> str | None:
        """``shard-K-of-N`` for a shard, else None (see :attr:`Shard.label`)."""
        return self.shard.label if self.shard else None
