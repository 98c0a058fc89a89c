"""What saving an object's fields needs, handed over explicitly (:class:`Context`)."""

from __future__ import annotations

from dataclasses import dataclass

from ..remote.artifacts.files import ArtifactFiles
from ..remote.source import Source
from .limiter import Limits
from .recorder import Recorder
from .retry import Retrier


@dataclass(frozen=True)
class Context:
    """One process's means of saving fields: where they come from, its bounds (requests,
    threads, tasks) and retries, the artifact files, where progress goes, and the two
    options that decide what is fetched (``full``, ``download_artifacts``)."""

    source: Source
    retrier: Retrier
    limits: Limits
    artifact_files: ArtifactFiles
    recorder: Recorder
    full: bool
    download_artifacts: bool
