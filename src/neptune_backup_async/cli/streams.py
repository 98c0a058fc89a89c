"""stdout and stderr that a reader may stop reading: ``| head``, a closed pipe, a gone terminal.

A closed output is no failure of the work: what the program still has to say is dropped,
and the exit code stays the one the work earned (cron and CI read it, not the lost text).
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO


class _Dropping:
    """A text stream that, once its reader is gone, points its file at nothing and goes on."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._to_nowhere()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._to_nowhere()

    def _to_nowhere(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding...: the stream's own
        return getattr(self._stream, name)


def tolerate_closed_outputs() -> None:
    """Make writing to stdout or stderr never fail because their reader went away."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, _Dropping):
            setattr(sys, name, _Dropping(stream))
