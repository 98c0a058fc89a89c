"""The command line: ``neptune-backup [backup] --projects ws/a,ws/b --output DEST``.

Exit codes: 0 all backed up; 1 some fields or runs failed (named in the report);
2 bad usage, token, project or destination, or the server unreachable or lost (rerun to
resume); 130 interrupted (rerun to resume).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import os
import shlex
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, TypeVar

from .. import api
from ..disk.place import Place
from ..engine.assembly import resolve_token
from ..errors import BackupError, DestinationError, NotABackupError, UsageError, exit_code_of, redact
from ..format import layout, values
from ..format.report import CONNECTING, BackupReport, Progress, plural, summarize, when_line
from ..format.reports import load_reports
from ..settings import TOKEN_ENV, BackupSettings
from . import interrupt, logfile, prompt, streams
from . import options as backup_options
from .display import Bars
from .options import selection_from

COMMANDS = (
    "backup",
    "list-projects",
    "verify",
    "view",
    "report",
    "load-mlflow",
    "load-wandb",
    "export-parquet",
)
log = logging.getLogger("neptune_backup_async")
T = TypeVar("T")


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors in one line starting with ``error:`` as every other error here."""

    def error(self, message: str) -> NoReturn:
        hint = _program() + self.prog[len("neptune-backup") :]  # as the user started it
        self.exit(2, f"error: {message[0].upper()}{message[1:]}. Run `{hint} --help` for the options.\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="neptune-backup",
        description="Back up Neptune.ai projects to local disk: every field of every run, resumable and fast.",
        epilog="The API token is read from NEPTUNE_API_TOKEN, or from the file given to --api-token-file.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    b = sub.add_parser(
        "backup",
        help="back up projects (the default command)",
        description="Back up projects into --output; a rerun fetches only what changed. Without --projects or"
        " --output, on a terminal, it lists your projects and asks. Ctrl-C, SIGTERM or SIGHUP stops it and"
        " writes its report (a second one stops at once); the same command resumes it. Exit 0: all backed up;"
        " 1: some fields or objects failed (named in the report and the log); 2: bad usage, token, project,"
        " server or destination, or another backup writing there; 130: interrupted (143: SIGTERM, 129: SIGHUP).",
    )
    backup_options.add_arguments(b)
    lp = sub.add_parser("list-projects", help="print the projects the token can see")
    backup_options.token_argument(lp)
    v = sub.add_parser(
        "verify",
        help="check a backup against its manifests, offline",
        description="Check that every file the manifests list exists, has its size and sha256, that no other"
        " file is in a run folder, and that every run is complete. Needs no network and no token."
        " Exit 0: intact; 1: problems, one per line; 2: it does not exist or is not a backup.",
    )
    v.add_argument("destination", type=Path, help="the backup folder")
    v.add_argument(
        "--deep", action="store_true", help="also parse every series CSV, JSON and zip file the backup wrote"
    )
    from .. import view

    w = sub.add_parser(
        "view",
        help="write an offline HTML site to browse a backup",
        description="Write a static HTML site from a backup (default: DESTINATION/_site) and print the path of"
        " its index.html. It opens from the file system, with no server and no network; a rerun rebuilds only"
        " the runs that changed. Needs no token.",
    )
    view.add_arguments(w)
    r = sub.add_parser(
        "report",
        help="summarize a backup, merging the reports of its shards",
        description="Print when the backup in DESTINATION ran and a summary of what it did. Shards each leave"
        " a report of their own"
        " (backup-report.shard-K-of-N.json); they are merged into one summary, and --output writes the"
        " merged report as JSON. Exit 0: every report says all was backed up; 1: failures or interruptions;"
        " 2: no report there (or no such folder).",
    )
    r.add_argument("destination", type=Path, help="the backup folder")
    r.add_argument("--output", type=Path, help="also write the merged report here, as JSON")
    from .. import to_mlflow

    m = sub.add_parser(
        "load-mlflow",
        help="load a backup into MLflow (needs the mlflow extra)",
        description="Load every run, model, model version and project of a backup into MLflow: experiments,"
        " runs, params, metrics, tags and artifacts (docs/MLFLOW.md). A rerun resumes a stopped load and adds"
        " what a later backup added, without loading anything twice. Needs no token."
        " Exit 0: all loaded; 1: some objects or fields failed, or the backup is incomplete (named in"
        " DESTINATION/load-mlflow-report.json); 2: bad usage, not a backup, MLflow missing or unreachable.",
    )
    to_mlflow.add_arguments(m)
    from .. import to_wandb

    w = sub.add_parser(
        "load-wandb",
        help="load a backup into Weights & Biases (needs the wandb extra)",
        description="Load every run, model, model version and project of a backup into W&B, online or as"
        " offline runs for `wandb sync`: runs, config, history with each series' own steps, tags and files"
        " (docs/WANDB.md). A rerun resumes a stopped load and adds what a later backup added, without loading"
        " anything twice. Needs no Neptune token. Exit 0: all loaded; 1: some objects or fields failed, or the"
        " backup is incomplete (named in DESTINATION/load-wandb-report.json); 2: bad usage, not a backup,"
        " wandb missing.",
    )
    to_wandb.add_arguments(w)
    from .. import data

    x = sub.add_parser(
        "export-parquet",
        help="write a backup as Parquet files, to query with DuckDB, pandas or polars (needs the data extra)",
        description="Write OUTPUT/objects.parquet, float_series.parquet, string_series.parquet and files.parquet"
        " from a backup (docs/DATA.md). Needs no token. Exit 0: all written; 1: objects that verify would flag"
        " were skipped or marked ok=false (named on stderr); 2: bad usage, not a backup, pyarrow missing.",
    )
    data.add_arguments(x)
    return parser


def _run_report(args: argparse.Namespace) -> int:
    merged = load_reports(args.destination)
    _out(f"{when_line(merged)}\n{summarize(merged)}")
    if args.output is not None:
        try:
            args.output.write_text(values.dumps(merged), encoding="utf-8")
        except OSError as e:
            raise DestinationError(f"Cannot write {args.output} ({e.strerror or e}).") from None
    return int(merged["exit_code"])


def _run_verify(args: argparse.Namespace) -> int:
    from ..format.verify import locate, verify

    if not args.destination.exists():
        raise NotABackupError(f"{args.destination} does not exist. Give the folder a backup was written to.")
    root, part = locate(args.destination)
    result = verify(root, deep=args.deep, part=part)
    _out("\n".join(map(str, result.problems)))
    verdict = "intact" if not result.problems else plural(len(result.problems), "problem")
    objects, files = plural(result.objects, "object"), plural(result.files, "file")
    print(f"Verified {objects} and {files}: {verdict}.", file=sys.stderr)
    return result.exit_code


def _run_view(args: argparse.Namespace) -> int:
    from .. import view

    if not args.destination.exists():
        raise NotABackupError(f"{args.destination} does not exist. Give the folder a backup was written to.")
    where: Path = args.output or args.destination / "_site"
    try:
        return view.run(args)
    except OSError as e:
        if e.filename is not None and not Path(e.filename).absolute().is_relative_to(where.absolute()):
            raise  # not the site's own folder
        raise DestinationError(
            f"Cannot write the site to {where} ({e.strerror or e}). Choose another --output or fix its"
            " permissions."
        ) from None


def _out(text: str) -> None:
    """Print on stdout (a reader that stopped reading is no error: streams.tolerate_closed_outputs)."""
    if text:
        print(text, flush=True)


def _read_token(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise UsageError(f"Cannot read the API token file {path} ({e.strerror}).") from None
    if not token:
        raise UsageError(f"The API token file {path} is empty. Put your Neptune API token in it.")
    return token


class _Crashed(Exception):
    """An unexpected error, already written to the log file named here."""

    def __init__(self, error: Exception, log_file: Path) -> None:
        super().__init__(str(error))
        self.error = error
        self.log_file = log_file


def _run_backup(args: argparse.Namespace, token: str | None) -> int:
    # Every flag, the projects and the token are checked before any prompt, and before anything
    # is created (DEST, the log): a usage error leaves nothing behind.
    selection = selection_from(args)
    settings = backup_options.settings_from(args, selection)
    if args.projects is not None:
        api.parse_projects(args.projects)
    resolve_token(token)
    if args.projects is None or args.output is None:
        prompt.ask_for_missing(
            args,
            lambda: interrupt.run_async(
                lambda: api.list_projects(token, allow_insecure_http=args.allow_insecure_http)
            ),
        )
        settings = backup_options.settings_from(args, selection)
    output: Path = args.output
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    shard = f"-{selection.shard_label}" if selection.shard_label else ""
    log_file: Path | None = args.log_file
    if log_file is None and not args.dry_run:  # a dry run writes nothing it was not asked to
        dest = Place(api.prepare_destination(output))  # before the log goes inside it; if this fails, no log
        with contextlib.suppress(OSError):  # anything else in the way, opening the log says
            dest.folder(".neptune-backup", create=True)  # a link there is refused, never followed
        log_file = output / ".neptune-backup" / f"backup-{stamp}{shard}.log"
    with logfile.log_to(log_file, _secrets(token)) if log_file else contextlib.nullcontext():
        logfile.log_start(args)
        if settings.concurrency < args.concurrency:
            cut = f"--concurrency {args.concurrency} is more than a backup can use; using {settings.concurrency}."
            log.warning("%s", cut)
            print(f"warning: {cut}", file=sys.stderr)
        started = dt.datetime.now(dt.timezone.utc)
        try:
            report = _backup(args, token, settings)
        except KeyboardInterrupt as e:
            signum = e.exit_code - 128 if isinstance(e, interrupt.Interrupted) else signal.SIGINT
            log.warning("interrupted by %s", interrupt.what(signum))
            logfile.log_stopped(output / layout.report_name(selection.shard_label), started)
            print(
                "\nInterrupted. Everything finished so far is kept; run the same command again to resume.",
                file=sys.stderr,
            )
            return exit_code_of(e)
        except BackupError as e:
            log.error("%s", e)  # a failure before the backup started is in the log too
            logfile.log_stopped(output / layout.report_name(selection.shard_label), started)
            raise
        except Exception as e:
            log.exception("unexpected error")
            if log_file is None:
                raise
            raise _Crashed(e, log_file) from e
        logfile.log_end(report)
    if args.dry_run:
        _out(report.summary())  # what was asked for: on stdout
        return report.exit_code
    print(report.summary(), file=sys.stderr)
    name = layout.report_name(selection.shard_label)
    print(f"Report: {output / name}\nLog: {log_file}", file=sys.stderr)
    return report.exit_code


def _backup(args: argparse.Namespace, token: str | None, settings: BackupSettings) -> BackupReport:
    """Run the backup with progress bars (on a terminal) and progress lines in the log."""
    bars = Bars(not args.quiet and sys.stderr.isatty(), CONNECTING, args.dry_run)
    in_log = logfile.LogProgress()

    def progress(p: Progress) -> None:
        bars(p)
        in_log(p)

    try:
        return interrupt.run_async(
            lambda: api.run_backup(args.projects, settings, api_token=token, progress=progress)
        )
    finally:
        bars.close()


def _run_demo(args: argparse.Namespace) -> int:
    from ..testing import WORKLOADS, generate, serve

    with tempfile.TemporaryDirectory(prefix="neptune-backup-demo-") as tmp:
        world = generate(WORKLOADS["demo"], artifact_root=Path(tmp))
        with serve(world) as server:
            print(
                f"Demo: a fake Neptune server at {server.base_url} with {len(world.projects)} projects.",
                file=sys.stderr,
            )
            args.projects = args.projects or "all"
            args.output = args.output or backup_options.DEMO_OUTPUT
            args.download_artifacts = True
            code = _run_backup(args, server.api_token)
    if code in (0, 1) and not args.dry_run:
        me, dest = _program(), shlex.quote(str(args.output))
        print(
            f"Try next:\n  {me} view {dest}      browse it offline, in your web browser"
            f"\n  {me} verify {dest}    check every file against its size and sha256"
            f"\n  {me} report {dest}    what this backup did",
            file=sys.stderr,
        )
    return code


def _program() -> str:
    """How the user started this program, to show commands they can copy."""
    return "python -m neptune_backup_async" if Path(sys.argv[0]).name == "__main__.py" else "neptune-backup"


def _leave_out_unused_imports() -> None:
    """Skip the slowest import of the client's start-up, which nothing here uses.

    ``neptune`` imports bravado, which imports jsonschema, which imports ``rfc3987_syntax`` if
    it can: that builds a parser at import time, 1.1 of the 2.5 s of importing the client.
    jsonschema uses it only to check the "iri" string formats, which no Neptune API spec has,
    and does without it when it is missing. Only the command line does this, as it owns its
    process; ``backup()`` leaves the modules of the program that embeds it alone.
    """
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return its exit code."""
    _leave_out_unused_imports()
    streams.tolerate_closed_outputs()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv.insert(0, "backup")  # backup is the default command
    parser = _parser()
    args = parser.parse_args(argv)
    token: str | None = None
    try:
        token = _read_token(getattr(args, "api_token_file", None))
        if args.command == "verify":
            return _run_verify(args)
        if args.command == "view":
            return _run_view(args)
        if args.command == "report":
            return _run_report(args)
        if args.command == "load-mlflow":
            from .. import to_mlflow

            return to_mlflow.run(args, interrupt.run_async)
        if args.command == "load-wandb":
            from .. import to_wandb

            return to_wandb.run(args, interrupt.run_async)
        if args.command == "export-parquet":
            from .. import data

            return data.run(args)
        if args.command == "list-projects":
            insecure = args.allow_insecure_http
            _out(
                "\n".join(interrupt.run_async(lambda: api.list_projects(token, allow_insecure_http=insecure)))
            )
            return 0
        if args.demo:
            return _run_demo(args)
        return _run_backup(args, token)
    except KeyboardInterrupt as e:
        print("\nInterrupted.", file=sys.stderr)
        return exit_code_of(e)
    except BackupError as e:
        print(f"error: {redact(str(e), _secrets(token))}", file=sys.stderr)
        return e.exit_code
    except Exception as e:  # a bug: one line for the user, the traceback in a log file
        error, log_file = (e.error, e.log_file) if isinstance(e, _Crashed) else (e, None)
        if log_file is None:
            log_file = logfile.write_crash_log(error, _secrets(token))
        message = redact(f"{type(error).__name__}: {error}", _secrets(token))
        print(f"error: unexpected {message}. Please report it with the log file {log_file}", file=sys.stderr)
        return 1


def _secrets(token: str | None) -> list[str]:
    return [token or "", os.environ.get(TOKEN_ENV, "")]


def run() -> NoReturn:
    """The ``neptune-backup`` program. After Ctrl-C (or SIGTERM, SIGHUP) it does not wait for
    requests left in flight.

    Once the neptune client has been imported it also skips the interpreter's teardown, which
    takes ~0.3 s for the client's modules (pandas, bravado...) and that nothing here needs:
    every file is in place, and the log and the output are flushed first.
    """
    interrupt.handle_stop_signals()
    try:
        code = main()
    except KeyboardInterrupt as e:  # a second stop signal after main had handled the first
        interrupt.exit_now(exit_code_of(e))
    if code > 128 or "neptune" in sys.modules:  # stopped by a signal, or the client was imported
        interrupt.exit_now(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
