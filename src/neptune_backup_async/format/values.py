"""Pure mapping from Neptune values to JSON and CSV, lossless and time-zone explicit.

- Floats keep every bit: finite ones are written with ``repr`` (which round-trips), and
  NaN and the infinities, which JSON cannot hold, become the strings ``"NaN"``,
  ``"Infinity"`` and ``"-Infinity"``.
- Datetimes are ISO 8601 in UTC with the offset (``+00:00``).
- String sets are sorted lists.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..domain import UTC, FieldType, iso, parse_iso
from ..errors import MalformedAnswerError

SERIES_HEADER = "step,value,timestamp\n"

_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def float_text(value: float) -> str:
    text = repr(float(value))
    return _NON_FINITE.get(text, text)


def json_float(value: float) -> float | str:
    return value if math.isfinite(value) else float_text(value)


def plain(value: Any) -> Any:
    """The JSON form of a value as the listing gives it: datetimes ISO 8601, floats as above,
    mappings and collections with their items so."""
    if isinstance(value, dt.datetime):
        return iso(value)
    if isinstance(value, float):
        return json_float(value)
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    return value


def simple_value(field_type: FieldType, value: Any) -> Any:
    """The JSON form of one simple field's value."""
    if field_type is FieldType.STRING_SET:
        return sorted(value)
    if field_type is FieldType.FLOAT:
        return json_float(float(value))
    return plain(value)


def dumps(document: Any) -> str:
    """The one JSON style of a backup: indented, keys sorted, UTF-8, standard JSON only."""
    return json.dumps(document, indent=4, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


_SECONDS = tuple(f"{i:02d}." for i in range(60))
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
_FIRST_MS = (dt.datetime.min.replace(tzinfo=UTC) - _EPOCH) // dt.timedelta(milliseconds=1)
_LAST_MS = (dt.datetime.max.replace(tzinfo=UTC) - _EPOCH) // dt.timedelta(milliseconds=1)
_MILLIS = tuple(f"{i:03d}+00:00\n" for i in range(1000))


class SeriesFormatter:
    """Turns pages of series points into CSV text, one page at a time.

    This is the hot loop of a backup (every point of every series passes here), so it
    formats the date and hour of a timestamp once per minute, and the seconds and
    milliseconds from tables.
    """

    def __init__(self, field_type: FieldType) -> None:
        self._strings = field_type is FieldType.STRING_SERIES
        self._minute: int | None = None  # no minute yet (-1 is one: the last of 1969)
        self._prefix = ""

    def _stamp_prefix(self, minute: int) -> str:
        # Not strftime("%Y"): it writes years before 1000 with fewer than the four digits ISO 8601 reads.
        m = dt.datetime.fromtimestamp(minute * 60, UTC)
        self._prefix = f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:"
        self._minute = minute
        return self._prefix

    def rows(self, points: Sequence[tuple[float, Any, int]]) -> str:
        """The CSV rows of ``points``; a point that cannot be written (a timestamp that is no
        whole number of milliseconds, a value of the wrong type) is the server's:
        :class:`MalformedAnswerError`. A timestamp outside years 1 to 9999 is written as its
        epoch milliseconds. Both are looked for only once formatting failed, as checking every
        point first would cost the hot loop; any other failure is a bug."""
        try:
            return self._rows(points)
        except (TypeError, ValueError, IndexError, OverflowError, OSError):
            bad = next((p for p in points if not self._writable(p)), None)
            if bad is not None:
                raise MalformedAnswerError(f"malformed answer from Neptune: a series point {bad!r}") from None
            return "".join(self._rows([p]) if _FIRST_MS <= p[2] <= _LAST_MS else self._raw(p) for p in points)

    def _writable(self, point: tuple[Any, Any, Any]) -> bool:
        step, value, ts = point
        number = (int, float)
        return (
            isinstance(step, number)
            and isinstance(value, str if self._strings else number)
            and isinstance(ts, int)
            and not any(isinstance(x, bool) for x in point)
        )

    def _raw(self, point: tuple[float, Any, int]) -> str:
        """The row of a point whose time no ISO 8601 date holds: its epoch milliseconds, as
        the hot loop writes the step and value."""
        step, value, ts = point
        if self._strings:
            return f"{float_text(step)},{_csv_text(value)},{ts}\n"
        text = f"{step!r},{value!r},{ts}\n"
        return text.replace("nan", "NaN").replace("inf", "Infinity") if "n" in text else text

    def _rows(self, points: Sequence[tuple[float, Any, int]]) -> str:
        out: list[str] = []
        append = out.append
        seconds, millis = _SECONDS, _MILLIS
        minute_now, prefix = self._minute, self._prefix
        if self._strings:
            for step, value, ts in points:
                minute, rest = divmod(ts, 60_000)
                if minute != minute_now:
                    minute_now, prefix = minute, self._stamp_prefix(minute)
                second, milli = divmod(rest, 1000)
                append(f"{float_text(step)},{_csv_text(value)},{prefix}{seconds[second]}{millis[milli]}")
            return "".join(out)
        for step, value, ts in points:
            minute, rest = divmod(ts, 60_000)
            if minute != minute_now:
                minute_now, prefix = minute, self._stamp_prefix(minute)
            second, milli = divmod(rest, 1000)
            append(f"{step!r},{value!r},{prefix}{seconds[second]}{millis[milli]}")
        text = "".join(out)
        # Only nan and inf put an "n" into this text (timestamps have none, floats are digits,
        # ".", "e" and signs), so the names of the format can be set once for the whole page.
        if "n" in text:
            text = text.replace("nan", "NaN").replace("inf", "Infinity")
        return text


def time_from_ms(epoch_ms: int) -> str | int:
    """A time given in epoch milliseconds as a backup writes it: ISO 8601 UTC, or, outside
    years 1 to 9999 (which no ISO 8601 date holds), the epoch milliseconds themselves."""
    if _FIRST_MS <= epoch_ms <= _LAST_MS:
        return iso(_EPOCH + dt.timedelta(milliseconds=epoch_ms))
    return epoch_ms


def ms_from_time(text: str) -> int:
    """The epoch milliseconds of a time a backup wrote (see :func:`time_from_ms`); a time
    of ISO 8601 without an offset is taken as UTC. ValueError when it is neither."""
    text = text.strip()
    if _RAW_MS.fullmatch(text):
        return int(text)
    return (parse_iso(text) - _EPOCH) // dt.timedelta(milliseconds=1)


_RAW_MS = re.compile(r"-?[0-9]+")


def _csv_text(value: str) -> str:
    if any(c in value for c in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value
