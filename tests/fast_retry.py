"""Retries without the waiting, for in-process backups whose faults persist or repeat.

The same tries and budgets as the tool's own policy (so "gave up after 8 tries" still reads
so), with back-offs of a few milliseconds instead of up to 20 s: ``backup(..., **FAST_RETRY)``,
or :func:`fast_command_line` for the command line.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

from neptune_backup_async.cli import options
from neptune_backup_async.remote.http import RetryPolicy

_FAST = {"base": 0.001, "cap": 0.01}
FAST_RETRY: dict[str, Any] = {"retry": RetryPolicy(**_FAST)}


def fast_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same for the command line run in this process (``cli_helpers.run_here``): the
    policy its options build, with the back-offs of FAST_RETRY."""
    monkeypatch.setattr(options, "RetryPolicy", functools.partial(RetryPolicy, **_FAST))
