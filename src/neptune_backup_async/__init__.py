"""Complete, faithful, resumable and fast backups of Neptune.ai workspaces to local disk."""

import logging

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

__all__ = [
    "AuthenticationError",
    "BackupError",
    "BackupReport",
    "DestinationError",
    "FetchError",
    "FieldFilter",
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
    "load_reports",
    "summarize",
]

# Failures are logged; without a handler of the embedding program's, Python would print them on stderr.
logging.getLogger(__name__).addHandler(logging.NullHandler())
