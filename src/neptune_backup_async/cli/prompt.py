"""The questions asked on a terminal when ``--projects`` or ``--output`` is missing, as the original script did.

Every answer is checked as it is typed, and a bad one is asked again, so that nothing is
created (no folder, no log) before all the answers are valid.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from ..errors import UsageError

T = TypeVar("T")
DEFAULT_OUTPUT = Path("neptune-backup")


def choose_projects(answer: str, projects: Sequence[str]) -> list[str]:
    """The projects an answer names: numbers (``2``, ``1-3``) from the list, full names, or ``all``.

    Raises ValueError with what to type instead.
    """
    words = [w for w in re.split(r"[,\s]+", answer.strip()) if w]
    if not words:
        raise ValueError("Type the numbers or names of the projects, or 'all'.")
    if [w.lower() for w in words] == ["all"]:
        return list(projects)
    chosen: list[str] = []
    for word in words:
        numbers = re.fullmatch(r"(\d+)(?:-(\d+))?", word)
        if numbers:
            first, last = int(numbers[1]), int(numbers[2] or numbers[1])
            if last < first:
                raise ValueError(f"There is no project {word}: the range is backwards; write {last}-{first}.")
            if not 1 <= first <= last <= len(projects):
                raise ValueError(f"There is no project {word}: the numbers go from 1 to {len(projects)}.")
            chosen += projects[first - 1 : last]
        elif word in projects:
            chosen.append(word)
        else:
            raise ValueError(
                f"{word!r} is not one of the projects listed: type its number or its full name"
                " (WORKSPACE/PROJECT), or 'all'."
            )
    return list(dict.fromkeys(chosen))


def check_destination(answer: str) -> Path:
    """The backup folder an answer names, if it exists and is writable or can be created; else ValueError.

    Leaves nothing behind.
    """
    path = Path(os.path.expanduser(answer)) if answer else DEFAULT_OUTPUT
    existing = path.absolute()
    while not existing.exists():
        existing = existing.parent
    if existing == path.absolute() and not existing.is_dir():
        raise ValueError(f"{path} is a file; give a folder.")
    if not existing.is_dir():
        raise ValueError(f"Cannot create {path}: {existing} is a file.")
    # Permissions do not tell (root may write anywhere, yet not in /proc): create a folder there
    # and remove it at once.
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".neptune-backup-probe-", dir=existing))
    except OSError as e:
        raise ValueError(
            f"Cannot create {path} in {existing} ({e.strerror or e}); choose another folder."
        ) from None
    return path


def yes_or_no(answer: str) -> bool:
    word = answer.strip().lower()
    if word in ("", "n", "no"):
        return False
    if word in ("y", "yes"):
        return True
    raise ValueError("Answer y or n.")


def ask(question: str, parse: Callable[[str], T]) -> T:
    """Ask on stderr until ``parse`` accepts the answer; end of input gives up."""
    while True:
        sys.stderr.write(question)
        sys.stderr.flush()
        line = sys.stdin.readline()
        if not line:
            sys.stderr.write("\n")  # the error starts on a line of its own, not after the question
            raise UsageError("No answer given; nothing was backed up.")
        try:
            return parse(line.strip())
        except ValueError as e:
            sys.stderr.write(f"  {e}\n")


def ask_for_missing(args: argparse.Namespace, list_projects: Callable[[], list[str]]) -> None:
    """Fill in ``args.projects``, ``args.output`` and ``--download-artifacts`` from the user's answers."""
    if not sys.stdin.isatty():
        missing = " and ".join(f"--{n}" for n in ("projects", "output") if getattr(args, n) is None)
        raise UsageError(f"Missing {missing}. Example: neptune-backup --projects ws/proj --output ./backup")
    if args.projects is None:
        sys.stderr.write("Listing the projects you can back up...\n")
        projects = list_projects()
        if not projects:
            raise UsageError("This API token can see no project. Check the token, or ask for access to one.")
        width = len(str(len(projects)))
        sys.stderr.write("".join(f"  {i:>{width}}  {name}\n" for i, name in enumerate(projects, 1)))
        chosen = ask(
            "Projects to back up (numbers or names, comma-separated; 1-3 for a range; or 'all'): ",
            lambda answer: choose_projects(answer, projects),
        )
        args.projects = ",".join(chosen)
    if args.output is None:
        args.output = ask(f"Where to write the backup [./{DEFAULT_OUTPUT}]: ", check_destination)
        if not args.download_artifacts:
            args.download_artifacts = ask("Download the files artifacts point to? [y/N]: ", yes_or_no)
