"""Series points as W&B history rows (pure; docs/WANDB.md "Series").

Each point is a row value under its series' key, with its own step under the series' step
metric (``<key>@step``, a float when Neptune's is) and its time as ``_timestamp`` (seconds
since the epoch, as W&B keeps them). Points of different series with the same time and step
share a row; a row never holds two points of one series.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..loading.series import series_ms
from . import naming

TIMESTAMP = "_timestamp"


@dataclass(frozen=True)
class ImageRef:
    """An image series item, logged as ``wandb.Image`` of the run file ``file`` (by the client)."""

    file: str  # relative to the run's files
    caption: str | None


@dataclass(frozen=True)
class Item:
    step: float
    value: ImageRef
    timestamp: int  # ms


def image_items(index: bytes, folder: str, laid: Collection[str]) -> list[Item]:
    """The items of an image series' ``index.json`` that have a step and a time, their files
    under ``folder`` in the run; an item without them is a run file only. Only a file among
    those ``laid`` out (named by the manifest, and checked) is taken: ``index.json`` is input,
    and its ``file`` could name anything (``../../elsewhere.png``)."""
    out: list[Item] = []
    for item in json.loads(index.decode("utf-8")):
        step, stamp, file = item.get("step"), item.get("timestamp"), item.get("file")
        if (
            isinstance(step, (int, float))
            and stamp is not None
            and isinstance(file, str)
            and f"{folder}/{file}" in laid
        ):
            name = item.get("name")
            ms = stamp if isinstance(stamp, int) else series_ms(str(stamp))
            out.append(
                Item(float(step), ImageRef(f"{folder}/{file}", name if isinstance(name, str) else None), ms)
            )
    return out


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
