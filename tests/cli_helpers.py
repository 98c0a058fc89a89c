"""Running the command line as a user does: a real process, on pipes or on a terminal."""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import threading
import time
import warnings
from pathlib import Path
from typing import Any
from unittest import mock

import neptune_backup_async
from neptune_backup_async.cli import main
from neptune_backup_async.testing import Hold

CLI = [sys.executable, "-m", "neptune_backup_async"]
#: What ``sys.argv[0]`` is in a process started as :data:`CLI`.
PYTHON_M = str(Path(neptune_backup_async.__file__).with_name("__main__.py"))
#: Every command but the backup, which is the default one.
OTHER_COMMANDS = ("list-projects", "verify", "view", "report", "load-mlflow", "load-wandb", "-h", "--help")


def command(*args: str) -> list[str]:
    """The command line that runs ``args``; a backup in one process unless ``--processes`` is given.

    The default, one process per usable core, starts worker processes that each import the
    neptune client (a second of CPU each): only the tests of processes ask for them, by name.
    """
    backs_up = not args or args[0] not in OTHER_COMMANDS
    one_process = ["--processes", "1"] if backs_up and "--processes" not in args else []
    return [*CLI, *args, *one_process]


def cli_env(token: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NEPTUNE_API_TOKEN"}
    if token is not None:
        env["NEPTUNE_API_TOKEN"] = token
    return env


def run_cli(
    *args: str, token: str | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args),
        capture_output=True,
        text=True,
        env=cli_env(token),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )


def run_here(
    *args: str, token: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """:func:`run_cli` in this process, through the same ``main`` with the same arguments, exit
    code and output: for tests whose point is not the process boundary. It saves a process's
    start-up (the neptune client's import: a second of CPU) and lets a test change the command
    line's parts (as :func:`fast_retry.fast_command_line` does).

    What a process would show is shown: the program name of ``python -m neptune_backup_async``,
    warnings as a fresh interpreter filters them, and errors in threads and in ``__del__``, all
    on the captured stderr. What it cannot show (the exit after ``main``: stop signals, closed
    pipes, the interpreter's teardown) is tested with real processes."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.dict(os.environ, cli_env(token), clear=True))
        stack.enter_context(mock.patch.object(sys, "argv", [PYTHON_M, *args]))
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        stack.enter_context(warnings.catch_warnings())
        _fresh_interpreter_warnings()
        stack.enter_context(mock.patch.object(threading, "excepthook", threading.__excepthook__))
        stack.enter_context(mock.patch.object(sys, "unraisablehook", sys.__unraisablehook__))
        if cwd is not None:
            stack.callback(os.chdir, os.getcwd())
            os.chdir(cwd)
        try:
            code = main.main(command(*args)[len(CLI) :])
        except SystemExit as e:  # argparse's --help and usage errors end the process
            code = e.code if isinstance(e.code, int) else 1
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def _fresh_interpreter_warnings() -> None:
    """The warning filters of ``python -m`` with no ``-W`` (pytest's record them instead)."""
    warnings.resetwarnings()
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.simplefilter("ignore", category, append=True)
    warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")


def held(hold: Hold, proc: subprocess.Popen[Any], timeout: float = 60) -> bool:
    """Wait until the fake server holds a request of ``proc`` (see ``Hold``); False if the
    process ended first."""
    deadline = time.monotonic() + timeout  # a guard against a hang, not a measure
    while not hold.reached.wait(0.005):
        if proc.poll() is not None:
            return False
        assert time.monotonic() < deadline, "the backup made no progress"
    return True


def no_traceback(text: str) -> None:
    """What Python prints when something escaped: never for a user."""
    assert "Traceback" not in text, text
    assert "Exception ignored" not in text, text


class Terminal:
    """The command line (``args`` as :func:`command` takes them) on a pseudo-terminal, read
    and typed into like a person would."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.master, slave = pty.openpty()
        # A terminal of 50 lines of 200 columns: one opened without a size has 0 columns.
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        self.proc = subprocess.Popen(
            command(*args), stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, close_fds=True
        )
        os.close(slave)
        self.screen = ""

    def read_until(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.screen:
            left = deadline - time.monotonic()
            assert left > 0, f"never saw {text!r}; screen:\n{self.screen}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    self.screen += os.read(self.master, 4096).decode(errors="replace")
                except OSError:  # the child closed the terminal
                    assert text in self.screen, f"never saw {text!r}; screen:\n{self.screen}"
        return self.screen

    def read_to_end(self, timeout: float = 60) -> str:
        """Everything until the child closes the terminal."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"the program did not end; screen:\n{self.screen}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    return self.screen
                if not chunk:
                    return self.screen
                self.screen += chunk.decode(errors="replace")

    def type(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        os.close(self.master)
