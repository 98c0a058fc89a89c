"""Retries without the waiting, for in-process backups whose faults persist or repeat.

The same tries and budgets as the tool's own policy (so "gave up after 8 tries" still reads
so), with back-offs of a few milliseconds instead of up to 20 s: ``backup(..., **FAST_RETRY)``.
It takes effect once ``backup()`` takes a ``retry`` policy; until then it is empty, and these
tests pay the real back-off.
"""

from __future__ import annotations

import inspect
from typing import Any, TypeVar, cast

import pytest

from neptune_backup_async import backup
from neptune_backup_async.remote.http import RetryPolicy

T = TypeVar("T")

FAST_RETRY: dict[str, Any] = (
    {"retry": RetryPolicy(base=0.001, cap=0.01)} if "retry" in inspect.signature(backup).parameters else {}
)


def backs_off(test: T) -> T:
    """A test that is slow only for its back-offs: marked slow until FAST_RETRY takes effect."""
    return test if FAST_RETRY else cast(T, pytest.mark.slow(test))
