"""A :class:`~neptune_backup_async.remote.source.Source` in memory: what the fake server
serves, without HTTP and without the neptune client.

For the tests of what a backup does with what it reads (its layout, selection, resume,
progress), where the client is not what is tested: ``backup(..., source=MemorySource(world))``
skips the client's start-up and every round trip. It answers through the fake's own
operations, and turns their answers into this package's values with the real client's
converters, so it serves exactly what the fake serves over HTTP. The tests of the client,
end to end, keep it: the fake over HTTP.
"""

from __future__ import annotations

import collections
import json
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from neptune_backup_async.domain import (
    ArtifactFileInfo,
    Download,
    FieldInfo,
    FieldType,
    ImageInfo,
    ListingPage,
    ObjectRef,
    PageRequest,
    ProjectInfo,
    SeriesPage,
)
from neptune_backup_async.remote.neptune import answers
from neptune_backup_async.remote.neptune.transport import status_error
from neptune_backup_async.testing.messages import ApiError, Request, Response
from neptune_backup_async.testing.model import World
from neptune_backup_async.testing.operations import MAX_SERIES_PAGE, Operations

T = TypeVar("T")
BASE_URL = "memory://neptune"  # where the fake's operations say a file set's zip is


class MemorySource:
    """Serves ``world``; :attr:`requests` counts what was asked, by operation, as the fake's
    :class:`~neptune_backup_async.testing.Stats` does."""

    series_page_limit = MAX_SERIES_PAGE

    def __init__(self, world: World) -> None:
        self.requests: collections.Counter[str] = collections.Counter()
        self._operations = Operations(world, BASE_URL)
        self._lock = threading.Lock()

    def _answer(self, operation: str, what: str, path: str = "", body: Any = None, **query: Any) -> Response:
        with self._lock:
            self.requests[operation] += 1
        request = Request(
            path,
            {
                name: [str(v) for v in value] if isinstance(value, list) else [str(value)]
                for name, value in query.items()
            },
            {},
            json.dumps(body).encode() if body is not None else b"",
        )
        try:
            return self._operations.handlers[operation](request)
        except ApiError as e:
            answer = e.response()
            raise status_error(answer.status, answer.headers, answer.body, what, []) from None

    def _json(self, operation: str, convert: Callable[[Any], T], what: str = "", **kwargs: Any) -> T:
        return convert(json.loads(self._answer(operation, what or operation, **kwargs).body))

    def _download(self, operation: str, what: str, **kwargs: Any) -> Download:
        answer = self._answer(operation, what, **kwargs)
        return Download(chunks=iter([answer.body]), size=len(answer.body), content_type=answer.content_type)

    def projects_page(self, offset: int, limit: int) -> ListingPage[str]:
        return self._json("listProjects", answers.project_names, offset=offset, limit=limit)

    def get_project(self, qualified_name: str) -> ProjectInfo:
        what = f"project {qualified_name}"
        return self._json("getProject", answers.project, what, projectIdentifier=qualified_name)

    def objects_page(
        self, project: ProjectInfo, kind: str, query: str, page: PageRequest
    ) -> ListingPage[tuple[ObjectRef, str | None]]:
        if page.after is not None:
            keyset = f'(`sys/creation_time`:datetime >= "{page.after}")'
            query = f"({query} AND {keyset})" if query else keyset
        columns = ["sys/id", "sys/creation_time", "sys/modification_time", "sys/model_id"]
        body = {
            "query": {"query": query},
            "sorting": {"dir": "ascending", "sortBy": {"name": "sys/creation_time", "type": "datetime"}},
            "attributeFilters": [{"path": c} for c in columns],
            "pagination": {"limit": page.limit, "offset": page.offset},
        }
        return self._json(
            "searchLeaderboardEntries",
            lambda answer: answers.object_refs(answer, kind),
            f"listing {kind}s of {project.qualified_name}",
            body=body,
            projectIdentifier=project.id,
            type=[kind],
        )

    def get_fields(self, project: ProjectInfo, run: ObjectRef) -> list[FieldInfo]:
        return self._json(
            "getExperimentAttributes", lambda answer: answers.fields(answer, run.sys_id), experimentId=run.id
        )

    def series_page(self, run: ObjectRef, field: FieldInfo, offset: int, limit: int) -> SeriesPage:
        operation = (
            "getFloatSeriesValues" if field.type is FieldType.FLOAT_SERIES else "getStringSeriesValues"
        )
        query: dict[str, Any] = {
            "experimentId": run.id,
            "attribute": field.path,
            "offset": offset,
            "limit": limit,
        }
        return self._json(operation, answers.series_page, **query)

    def image_count(self, run: ObjectRef, field: FieldInfo) -> int:
        query: dict[str, Any] = {"experimentId": run.id, "attribute": field.path, "offset": 0, "limit": 1}
        return self._json("getImageSeriesValues", lambda answer: int(answer["totalItemCount"]), **query)

    def image_page(self, field: FieldInfo, offset: int, limit: int) -> ListingPage[ImageInfo]:
        path = f"/channels/{field.value}/values"
        return self._json(
            "getChannelValues",
            lambda answer: answers.image_page(answer, offset),
            path=path,
            offset=offset,
            limit=limit,
        )

    def open_image(self, run: ObjectRef, field: FieldInfo, index: int) -> Download:
        query = {"experimentId": run.id, "attribute": field.path, "index": index}
        return self._download("getImageSeriesValue", "getImageSeriesValue", **query)

    def open_file(self, run: ObjectRef, field: FieldInfo) -> Download:
        return self._download(
            "downloadAttribute", "downloadAttribute", experimentId=run.id, attribute=field.path
        )

    def prepare_file_set(self, run: ObjectRef, field: FieldInfo) -> str:
        query = {"experimentId": run.id, "attribute": field.path}
        return self._json("prepareForDownloadFileSetAttributeZip", lambda answer: str(answer["id"]), **query)

    def file_set_url(self, request_id: str) -> str | None:
        url = self._json("getDownloadPrepareRequest", lambda answer: answer.get("downloadUrl"), id=request_id)
        return str(url) if url else None

    def open_file_set(self, url: str) -> Download:
        return self._download("downloadFileSetZip", "file set download", path=url.removeprefix(BASE_URL))

    def list_artifact_files(self, project: ProjectInfo, artifact_hash: str) -> list[ArtifactFileInfo]:
        query = {"projectIdentifier": project.id, "hash": artifact_hash}
        return self._json("listArtifactFiles", answers.artifact_files, f"artifact {artifact_hash}", **query)

    def checkpoint_size(self, checkpoint_id: str) -> int:
        path = f"/api/leaderboard/v1/notebooks/checkpoints/{checkpoint_id}"
        return self._json("getCheckpoint", answers.size, path=path)

    def open_checkpoint(self, checkpoint_id: str) -> Download:
        path = f"/api/leaderboard/v1/notebooks/checkpoints/{checkpoint_id}/content"
        query = {"expectedContentDisposition": "attachment"}
        return self._download("getCheckpointContent", "getCheckpointContent", path=path, **query)

    def close(self) -> None:
        pass

    def __enter__(self) -> MemorySource:  # in place of ``with serve(world) as server``
        return self

    def __exit__(self, *exc: object) -> None:
        pass
