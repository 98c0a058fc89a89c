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
from .report import BackupReport, Note, Progress

__all__ = [
    "AuthenticationError",
    "BackupError",
    "BackupReport",
    "DestinationError",
    "FetchError",
    "NotABackupError",
    "Note",
    "Progress",
    "ProjectNotFoundError",
    "ServerUnreachableError",
    "UsageError",
    "backup",
    "list_projects",
]
