"""The command line's log file: what a backup records there, and where an unexpected error goes.

The log says what was asked (version, projects, options; never the token), what each
project's listing found, every failed field with its reason (the pipeline logs those),
how often requests were retried, and the final summary. Retries are counted, not logged
one by one: a long backup under faults writes a progress line at most once a minute.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import logging
import platform
import tempfile
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

from .. import domain
from ..errors import DestinationError, redact
from ..format.report import NAMES, BackupReport, Progress, plural, summarize
from ..format.reports import read_report

log = logging.getLogger("neptune_backup_async")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
PROGRESS_EVERY = 60.0  # seconds between progress lines in the log


class _Redact(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage(), self.secrets)
        record.args = None
        if record.exc_info:  # the traceback, formatted now so that it is redacted too
            record.msg += "\n" + redact("".join(traceback.format_exception(*record.exc_info)), self.secrets)
            record.exc_info = None
        return True


@contextlib.contextmanager
def log_to(path: Path, secrets: list[str]) -> Iterator[None]:
    """Send this package's log (and the neptune client's warnings) to ``path`` while inside."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError as e:
        why = "a file is in the way" if isinstance(e, (FileExistsError, NotADirectoryError)) else e.strerror
        raise DestinationError(
            f"Cannot write the log file {path} ({why or e}). Choose another --log-file or fix its permissions."
        ) from None
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(_Redact(secrets))
    loggers = [logging.getLogger("neptune_backup_async"), logging.getLogger("neptune")]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO if lg.name == "neptune" else logging.DEBUG)
    try:
        yield
    finally:
        for lg, level in saved:
            lg.removeHandler(handler)
            lg.setLevel(level)
        handler.close()


def versions() -> str:
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"

    return (
        f"neptune-backup-async {version('neptune-backup-async')} (neptune {version('neptune')},"
        f" Python {platform.python_version()})"
    )


def options(args: argparse.Namespace, leave_out: tuple[str, ...]) -> str:
    """The options given, as flags: ``--concurrency 8 --download-artifacts``."""
    flags = []
    for name, value in vars(args).items():
        if name in leave_out or value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        flags.append(flag if value is True else f"{flag} {value}")
    return " ".join(flags)


def log_start(args: argparse.Namespace) -> None:
    what = "dry run" if args.dry_run else "backup"
    log.info("%s: %s of %s into %s", versions(), what, args.projects, args.output)
    log.info("options: %s", options(args, ("command", "projects", "output")) or "none")


def log_end(report: BackupReport) -> None:
    for name, project in sorted(report.projects.items()):
        counts = ", ".join(
            f"{plural(c.found, *NAMES[kind])} ({c.done - c.unchanged} saved, {c.unchanged} unchanged,"
            f" {c.failed} failed)"
            for kind, c in project.counts.items()
            if c.found
        )
        log.info("%s: %s", name, counts or "nothing backed up")
    for line in report.summary().splitlines():  # with the retries, by reason
        log.info("%s", line.strip())


def log_stopped(report: Path, since: dt.datetime) -> None:
    """The summary of the report that a backup stopped midway wrote at ``report``, in the log;
    when it wrote none there since ``since`` (it stopped before it began), a line that says so."""
    with contextlib.suppress(OSError, ValueError):
        doc = read_report(report)
        if doc.get("started_at") and domain.parse_iso(doc["started_at"]) >= since:
            for line in summarize(doc).splitlines():
                log.info("%s", line.strip())
            return
    log.info("Stopped before the backup began: nothing was backed up.")


class LogProgress:
    """A progress line in the log at most every ``every`` seconds, with retries and failures so far."""

    def __init__(self, every: float = PROGRESS_EVERY) -> None:
        self.every = every
        self._last = time.monotonic()

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if now - self._last < self.every:
            return
        self._last = now
        total = str(p.objects_found) if p.listing_done else f"{p.objects_found} found so far"
        log.info(
            "progress: %s; %d of %s objects done, %d failed, %s written, %s",
            p.stage,
            p.objects_done,
            total,
            p.objects_failed,
            plural(p.bytes_written, "byte"),
            plural(p.retries, "retry", "retries"),
        )


def write_crash_log(error: BaseException, secrets: list[str]) -> Path:
    """Write an unexpected error's traceback where the user can find it; return that path."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    with tempfile.NamedTemporaryFile(
        "w", prefix=f"neptune-backup-error-{stamp}-", suffix=".log", delete=False, encoding="utf-8"
    ) as f:
        f.write(f"{versions()}\n{redact(text, secrets)}")
    return Path(f.name)
