"""One exception hierarchy. Every message says what happened and what to do next."""

from __future__ import annotations


class BackupError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code = 1


class UsageError(BackupError):
    """The command line or the options are wrong."""

    exit_code = 2


class AuthenticationError(BackupError):
    """The API token is missing, malformed, expired or revoked."""

    exit_code = 2


class ProjectNotFoundError(BackupError):
    """A project does not exist, or the token may not read it."""

    exit_code = 2


class DestinationError(BackupError):
    """The destination folder cannot be created or written."""

    exit_code = 2


class ServerUnreachableError(BackupError):
    """The Neptune server could not be reached."""

    exit_code = 2


class NotABackupError(BackupError):
    """A folder given to ``verify`` or ``report`` holds no backup."""

    exit_code = 2


class LayoutError(BackupError):
    """Two fields of one object would share a path; the field is not written."""


class FetchError(BackupError):
    """Fetching one field, run or project failed after retries; the backup goes on."""


def redact(text: str, secrets: list[str]) -> str:
    """Replace every secret in ``text``, so that no token reaches a log, error or report."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
