"""Retries without the waiting, for in-process backups whose faults persist or repeat.

The same tries and budgets as the tool's own policy (so "gave up after 8 tries" still reads
so), with back-offs of a few milliseconds instead of up to 20 s: ``backup(..., **FAST_RETRY)``.
"""

from __future__ import annotations

from typing import Any

from neptune_backup_async.remote.http import RetryPolicy

FAST_RETRY: dict[str, Any] = {"retry": RetryPolicy(base=0.001, cap=0.01)}
