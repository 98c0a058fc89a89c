"""The small interface every operation reads from: the port the engine uses.

The pipeline, the layout and the writers know only this interface and :mod:`..domain`.
:mod:`.neptune.client` implements it over the ``neptune`` client; its methods block and are
called from worker threads. Each call is one attempt of one Neptune request (a download is
one request, however many chunks): it returns or raises at once, and never sleeps or
retries. The caller retries, in async code (:mod:`..engine.retry`), by the type of the
error: a :class:`~..errors.TransientError` is worth another try, any other error is not.
"""

from __future__ import annotations

from typing import Protocol

from ..domain import (
    ArtifactFileInfo,
    Download,
    FieldInfo,
    ImageInfo,
    ListingPage,
    ObjectRef,
    PageRequest,
    ProjectInfo,
    SeriesPage,
)


class Source(Protocol):
    """What the operations read. Every method blocks; call it from a worker thread."""

    #: The largest series page the server accepts.
    series_page_limit: int

    def projects_page(self, offset: int, limit: int) -> ListingPage[str]:
        """One page of the names of the projects the token may read, with their count."""
        ...

    def get_project(self, qualified_name: str) -> ProjectInfo: ...

    def objects_page(
        self, project: ProjectInfo, kind: str, query: str, page: PageRequest
    ) -> ListingPage[tuple[ObjectRef, str | None]]:
        """One page of the runs, models or model versions matching the NQL ``query``, by
        creation time ascending, each with its creation time, and their count (see
        :mod:`..engine.paging`)."""
        ...

    def get_fields(self, project: ProjectInfo, run: ObjectRef) -> list[FieldInfo]: ...

    def series_page(self, run: ObjectRef, field: FieldInfo, offset: int, limit: int) -> SeriesPage: ...

    def image_count(self, run: ObjectRef, field: FieldInfo) -> int:
        """How many images an image series holds: all that its own listing gives."""
        ...

    def image_page(self, field: FieldInfo, offset: int, limit: int) -> ListingPage[ImageInfo]:
        """The step, time, name and description of some images of a series, from the series
        read as a channel (its id is the field's value), with the channel's count. A server
        may not offer this: it answers with an error status."""
        ...

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

    def checkpoint_size(self, checkpoint_id: str) -> int:
        """The size in bytes of a notebook checkpoint's content, as Neptune lists it."""
        ...

    def open_checkpoint(self, checkpoint_id: str) -> Download:
        """A notebook checkpoint's content: the ``.ipynb`` as it was uploaded."""
        ...

    def close(self) -> None: ...
