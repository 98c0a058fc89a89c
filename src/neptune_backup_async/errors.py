"""One exception hierarchy. Every message says what happened and what to do next.

Every error that ``await backup(...)`` raises is one of these, alone (never an exception
group). Errors with ``exit_code`` 2 stop the whole backup; a :class:`FetchError` fails one
field, run or listing, and the backup goes on.
"""

from __future__ import annotations

import enum
import signal
import sys
from collections.abc import Iterator
from contextvars import ContextVar

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup


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


class DestinationLockedError(DestinationError):
    """Another backup (or load) is writing into the destination: two at once would undo each
    other's work. The message names it: pid, host and start time."""


class ServerUnreachableError(BackupError):
    """The Neptune server could not be reached at start-up."""

    exit_code = 2


class ServerLostError(ServerUnreachableError):
    """The Neptune server stopped answering during the backup; the same command resumes."""


class NotABackupError(BackupError):
    """A folder given to ``verify`` or ``report`` holds no backup."""

    exit_code = 2


class DamagedError(BackupError):
    """Something other than what a backup writes is where one object of the backup goes (a
    file or a symbolic link in the place of its folder): that object fails, named with the
    path, and the backup goes on. A damaged manifest or journal is no error: the object is
    fetched again (docs/FORMAT.md "A damaged folder")."""


class LayoutError(BackupError):
    """Two fields of one object would share a path; the field is not written."""


class FetchError(BackupError):
    """Fetching one field, run or project failed after retries; the backup goes on."""


class HttpStatusError(FetchError):
    """Neptune answered with an error status that another try would not change (a 4xx)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Retry(enum.Enum):
    """Why a request is tried again: what the retry does hangs on this, never on text."""

    CONNECTION = "connection"  # refused, reset or dropped: no answer came
    TIMEOUT = "timeout"  # no answer in time
    STATUS = "status"  # a status worth another try (408, 5xx), or S3's error codes like it
    THROTTLED = "throttled"  # "not now": a 429, or S3's SlowDown
    CUT_OFF = "cut off"  # a body cut short
    WRONG_ANSWER = "wrong answer"  # a download that cannot be what the listing says, a page that does not fit
    INVALID_ANSWER = "invalid answer"  # not JSON


# How the report counts the throttles (see TransientError.label): they are marked as such.
THROTTLE_LABELS = frozenset({"HTTP 429", "S3 SlowDown", "S3 429"})


class MalformedAnswerError(FetchError):
    """Neptune's answer is JSON, but not of the shape its API promises: a key missing, a value
    of the wrong type. Not retried: unlike a body garbled in transit (not JSON at all, a
    :class:`TransientError`), a well-formed answer would most likely come back the same."""


class TransientError(FetchError):
    """A failure worth trying again: a retryable status, a dropped or cut connection, a garbled
    answer. ``reason`` says which, and so how it is retried; ``status`` is None when no answer
    came. ``label`` is what the report counts it under: ``HTTP <status>`` for a status, else
    the reason's value, unless given (S3's codes)."""

    def __init__(
        self,
        message: str,
        *,
        reason: Retry,
        status: int | None = None,
        retry_after: float | None = None,
        label: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after
        self.label = label or (reason.value if status is None else f"HTTP {status}")

    @property
    def throttled(self) -> bool:
        """Not now, rather than failed: waited out, and it narrows the bound of requests."""
        return self.reason is Retry.THROTTLED

    @property
    def connection_failed(self) -> bool:
        """No answer came at all: the server may be gone."""
        return self.status is None and self.reason in (Retry.CONNECTION, Retry.TIMEOUT)


class ProgressCallbackError(BackupError):
    """The ``progress`` callback given to ``backup()`` raised; its exception is the ``__cause__``."""


class UnexpectedError(BackupError):
    """A bug in this package; the original exception is the ``__cause__``."""


def unexpected(e: BaseException, during: str = "") -> str:
    """How a bug of this package is named to the user: as a bug, never as the server's fault."""
    return f"unexpected {type(e).__name__}{' ' + during if during else ''}: {e}. Please report it with the log file"


def leading_error(e: BaseException) -> BaseException:
    """The one exception that stands for ``e``, which may be a task group's bundle: an error
    that stops the backup first, then any BackupError, then the first other error. A bundle
    of nothing but cancels is returned as it is."""
    leaves = list(_leaves(e))
    stops = [leaf for leaf in leaves if isinstance(leaf, BackupError) and not isinstance(leaf, FetchError)]
    ours = [leaf for leaf in leaves if isinstance(leaf, BackupError)]
    errors = [leaf for leaf in leaves if isinstance(leaf, Exception)]
    return next(iter(stops or ours or errors), e)


def _leaves(e: BaseException) -> Iterator[BaseException]:
    if isinstance(e, BaseExceptionGroup):
        for inner in e.exceptions:
            yield from _leaves(inner)
    else:
        yield e


def redact(text: str, secrets: list[str]) -> str:
    """Replace every secret in ``text``, so that no token reaches a log, error or report."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


EXIT_INTERRUPTED = 128 + signal.SIGINT  # Ctrl-C, or a cancel from the caller


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or a stop signal (SIGTERM, SIGHUP) stopped a command, once its work had unwound
    (its report written); it exits with 128 + the signal's number, as a shell reports it."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum


def not_ignored(*signums: signal.Signals) -> list[signal.Signals]:
    """Of ``signums``, those this process does not ignore. Asked before a handler of our own
    is installed, that is those it was not started ignoring: as a shell does, a program leaves
    ignored what whoever started it meant to be (SIGHUP under ``nohup``, Ctrl-C for a command
    a script starts with ``&``)."""
    return [s for s in signums if signal.getsignal(s) is not signal.SIG_IGN]


class Stop:
    """What a cancel that is coming stands for: the exit code the report of a cancelled backup
    or load gives (see :func:`exit_code_of`). The command line sets it from the signal."""

    def __init__(self) -> None:
        self.exit_code = EXIT_INTERRUPTED


stopping: ContextVar[Stop | None] = ContextVar("stopping", default=None)


def exit_code_of(e: BaseException) -> int:
    """The exit code of a command stopped by ``e``: a BackupError's own, 1 for a bug, and for a
    cancel or Ctrl-C 130, or 128 + the stop signal's number when the command line says so."""
    leading = leading_error(e)
    if isinstance(leading, BackupError):
        return leading.exit_code
    if isinstance(leading, Exception):
        return 1
    if isinstance(leading, Interrupted):
        return leading.exit_code
    stop = stopping.get()
    return stop.exit_code if stop is not None else EXIT_INTERRUPTED
