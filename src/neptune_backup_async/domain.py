"""The plain values every layer speaks: field types, objects, fields, pages and downloads.

Pure data, no I/O. The remote side produces them (:mod:`.remote`), the engine moves them,
and the on-disk format (:mod:`.format`) maps them to files.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

UTC = dt.timezone.utc


class FieldType(str, enum.Enum):
    """Neptune's attribute types, by their API names."""

    FLOAT = "float"
    INT = "int"
    BOOL = "bool"
    STRING = "string"
    DATETIME = "datetime"
    STRING_SET = "stringSet"
    STATE = "experimentState"
    GIT_REF = "gitRef"
    NOTEBOOK_REF = "notebookRef"
    FLOAT_SERIES = "floatSeries"
    STRING_SERIES = "stringSeries"
    IMAGE_SERIES = "imageSeries"
    FILE = "file"
    FILE_SET = "fileSet"
    ARTIFACT = "artifact"

    @property
    def is_simple(self) -> bool:
        """Saved in ``simple_metadata.json`` rather than a file of its own."""
        return self in SIMPLE_TYPES


SIMPLE_TYPES = frozenset(
    {
        FieldType.FLOAT,
        FieldType.INT,
        FieldType.BOOL,
        FieldType.STRING,
        FieldType.DATETIME,
        FieldType.STRING_SET,
        FieldType.STATE,
        FieldType.GIT_REF,
        FieldType.NOTEBOOK_REF,
    }
)


@dataclass(frozen=True)
class ProjectInfo:
    workspace: str
    name: str
    id: str
    key: str

    @property
    def qualified_name(self) -> str:
        return f"{self.workspace}/{self.name}"


#: The kinds of object a project holds, by their API names.
KINDS = ("run", "model", "modelVersion", "project")


@dataclass(frozen=True)
class ObjectRef:
    """A run, model, model version or the project itself, as its listing gives it."""

    sys_id: str
    id: str  # the id that API calls take
    modification_time: dt.datetime | None = None
    kind: str = "run"
    model_id: str | None = None  # a model version's model (its sys id)


@dataclass(frozen=True)
class PageRequest:
    """One page of a runs table: from ``offset``, objects created at or after ``after``."""

    after: str | None
    offset: int
    limit: int


T = TypeVar("T")


@dataclass(frozen=True)
class ListingPage(Generic[T]):
    """One page of a listing, and how many entries the server says the whole listing holds."""

    entries: list[T]
    matching: int


@dataclass(frozen=True)
class FieldInfo:
    """One field of a run, as the attribute listing gives it.

    ``value`` holds simple values, already plain Python: aware datetimes, sorted tuples
    for string sets, dicts for git and notebook refs, the hash for an artifact.
    ``ext`` and ``size`` describe files; ``last_step`` describes series, and ``config`` a
    float series' own ``min``, ``max`` and ``unit``, those that are set.
    """

    path: str
    type: FieldType
    value: Any = None
    ext: str | None = None
    size: int | None = None
    last_step: float | None = None
    config: dict[str, Any] | None = None


@dataclass(frozen=True)
class SeriesPage:
    total: int
    points: list[tuple[float, Any, int]]  # (step, value, timestamp in epoch ms)


@dataclass(frozen=True)
class ImageInfo:
    index: int
    step: float | None = None
    timestamp_ms: int | None = None
    name: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class ArtifactFileInfo:
    path: str
    hash: str
    type: str
    size: int | None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class Download:
    """An open streamed body. Iterate ``chunks`` and then ``close()``, in the same thread."""

    chunks: Iterator[bytes]
    size: int | None = None  # the decoded bytes the answer promised; None when it did not say
    filename: str | None = None
    content_type: str | None = None
    close: Any = None  # Callable[[], None] | None

    def release(self) -> None:
        if self.close is not None:
            self.close()


# Times: every moment in a backup is aware, and written in UTC.


def iso(moment: dt.datetime) -> str:
    """ISO 8601 in UTC; milliseconds unless the value has finer digits."""
    if moment.tzinfo is None:  # Neptune's own values are aware; a naive one is taken as UTC.
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds" if moment.microsecond % 1000 == 0 else "microseconds")


def parse_iso(text: str) -> dt.datetime:
    """Parse the datetimes Neptune sends (``...Z`` or with an offset) into aware UTC values."""
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
