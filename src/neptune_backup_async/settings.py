"""What one backup is asked to do: every option, in one object built once.

The command line and :func:`~.api.backup` build a :class:`BackupSettings`; the process pool,
the workers and the pipeline receive it whole, so an option is added in one place. What
it leaves out never crosses to a worker process: the projects (only the parent lists
them), the API token (a secret, passed in the workers' environment) and the callbacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .errors import UsageError
from .remote.http import RetryPolicy
from .selection import Selection

#: Where the token is read from when none is passed.
TOKEN_ENV = "NEPTUNE_API_TOKEN"
#: The most requests in flight at once when none is asked for.
CONCURRENCY = 8
#: The most requests in flight that a backup uses, whatever is asked: each holds a thread and
#: its buffers, and Neptune answers 429 long before this many (the Gate then backs off anyway).
#: 100000 asked for once took a 16-object dry run 52 s and 870 MB to set up.
MAX_CONCURRENCY = 256


@dataclass(frozen=True)
class BackupSettings:
    """How to back up, checked when built: a bad value is a :class:`~.errors.UsageError`.

    ``destination`` is made absolute, so that every process means the same folder.
    ``concurrency`` is the total of requests in flight, however many ``processes`` share
    it, cut to :data:`MAX_CONCURRENCY`; ``retry`` holds the retry budgets, among them ``lost_after``.
    """

    destination: Path
    concurrency: int = CONCURRENCY
    download_artifacts: bool = False
    full: bool = False
    selection: Selection = field(default_factory=Selection)
    dry_run: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    s3_endpoint_url: str | None = None
    processes: int = 1
    work_here: bool = False  # this process backs up too, as one of the processes
    allow_insecure_http: bool = False  # the token may go over plain http beyond this machine

    def __post_init__(self) -> None:
        if not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise UsageError(f"--concurrency must be a whole number of at least 1; got {self.concurrency!r}.")
        object.__setattr__(self, "concurrency", min(self.concurrency, MAX_CONCURRENCY))
        if not isinstance(self.processes, int) or self.processes < 1:
            raise UsageError(f"--processes must be a whole number of at least 1; got {self.processes!r}.")
        if not self.retry.lost_after > 0:
            raise UsageError(
                f"--lost-server-after must be a number of seconds above 0; got {self.retry.lost_after!r}."
            )
        if self.s3_endpoint_url is not None and not _is_http_url(self.s3_endpoint_url):
            raise UsageError(
                "--s3-endpoint-url must be an http:// or https:// address, such as http://localhost:9000;"
                f" got {self.s3_endpoint_url!r}."
            )
        object.__setattr__(self, "destination", Path(self.destination).resolve())


def _is_http_url(text: str) -> bool:
    try:
        url = urlsplit(text)
    except ValueError:  # e.g. an unclosed [ of an IPv6 address
        return False
    return url.scheme in ("http", "https") and bool(url.hostname)
