"""Series points as W&B history rows (pure; docs/WANDB.md "Series").

Each point is a row value under its series' key, with its own step under the series' step
metric (``<key>@step``, a float when Neptune's is) and its time as ``_timestamp`` (seconds
since the epoch, as W&B keeps them). Points of different series with the same time and step
share a row; a row never holds two points of one series.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from . import naming

TIMESTAMP = "_timestamp"


def rows(points: Iterable[tuple[str, Sequence[Any]]]) -> list[dict[str, Any]]:
    """History rows of ``(key, points)`` pairs (points with ``step``, ``value``, ``timestamp`` in ms)."""
    items = sorted(
        ((p.timestamp, p.step, order, key, p.value) for order, (key, pts) in enumerate(points) for p in pts),
        key=lambda i: (i[0], i[1], i[2]),
    )
    out: list[dict[str, Any]] = []
    last: tuple[int, float] | None = None
    for stamp, step, _, key, value in items:
        if last != (stamp, step) or key in out[-1]:
            out.append({TIMESTAMP: stamp / 1000})
            last = (stamp, step)
        out[-1][key] = value
        out[-1][naming.step_metric(key)] = step
    return out
