"""The small interface every operation reads from, and the plain values it returns.

The pipeline, the layout and the writers know only this module. ``neptune_source``
implements it over the ``neptune`` client; its methods block and are called from worker
threads. Each call is one attempt of one Neptune request (a download is one request,
however many chunks): it returns or raises at once, and never sleeps or retries. The
caller retries, in async code (:mod:`.retry`), by the type of the error: a
:class:`~.errors.TransientError` is worth another try, any other error is not.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol


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


@dataclass(frozen=True)
class FieldInfo:
    """One field of a run, as the attribute listing gives it.

    ``value`` holds simple values, already plain Python: aware datetimes, sorted tuples
    for string sets, dicts for git and notebook refs, the hash for an artifact.
    ``ext`` and ``size`` describe files; ``last_step`` describes series.
    """

    path: str
    type: FieldType
    value: Any = None
    ext: str | None = None
    size: int | None = None
    last_step: float | None = None


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
    size: int | None = None
    filename: str | None = None
    content_type: str | None = None
    close: Any = None  # Callable[[], None] | None

    def release(self) -> None:
        if self.close is not None:
            self.close()


class Source(Protocol):
    """What the operations read. Every method blocks; call it from a worker thread."""

    #: The largest series page the server accepts.
    series_page_limit: int

    def list_projects(self) -> list[str]: ...

    def get_project(self, qualified_name: str) -> ProjectInfo: ...

    def objects_page(
        self, project: ProjectInfo, kind: str, query: str, page: PageRequest
    ) -> list[tuple[ObjectRef, str | None]]:
        """One page of the runs, models or model versions matching the NQL ``query``, by
        creation time ascending, each with its creation time (see :mod:`.paging`)."""
        ...

    def get_fields(self, project: ProjectInfo, run: ObjectRef) -> list[FieldInfo]: ...

    def series_page(self, run: ObjectRef, field: FieldInfo, offset: int, limit: int) -> SeriesPage: ...

    def image_page(
        self, run: ObjectRef, field: FieldInfo, offset: int, limit: int
    ) -> tuple[int, list[ImageInfo]]: ...

    def open_image(self, run: ObjectRef, field: FieldInfo, index: int) -> Download: ...

    def open_file(self, run: ObjectRef, field: FieldInfo) -> Download: ...

    def prepare_file_set(self, run: ObjectRef, field: FieldInfo) -> str:
        """Ask the server to build a file set's zip; the id to poll :meth:`file_set_url` with."""
        ...

    def file_set_url(self, request_id: str) -> str | None:
        """Where the zip can be downloaded, or None while the server is still building it."""
        ...

    def open_file_set(self, url: str) -> Download: ...

    def list_artifact_files(self, project: ProjectInfo, artifact_hash: str) -> list[ArtifactFileInfo]: ...

    def close(self) -> None: ...
