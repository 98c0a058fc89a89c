"""The ``load-mlflow`` subcommand: arguments, progress bars, the summary and the exit code."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

from ..disk import lock
from ..loading import command
from ..loading.report import redact_uri
from ..selection import parse_list
from . import loader, tracking
from .load_report import REPORT, LoadReport

TRACKER = command.Tracker(
    "MLflow",
    f"{lock.FOLDER}/load-mlflow.log",
    ("mlflow", "alembic", "sqlalchemy.engine", "huey"),  # each with a handler of its own, to stderr
    REPORT,
)


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
    parser.add_argument(
        "--artifact-root",
        help="where new experiments keep artifacts (default: beside a SQLite database; else MLflow's default)",
    )
    command.add_arguments(
        parser,
        concurrency="the most objects loaded at once, and MLflow calls in flight",
        dry_run="count what would be loaded, asking MLflow what it holds; write nothing",
    )


def run(
    args: argparse.Namespace,
    run_async: Callable[[Callable[[], Awaitable[LoadReport]]], LoadReport] = anyio.run,
) -> int:
    """The command; ``run_async`` runs the load in an event loop (the command line's stops it
    cleanly on Ctrl-C, SIGTERM and SIGHUP)."""
    tracking.require_mlflow()  # before anything else: say how to install it
    dest: Path = args.destination
    projects = parse_list(args.projects)
    command.require_projects(dest, projects)  # before the database is created
    done = command.run_load(
        lambda progress: loader.load_mlflow(
            dest,
            args.tracking_uri,
            experiment_prefix=args.experiment_prefix,
            projects=projects or None,
            runs=parse_list(args.runs) or None,
            concurrency=args.concurrency,
            artifact_root=args.artifact_root,
            dry_run=args.dry_run,
            progress=progress,
        ),
        run_async,
        TRACKER,
        args,
    )
    if isinstance(done, int) or done.dry_run:
        return done if isinstance(done, int) else done.exit_code
    uri = args.tracking_uri or loader.default_uri(dest)
    if not uri.startswith(("http://", "https://")):
        print(f"Browse it: mlflow ui --backend-store-uri {uri}", file=sys.stderr)
    else:
        print(f"Browse it: {redact_uri(uri)}", file=sys.stderr)
    return done.exit_code
