"""What saving an object's fields needs, handed over explicitly (:class:`Context`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..remote.artifacts.files import ArtifactFiles
from ..remote.source import Source
from .limiter import Limits
from .recorder import Recorder
from .retry import Retrier


class SeriesPages:
    """How many points a series page asks for, learnt in one process's backup: at first the
    source's largest (None); after the server refused a page that large and a smaller one
    came, that smaller size, for the rest of the backup."""

    def __init__(self) -> None:
        self.limit: int | None = None

    def worked(self, limit: int) -> None:
        if self.limit is None or limit < self.limit:
            self.limit = limit


@dataclass(frozen=True)
class Context:
    """One process's means of saving fields: where they come from, its bounds (requests,
    threads, tasks) and retries, the artifact files, where progress goes, and the two
    options that decide what is fetched (``full``, ``download_artifacts``), and the series
    page size learnt so far."""

    source: Source
    retrier: Retrier
    limits: Limits
    artifact_files: ArtifactFiles
    recorder: Recorder
    full: bool
    download_artifacts: bool
    series_pages: SeriesPages = field(default_factory=SeriesPages)
