"""The points of a backup's series CSVs (``step,value,timestamp``, header first; pure)."""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

from ..format.values import ms_from_time


@dataclass(frozen=True)
class Point:
    step: float
    value: float
    timestamp: int  # ms


@dataclass(frozen=True)
class Text:
    step: float
    value: str
    timestamp: int  # ms


def parse_float_series(lines: list[str]) -> list[Point]:
    """The rows of a float series CSV (``step,value,timestamp``, header first)."""
    out = []
    for line in lines[1:]:
        if not line:
            continue
        step, value, stamp = line.split(",")
        out.append(Point(float(step), float(value), series_ms(stamp)))
    return out


def parse_string_series(text: str) -> list[Text]:
    """The rows of a string series CSV: its values are quoted as CSV quotes them (commas,
    quotes and line breaks kept)."""
    rows = list(csv.reader(io.StringIO(text, newline="")))
    return [Text(float(step), value, series_ms(stamp)) for step, value, stamp in rows[1:]]


def series_ms(text: str) -> int:
    """A series CSV's timestamp as epoch milliseconds (its own, past year 9999). ValueError if
    unreadable: a made-up time would put the point at 1970 with no word of it."""
    try:
        return ms_from_time(text)
    except ValueError:
        raise ValueError(f"a series point has an unreadable timestamp {text[:40]!r}") from None


@contextlib.contextmanager
def read_as(rel: str) -> Iterator[None]:
    """A ValueError from parsing the backup's file ``rel`` names the file."""
    try:
        yield
    except ValueError as e:
        raise ValueError(f"{rel}: {e}") from None
