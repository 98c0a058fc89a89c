"""Complete, faithful, resumable and fast backups of Neptune.ai workspaces to local disk."""

from .api import backup, list_projects
from .errors import (
    AuthenticationError,
    BackupError,
    DestinationError,
    FetchError,
    NotABackupError,
    ProjectNotFoundError,
    ServerUnreachableError,
    UsageError,
)
from .report import BackupReport, Note, Progress, load_reports, summarize
from .selection import FieldFilter, RunFilter, Selection, Shard
from .to_mlflow import LoadReport, load_mlflow

__all__ = [
    "AuthenticationError",
    "BackupError",
    "BackupReport",
    "DestinationError",
    "FetchError",
    "FieldFilter",
    "LoadReport",
    "NotABackupError",
    "Note",
    "Progress",
    "ProjectNotFoundError",
    "RunFilter",
    "Selection",
    "ServerUnreachableError",
    "Shard",
    "UsageError",
    "backup",
    "list_projects",
    "load_mlflow",
    "load_reports",
    "summarize",
]
