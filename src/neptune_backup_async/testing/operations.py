"""The read operations of the fake server, one method per swagger operationId.

Every method takes a :class:`Request` and returns a :class:`Response` or raises
:class:`ApiError`. Containers are read under ``world.lock`` (tests mutate the world while
it serves) and rendered after it is released; values are immutable, so a shallow copy of
a container's fields is a consistent snapshot.
"""

from __future__ import annotations

import datetime as dt
import io
import threading
import uuid
import zipfile
from collections.abc import Callable
from typing import Any

from . import wire
from .leaderboard import search_attributes, search_entries
from .messages import ApiError, Request, Response, json_response
from .model import (
    Artifact,
    Bool,
    Checkpoint,
    Container,
    Datetime,
    File,
    FileSet,
    Float,
    FloatSeries,
    ImageSeries,
    Int,
    Project,
    String,
    StringSeries,
    StringSet,
    Value,
    World,
)

MAX_SERIES_PAGE = 10_000
# Neptune keeps no times for the files of a file set: listings and zips use this one.
FILE_TIME = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
ZIP_PATH = "/api/leaderboard/v1/download/zip/"

_GETTERS: dict[str, type] = {
    "getFloatAttribute": Float,
    "getIntAttribute": Int,
    "getBoolAttribute": Bool,
    "getStringAttribute": String,
    "getDatetimeAttribute": Datetime,
    "getStringSetAttribute": StringSet,
    "getFileAttribute": File,
    "getFloatSeriesAttribute": FloatSeries,
    "getStringSeriesAttribute": StringSeries,
    "getArtifactAttribute": Artifact,
}


def not_found(what: str) -> ApiError:
    return ApiError(404, "EXPERIMENT_NOT_FOUND", f"{what} not found")


class Operations:
    def __init__(self, world: World, base_url: str) -> None:
        self.world = world
        self.base_url = base_url
        self._lock = threading.Lock()
        self._downloads: dict[str, tuple[str, str]] = {}  # zip request id -> (container uuid, attribute)
        self._artifacts: dict[tuple[str, str], Artifact] = {}  # (project uuid, hash) -> artifact
        self._channels: dict[str, tuple[str, str]] = {}  # channel id -> (container uuid, path)
        self.handlers: dict[str, Callable[[Request], Response]] = {
            "listProjects": self.list_projects,
            "listOrganizations": self.list_organizations,
            "getProject": self.get_project,
            "getExperiment": self.get_experiment,
            "getExperimentAttributes": self.get_experiment_attributes,
            "getFloatSeriesValues": self.get_series_values,
            "getStringSeriesValues": self.get_series_values,
            "getImageSeriesValues": self.get_image_series_values,
            "getImageSeriesValue": self.get_image,
            "getChannelValues": self.get_channel_values,
            "downloadAttribute": self.download_attribute,
            "prepareForDownloadFileSetAttributeZip": self.prepare_zip,
            "getDownloadPrepareRequest": self.get_download_request,
            "downloadFileSetZip": self.download_zip,
            "lsFileSetAttribute": self.ls_file_set,
            "searchLeaderboardAttributes": self.search_attributes,
            "searchLeaderboardEntries": self.search_entries,
            "listArtifactFiles": self.list_artifact_files,
            "getCheckpoint": self.get_checkpoint,
            "getCheckpointContent": self.get_checkpoint_content,
        }
        for operation_id, value_type in _GETTERS.items():
            self.handlers[operation_id] = self._getter(value_type)

    # -- lookups ------------------------------------------------------------------------

    def project(self, identifier: str | None) -> Project:
        """A project by "workspace/name" or uuid; 404 otherwise."""
        found = self.world.find(identifier or "")
        if found is None or found[1] is not found[0].container:
            raise ApiError(404, "PROJECT_NOT_FOUND", f"project {identifier!r} not found")
        return found[0]

    def holder(self, request: Request) -> tuple[Project, Container]:
        identifier = request.arg("experimentId") or request.arg("holderIdentifier") or ""
        found = self.world.find(identifier)
        if found is None:
            raise not_found(f"object {identifier!r}")
        return found

    def fields(self, container: Container) -> dict[str, Value]:
        with self.world.lock:
            return dict(container.fields)

    def attribute(self, request: Request, value_type: type | tuple[type, ...]) -> tuple[Container, str, Any]:
        """The holder, path and value of the requested attribute, which must be a ``value_type``."""
        _, container = self.holder(request)
        path = request.arg("attribute") or ""
        return container, path, self.value(container, path, value_type)

    def value(self, container: Container, path: str, value_type: type | tuple[type, ...]) -> Any:
        with self.world.lock:
            value = container.fields.get(path)
        if value is None:
            raise ApiError(404, "ATTRIBUTE_NOT_FOUND", f"attribute {path!r} not found")
        if not isinstance(value, value_type):
            raise ApiError(400, "ATTRIBUTE_TYPE_MISMATCH", f"attribute {path!r} is a {value.TYPE}")
        return value

    # -- projects -------------------------------------------------------------------------

    def _projects(self) -> list[Project]:
        with self.world.lock:
            return sorted(self.world.projects.values(), key=lambda p: p.qualified_name)

    def _created(self, project: Project) -> str:
        with self.world.lock:
            created = project.container.fields.get("sys/creation_time") if project.container else None
        return wire.iso(created.value if isinstance(created, Datetime) else FILE_TIME)

    def list_projects(self, request: Request) -> Response:
        workspace, term = request.arg("organizationIdentifier"), request.arg("searchTerm")
        matching = [
            p
            for p in self._projects()
            if workspace in (None, p.workspace, p.workspace_uuid) and (term or "").lower() in p.name.lower()
        ]
        offset = request.int_arg("offset", 0)
        page = matching[offset : offset + request.int_arg("limit", len(matching))]
        return json_response(
            {
                "entries": [wire.project_with_role(p, self._created(p)) for p in page],
                "matchingItemCount": len(matching),
                "totalItemCount": len(self.world.projects),
            }
        )

    def list_organizations(self, request: Request) -> Response:
        workspaces: dict[str, Project] = {}
        for project in self._projects():
            workspaces.setdefault(project.workspace, project)
        return json_response([wire.organization(p, wire.iso(FILE_TIME)) for p in workspaces.values()])

    def get_project(self, request: Request) -> Response:
        return json_response(wire.project_dto(self.project(request.arg("projectIdentifier"))))

    # -- containers and attributes --------------------------------------------------------

    def get_experiment(self, request: Request) -> Response:
        project, container = self.holder(request)
        parent = project.uuid
        with self.world.lock:
            model_id = container.fields.get("sys/model_id")
            if container.kind == "modelVersion" and isinstance(model_id, String):
                model = project.containers.get(model_id.value)
                parent = model.uuid if model else parent
        return json_response(wire.experiment(project, container, parent))

    def get_experiment_attributes(self, request: Request) -> Response:
        project, container = self.holder(request)
        return json_response(wire.experiment_attributes(project, container, self.fields(container)))

    def _getter(self, value_type: type) -> Callable[[Request], Response]:
        def get(request: Request) -> Response:
            container, path, value = self.attribute(request, value_type)
            return json_response(wire.properties(path, value, container.uuid))

        return get

    def _page(self, request: Request, items: tuple[Any, ...]) -> tuple[Any, ...]:
        offset = request.int_arg("offset", 0)
        limit = min(request.int_arg("limit", MAX_SERIES_PAGE), MAX_SERIES_PAGE)
        if offset < 0 or limit < 0:
            raise ApiError(400, "BAD_REQUEST", "offset and limit must not be negative")
        return items[offset : offset + limit]

    def get_series_values(self, request: Request) -> Response:
        _, _, series = self.attribute(request, (FloatSeries, StringSeries))
        values = [
            {"step": p.step, "timestampMillis": p.timestamp_ms, "value": p.value}
            for p in self._page(request, series.points)
        ]
        return json_response({"totalItemCount": len(series.points), "values": values})

    def get_image_series_values(self, request: Request) -> Response:
        """The count of an image series, and nothing else: so says Neptune's API."""
        _, _, series = self.attribute(request, ImageSeries)
        return json_response({"totalItemCount": len(series.images)})

    def get_channel_values(self, request: Request) -> Response:
        """An image series read as a channel (``/channels/{channelId}/values``): each image's
        step (``x``), time, name and description, by offset and limit."""
        channel = request.path.split("/")[-2]
        target = self._channel(channel)
        if target is None:
            raise ApiError(404, "CHANNEL_NOT_FOUND", f"channel {channel!r} not found")
        found = self.world.find(target[0])
        if found is None:
            raise not_found(f"object {target[0]!r}")
        series = self.value(found[1], target[1], ImageSeries)
        values = [
            {
                "timestampMillis": image.timestamp_ms,
                "x": image.step,
                "y": {"imageValue": {"name": image.name, "description": image.description}},
            }
            for image in self._page(request, series.images)
        ]
        return json_response({"channelId": channel, "totalItemCount": len(series.images), "values": values})

    def _channel(self, channel: str) -> tuple[str, str] | None:
        """The container uuid and path of the image series with this channel id."""
        with self._lock:
            if channel in self._channels:
                return self._channels[channel]
        with self.world.lock:
            found = {
                wire.channel_id(container.uuid, path): (container.uuid, path)
                for project in self.world.projects.values()
                for container in (project.container, *project.containers.values())
                if container is not None
                for path, value in container.fields.items()
                if isinstance(value, ImageSeries)
            }
        with self._lock:
            self._channels.update(found)
        return found.get(channel)

    def get_image(self, request: Request) -> Response:
        _, path, series = self.attribute(request, ImageSeries)
        index = request.int_arg("index", -1)
        if not 0 <= index < len(series.images):
            raise ApiError(404, "ATTRIBUTE_NOT_FOUND", f"{path} has no image {index}")
        image = series.images[index]
        return Response(200, image.data, image.content_type)

    def download_attribute(self, request: Request) -> Response:
        _, _, file = self.attribute(request, File)
        name = f"{file.name}.{file.ext}" if file.ext else file.name
        return Response(200, file.data, "application/octet-stream", _attachment(name))

    # -- file sets ------------------------------------------------------------------------

    def prepare_zip(self, request: Request) -> Response:
        container, path, _ = self.attribute(request, FileSet)
        download_id = str(uuid.uuid4())
        with self._lock:
            self._downloads[download_id] = (container.uuid, path)
        return json_response({"id": download_id})

    def get_download_request(self, request: Request) -> Response:
        download_id = request.arg("id") or ""
        with self._lock:
            if download_id not in self._downloads:
                raise ApiError(404, "DOWNLOAD_REQUEST_NOT_FOUND", f"download {download_id!r} not found")
        # Ready at once, so that the client does not sleep before its first retry.
        return json_response({"id": download_id, "downloadUrl": f"{self.base_url}{ZIP_PATH}{download_id}"})

    def zip_target(self, request: Request) -> tuple[str, str] | None:
        """The container uuid and attribute a file set's zip download was prepared for."""
        with self._lock:
            return self._downloads.get(request.path[len(ZIP_PATH) :])

    def download_zip(self, request: Request) -> Response:
        target = self.zip_target(request)
        if target is None:
            raise ApiError(404, "DOWNLOAD_REQUEST_NOT_FOUND", "download not found")
        container_uuid, path = target
        found = self.world.find(container_uuid)
        if found is None:
            raise not_found(f"object {container_uuid!r}")
        file_set = self.value(found[1], path, FileSet)
        name = f"{path.rsplit('/', 1)[-1]}.zip"
        return Response(200, zip_bytes(file_set), "application/zip", _attachment(name))

    def ls_file_set(self, request: Request) -> Response:
        _, path, file_set = self.attribute(request, FileSet)
        prefix = (request.arg("path") or "").strip("/")
        prefix = "" if prefix == "." else prefix
        entries: dict[str, dict[str, Any]] = {}
        for file_path, data in file_set.files:
            if prefix and file_path == prefix:
                entries[file_path] = _file_entry(file_path.rsplit("/", 1)[-1], "file", len(data))
                continue
            if prefix and not file_path.startswith(prefix + "/"):
                continue
            head, _, rest = file_path[len(prefix) + 1 if prefix else 0 :].partition("/")
            entry = entries.setdefault(head, _file_entry(head, "directory" if rest else "file", 0))
            entry["size"] += len(data)
        if prefix and not entries:
            raise ApiError(404, "ATTRIBUTE_NOT_FOUND", f"{path} has no {prefix!r}")
        return json_response([entries[name] for name in sorted(entries)])

    # -- notebooks ------------------------------------------------------------------------

    def checkpoint(self, request: Request) -> Checkpoint:
        """The checkpoint whose id is the path's segment after ``checkpoints/``; 404 otherwise."""
        parts = request.path.split("/")
        checkpoint_id = parts[parts.index("checkpoints") + 1]
        with self.world.lock:
            found = self.world.checkpoints.get(checkpoint_id)
        if found is None:
            raise ApiError(404, "CHECKPOINT_NOT_FOUND", f"checkpoint {checkpoint_id!r} not found")
        return found

    def get_checkpoint(self, request: Request) -> Response:
        checkpoint = self.checkpoint(request)
        return json_response(
            {
                "id": checkpoint.id,
                "notebookId": checkpoint.notebook_id,
                "name": checkpoint.name,
                "path": checkpoint.path,
                "description": checkpoint.description,
                "owner": checkpoint.owner,
                "creationTime": wire.iso(checkpoint.created),
                "removable": True,
                "size": len(checkpoint.content),
            }
        )

    def get_checkpoint_content(self, request: Request) -> Response:
        """The .ipynb as uploaded, with the type the API declares for it (JSON)."""
        checkpoint = self.checkpoint(request)
        name = checkpoint.path.rsplit("/", 1)[-1]
        return Response(200, checkpoint.content, "application/json", _attachment(name))

    # -- runs table and artifacts ---------------------------------------------------------

    def search_attributes(self, request: Request) -> Response:
        project = self.project(request.arg("projectIdentifier"))
        body = request.json() or {}
        query = (body.get("query") or {}).get("query", "")
        found = search_attributes(
            self.world, project, request.args("type"), request.arg("search") or "", query
        )
        limit = request.int_arg("limit", len(found))
        return json_response({"entries": [{"name": n, "type": t} for n, t in found[:limit]]})

    def search_entries(self, request: Request) -> Response:
        project = self.project(request.arg("projectIdentifier"))
        return json_response(search_entries(self.world, project, request.args("type"), request.json() or {}))

    def list_artifact_files(self, request: Request) -> Response:
        project = self.project(request.arg("projectIdentifier"))
        artifact = self._artifact(project, request.arg("hash") or "")
        files = [
            {
                "filePath": f.file_path,
                "fileHash": f.file_hash,
                "type": f.type,
                "size": f.size,
                "metadata": [{"key": k, "value": v} for k, v in f.metadata],
            }
            for f in artifact.files
        ]
        return json_response({"files": files})

    def _artifact(self, project: Project, artifact_hash: str) -> Artifact:
        # Artifacts are content-addressed, so a hash once seen keeps meaning the same files;
        # the project is scanned again only for a hash not seen yet.
        key = (project.uuid, artifact_hash)
        with self._lock:
            if key in self._artifacts:
                return self._artifacts[key]
        with self.world.lock:
            found = {
                (project.uuid, value.hash): value
                for container in (project.container, *project.containers.values())
                if container is not None
                for value in container.fields.values()
                if isinstance(value, Artifact)
            }
        with self._lock:
            self._artifacts.update(found)
        if key not in found:
            raise ApiError(404, "ARTIFACT_NOT_FOUND", f"artifact {artifact_hash!r} not found")
        return found[key]


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


def _file_entry(name: str, file_type: str, size: int) -> dict[str, Any]:
    return {"name": name, "fileType": file_type, "size": size, "mtime": wire.iso(FILE_TIME)}


def zip_bytes(file_set: FileSet) -> bytes:
    """A byte-for-byte reproducible zip of a file set: sorted, with one fixed timestamp."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in sorted(file_set.files):
            info = zipfile.ZipInfo(path, date_time=FILE_TIME.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()
