"""The data a fake Neptune server holds: workspaces, projects and their containers.

Values are plain dataclasses, one per Neptune attribute type, each naming its API type
in ``TYPE``. The fake server renders them to the wire; tests compare a backup against
them. Mutations go through :class:`World` so that ``sys/modification_time`` moves the
way it does on a real server.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar, Literal

ContainerKind = Literal["run", "model", "modelVersion", "project"]


@dataclass(frozen=True)
class FloatPoint:
    step: float
    value: float
    timestamp_ms: int


@dataclass(frozen=True)
class StringPoint:
    step: float
    value: str
    timestamp_ms: int


@dataclass(frozen=True)
class ImagePoint:
    step: float
    timestamp_ms: int
    name: str
    description: str
    data: bytes
    content_type: str = "image/png"


@dataclass(frozen=True)
class Float:
    TYPE: ClassVar[str] = "float"
    value: float


@dataclass(frozen=True)
class Int:
    TYPE: ClassVar[str] = "int"
    value: int


@dataclass(frozen=True)
class Bool:
    TYPE: ClassVar[str] = "bool"
    value: bool


@dataclass(frozen=True)
class String:
    TYPE: ClassVar[str] = "string"
    value: str


@dataclass(frozen=True)
class Datetime:
    TYPE: ClassVar[str] = "datetime"
    value: dt.datetime  # always timezone-aware


@dataclass(frozen=True)
class StringSet:
    TYPE: ClassVar[str] = "stringSet"
    values: frozenset[str]


@dataclass(frozen=True)
class State:
    TYPE: ClassVar[str] = "experimentState"
    value: Literal["idle", "running"]


@dataclass(frozen=True)
class GitRef:
    TYPE: ClassVar[str] = "gitRef"
    commit_id: str
    message: str
    author_name: str
    author_email: str
    commit_date: dt.datetime
    branch: str | None
    dirty: bool
    remotes: tuple[str, ...]


@dataclass(frozen=True)
class NotebookRef:
    TYPE: ClassVar[str] = "notebookRef"
    notebook_id: str
    notebook_name: str
    checkpoint_id: str
    checkpoint_name: str


@dataclass(frozen=True)
class FloatSeries:
    TYPE: ClassVar[str] = "floatSeries"
    points: tuple[FloatPoint, ...]
    # The series' own properties (its config: a chart's range and unit); None where unset.
    min: float | None = None
    max: float | None = None
    unit: str | None = None


@dataclass(frozen=True)
class StringSeries:
    TYPE: ClassVar[str] = "stringSeries"
    points: tuple[StringPoint, ...]


@dataclass(frozen=True)
class ImageSeries:
    TYPE: ClassVar[str] = "imageSeries"
    images: tuple[ImagePoint, ...]


@dataclass(frozen=True)
class File:
    TYPE: ClassVar[str] = "file"
    name: str  # without extension, as Neptune stores it
    ext: str
    data: bytes


@dataclass(frozen=True)
class FileSet:
    TYPE: ClassVar[str] = "fileSet"
    files: tuple[tuple[str, bytes], ...]  # (relative path, bytes), sorted by path


@dataclass(frozen=True)
class ArtifactFile:
    file_path: str
    file_hash: str
    type: str  # "Local" or "S3"
    size: int
    metadata: tuple[tuple[str, str], ...]  # e.g. ("file_path", "file:///..."), ("last_modified", ...)


@dataclass(frozen=True)
class Artifact:
    TYPE: ClassVar[str] = "artifact"
    hash: str
    files: tuple[ArtifactFile, ...]


Value = (
    Float
    | Int
    | Bool
    | String
    | Datetime
    | StringSet
    | State
    | GitRef
    | NotebookRef
    | FloatSeries
    | StringSeries
    | ImageSeries
    | File
    | FileSet
    | Artifact
)

ATOM_TYPES: tuple[type, ...] = (Float, Int, Bool, String, Datetime, StringSet, State, GitRef, NotebookRef)


@dataclass(frozen=True)
class Checkpoint:
    """A saved state of a notebook, which a notebook ref names by id: Neptune keeps the
    notebooks and their checkpoints beside the runs, in the project."""

    id: str  # a uuid
    notebook_id: str
    name: str
    path: str  # the notebook's path where it was checkpointed
    content: bytes  # the .ipynb, as uploaded
    created: dt.datetime
    owner: str = "alice"
    description: str = ""


@dataclass
class Container:
    """A run, model, model version or the project itself: a flat map of field path to value."""

    sys_id: str
    kind: ContainerKind
    fields: dict[str, Value]
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    trashed: bool = False

    def sys(self, name: str) -> Value | None:
        return self.fields.get(f"sys/{name}")


@dataclass
class Project:
    workspace: str
    name: str
    key: str
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    workspace_uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    # The project's own fields, served as a container of kind "project".
    container: Container | None = None
    # Runs, models and model versions by sys id, in creation order.
    containers: dict[str, Container] = field(default_factory=dict)

    @property
    def qualified_name(self) -> str:
        return f"{self.workspace}/{self.name}"

    def of_kind(self, kind: ContainerKind) -> Iterator[Container]:
        return (c for c in self.containers.values() if c.kind == kind)

    @property
    def runs(self) -> list[Container]:
        return list(self.of_kind("run"))


@dataclass
class World:
    """Everything a fake server serves. Safe to mutate from tests while it serves."""

    projects: dict[str, Project] = field(default_factory=dict)  # by "workspace/name"
    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)  # notebook checkpoints, by id
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    _by_uuid: dict[str, tuple[Project, Container]] = field(default_factory=dict, repr=False)

    def add_project(self, project: Project) -> Project:
        with self.lock:
            if project.container is None:
                project.container = Container(
                    sys_id=project.key, kind="project", fields={}, uuid=project.uuid
                )
            self.projects[project.qualified_name] = project
            self._by_uuid[project.uuid] = (project, project.container)
            for container in project.containers.values():
                self._by_uuid[container.uuid] = (project, container)
        return project

    def project(self, qualified_name: str) -> Project:
        return self.projects[qualified_name]

    def add_container(self, project: str, container: Container) -> Container:
        with self.lock:
            owner = self.projects[project]
            owner.containers[container.sys_id] = container
            self._by_uuid[container.uuid] = (owner, container)
        return container

    def set_field(self, project: str, sys_id: str, path: str, value: Value | None) -> None:
        """Set (or with ``None`` delete) a field and move ``sys/modification_time`` forward.

        ``sys_id`` names a run, model or model version, or is the project's key for its own fields.
        """
        with self.lock:
            holder = self.projects[project]
            container = holder.containers.get(sys_id) or holder.container
            if container is None or container.sys_id != sys_id:
                raise KeyError(sys_id)
            if value is None:
                container.fields.pop(path, None)
            else:
                container.fields[path] = value
            old = container.fields.get("sys/modification_time")
            now = dt.datetime.now(dt.timezone.utc)
            now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # Neptune keeps milliseconds
            if isinstance(old, Datetime) and old.value >= now:
                now = old.value + dt.timedelta(milliseconds=1)
            container.fields["sys/modification_time"] = Datetime(now)

    def trash(self, project: str, sys_id: str, trashed: bool = True) -> None:
        """Move a run, model or model version to the trash (``trashed=False``: restore it).
        Listings leave it out unless their query asks for ``sys/trashed``; it stays readable."""
        with self.lock:
            self.projects[project].containers[sys_id].trashed = trashed

    def remove_container(self, project: str, sys_id: str) -> None:
        with self.lock:
            container = self.projects[project].containers.pop(sys_id)
            self._by_uuid.pop(container.uuid, None)

    def find(self, container_id: str) -> tuple[Project, Container] | None:
        """Look a container up by uuid, by ``ws/project/SYS-ID`` or by project uuid/name."""
        with self.lock:
            if container_id in self._by_uuid:
                return self._by_uuid[container_id]
            if container_id in self.projects:
                project = self.projects[container_id]
                assert project.container is not None
                return project, project.container
            qualified, _, sys_id = container_id.rpartition("/")
            owner = self.projects.get(qualified)
            if owner is not None and sys_id in owner.containers:
                return owner, owner.containers[sys_id]
        return None
