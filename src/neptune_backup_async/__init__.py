"""Complete, faithful, resumable and fast backups of Neptune.ai workspaces to local disk."""

import logging

from .api import backup, list_projects
from .errors import (
    AuthenticationError,
    BackupError,
    DestinationError,
    DestinationLockedError,
    FetchError,
    HttpStatusError,
    NotABackupError,
    ProgressCallbackError,
    ProjectNotFoundError,
    ServerLostError,
    ServerUnreachableError,
    TransientError,
    UnexpectedError,
    UsageError,
)
from .format.report import BackupReport, Note, Progress, summarize
from .format.reports import load_reports
from .selection import FieldFilter, RunFilter, Selection, Shard
from .to_mlflow import LoadReport, load_mlflow

__all__ = [
    "AuthenticationError",
    "BackupError",
    "BackupReport",
    "DestinationError",
    "DestinationLockedError",
    "FetchError",
    "FieldFilter",
    "HttpStatusError",
    "LoadReport",
    "NotABackupError",
    "Note",
    "Progress",
    "ProgressCallbackError",
    "ProjectNotFoundError",
    "RunFilter",
    "Selection",
    "ServerLostError",
    "ServerUnreachableError",
    "Shard",
    "TransientError",
    "UnexpectedError",
    "UsageError",
    "backup",
    "list_projects",
    "load_mlflow",
    "load_reports",
    "summarize",
]

# A library prints nothing unless its user configures logging (an embedding service, or our CLI).
logging.getLogger(__name__).addHandler(logging.NullHandler())
