"""The ``load-mlflow`` subcommand: arguments, progress bars, the summary and the exit code."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import anyio

from ..disk import lock
from ..errors import ProjectNotFoundError, exit_code_of
from ..selection import parse_list
from . import loader, tracking
from .load_report import REPORT, LoadProgress, LoadReport

OBJECTS = "objects"
LOG = f"{lock.FOLDER}/load-mlflow.log"  # in DEST: what MLflow itself logs, which would break the bars
# The loggers MLflow gives a handler of its own that writes to stderr.
MLFLOW_LOGGERS = ("mlflow", "alembic", "sqlalchemy.engine", "huey")


@contextlib.contextmanager
def mlflow_log_to(path: Path) -> Iterator[None]:
    """Send what MLflow logs (``Creating initial MLflow database tables...``) to ``path``, made
    only once something is logged (in a backup, after the load took its lock beside it), instead
    of stderr."""
    handler = logging.FileHandler(path, encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved = [(lg, lg.handlers) for lg in map(logging.getLogger, MLFLOW_LOGGERS)]
    for lg, _ in saved:
        lg.handlers = [handler]
    try:
        yield
    finally:
        for lg, handlers in saved:
            lg.handlers = handlers
        handler.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("destination", type=Path, help="the backup folder")
    parser.add_argument(
        "--tracking-uri",
        help="where to load: sqlite:///mlflow.db, http://host:5000, a folder, or any URI MLflow accepts"
        f" (default: a SQLite database in DESTINATION/{loader.HOME})",
    )
    parser.add_argument(
        "--experiment-prefix", default="", help="put before every experiment name (<workspace>/<project>)"
    )
    parser.add_argument("--projects", help="only these projects: WORKSPACE/PROJECT[,...] (default: all)")
    parser.add_argument(
        "--runs", help="only these runs (or models, versions, project keys), by sys/id: RUN-1,RUN-7"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=8,
        help="the most objects loaded at once, and MLflow calls in flight (default: 8)",
    )
    parser.add_argument(
        "--artifact-root",
        help="where new experiments keep artifacts (default: beside a SQLite database; else MLflow's default)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="count what would be loaded, asking MLflow what it holds; write nothing",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


class _Bars:
    """tqdm bars for objects and points, on stderr, only when it is a terminal."""

    def __init__(self, enabled: bool, file: TextIO | None = None) -> None:
        self.objects: Any = None
        self.points: Any = None
        if enabled:
            from tqdm import tqdm

            out = file or sys.stderr
            self.objects = tqdm(desc=OBJECTS, unit="obj", file=out, position=0, dynamic_ncols=True)
            self.points = tqdm(desc="points", unit="pt", unit_scale=True, file=out, position=1)

    def __call__(self, p: LoadProgress) -> None:
        if self.objects is None:
            return
        desc = f"{OBJECTS} (starting MLflow…)" if p.starting else OBJECTS
        if self.objects.total != p.objects_found or self.objects.desc != desc:
            self.objects.total = p.objects_found
            self.objects.set_description_str(desc, refresh=False)
            self.objects.refresh()
        self.objects.update(p.objects_done + p.objects_failed - self.objects.n)
        self.points.update(p.points - self.points.n)

    def close(self) -> None:
        for bar in (self.objects, self.points):
            if bar is not None:
                bar.close()


def run(
    args: argparse.Namespace,
    run_async: Callable[[Callable[[], Awaitable[LoadReport]]], LoadReport] = anyio.run,
) -> int:
    """The command; ``run_async`` runs the load in an event loop (the command line's stops it
    cleanly on Ctrl-C, SIGTERM and SIGHUP)."""
    tracking.require_mlflow()  # before anything else: say how to install it
    dest: Path = args.destination
    projects = parse_list(args.projects)
    missing = [p for p in projects if dest.is_dir() and not (dest / p).is_dir()]
    if missing:  # before the database is created: exit 2, as the backup does for an unknown project
        raise ProjectNotFoundError(
            f"The backup in {dest} has no project {', '.join(map(repr, missing))}. Name projects as"
            " WORKSPACE/PROJECT, as folders in it."
        )
    bars = _Bars(enabled=not args.quiet and not args.dry_run and sys.stderr.isatty())
    report: LoadReport | None = None
    try:
        with mlflow_log_to(dest / LOG):
            report = run_async(
                lambda: loader.load_mlflow(
                    dest,
                    args.tracking_uri,
                    experiment_prefix=args.experiment_prefix,
                    projects=projects or None,
                    runs=parse_list(args.runs) or None,
                    concurrency=args.concurrency,
                    artifact_root=args.artifact_root,
                    dry_run=args.dry_run,
                    progress=bars,
                )
            )
    except KeyboardInterrupt as e:
        bars.close()
        print(
            "\nInterrupted. Run the same command again to finish; nothing is loaded twice.", file=sys.stderr
        )
        return exit_code_of(e)
    finally:
        bars.close()
    if args.dry_run:
        print(report.summary())
        return report.exit_code
    print(report.summary(), file=sys.stderr)
    print(f"Report: {dest / REPORT}", file=sys.stderr)
    uri = args.tracking_uri or loader.default_uri(dest)
    if not uri.startswith(("http://", "https://")):
        print(f"Browse it: mlflow ui --backend-store-uri {uri}", file=sys.stderr)
    else:
        print(f"Browse it: {tracking.redact_uri(uri)}", file=sys.stderr)
    return report.exit_code
