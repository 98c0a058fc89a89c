"""Values map to JSON and CSV without loss: exact floats, UTC datetimes, sorted sets."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from neptune_backup_async import domain
from neptune_backup_async.domain import FieldType
from neptune_backup_async.errors import MalformedAnswerError
from neptune_backup_async.format import values

UTC = dt.timezone.utc


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_floats_round_trip_exactly(x: float) -> None:
    text = values.float_text(x)
    back = float(text)
    assert (math.isnan(x) and math.isnan(back)) or back == x
    document = values.dumps({"x": values.simple_value(FieldType.FLOAT, x)})
    json.loads(document)  # always standard JSON, never a bare NaN


def test_non_finite_floats_have_documented_names() -> None:
    assert [values.json_float(v) for v in (math.nan, math.inf, -math.inf, 1.5)] == [
        "NaN",
        "Infinity",
        "-Infinity",
        1.5,
    ]


def test_datetimes_are_utc_with_offset() -> None:
    berlin = dt.timezone(dt.timedelta(hours=1))
    assert (
        domain.iso(dt.datetime(2024, 1, 1, 13, 0, 0, 123000, tzinfo=berlin))
        == "2024-01-01T12:00:00.123+00:00"
    )
    assert domain.iso(dt.datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC)) == "2024-01-01T00:00:00.000001+00:00"
    assert domain.parse_iso("2024-01-01T12:00:00.123Z") == dt.datetime(
        2024, 1, 1, 12, 0, 0, 123000, tzinfo=UTC
    )


def test_string_sets_are_sorted_lists() -> None:
    assert values.simple_value(FieldType.STRING_SET, frozenset({"b", "a"})) == ["a", "b"]


def test_refs_keep_nested_datetimes_as_iso() -> None:
    ref = {"commit": {"commit_date": dt.datetime(2024, 5, 1, tzinfo=UTC)}, "remotes": ("r",)}
    assert values.simple_value(FieldType.GIT_REF, ref) == {
        "commit": {"commit_date": "2024-05-01T00:00:00.000+00:00"},
        "remotes": ["r"],
    }


@given(
    st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(allow_nan=False), st.integers(0, 4_102_444_800_000)))
)
def test_float_series_rows_parse_back(points: list[tuple[float, float, int]]) -> None:
    text = values.SERIES_HEADER + values.SeriesFormatter(FieldType.FLOAT_SERIES).rows(points)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(points)
    for row, (step, value, ts) in zip(rows, points, strict=True):
        assert float(row["step"]) == step and float(row["value"]) == value
        assert domain.parse_iso(row["timestamp"]) == dt.datetime.fromtimestamp(ts / 1000, UTC)


@given(st.lists(st.text()))
def test_string_series_survive_commas_quotes_and_newlines(lines: list[str]) -> None:
    points = [(float(i), line, 1_700_000_000_000 + i) for i, line in enumerate(lines)]
    text = values.SERIES_HEADER + values.SeriesFormatter(FieldType.STRING_SERIES).rows(points)
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [r["value"] for r in rows] == lines


@given(
    st.lists(st.integers(-(10**20), 10**20)),
    st.sampled_from([FieldType.FLOAT_SERIES, FieldType.STRING_SERIES]),
)
def test_every_whole_millisecond_is_kept_past_year_9999_and_before_year_1_as_itself(
    stamps: list[int], field_type: FieldType
) -> None:
    value = "a, b" if field_type is FieldType.STRING_SERIES else math.nan
    points = [(float(i), value, ms) for i, ms in enumerate(stamps)]
    text = values.SERIES_HEADER + values.SeriesFormatter(field_type).rows(points)
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [values.ms_from_time(r["timestamp"]) for r in rows] == stamps
    assert [r["value"] for r in rows] == ["a, b" if field_type is FieldType.STRING_SERIES else "NaN"] * len(
        stamps
    )
    for row, ms in zip(rows, stamps, strict=True):
        in_range = -62_135_596_800_000 <= ms <= 253_402_300_799_999
        assert row["timestamp"] == (values.time_from_ms(ms) if in_range else str(ms))
        assert values.time_from_ms(ms) == (row["timestamp"] if in_range else ms)


def test_times_just_inside_and_outside_the_iso_years() -> None:
    first, last = -62_135_596_800_000, 253_402_300_799_999
    assert values.time_from_ms(first) == "0001-01-01T00:00:00.000+00:00"
    assert values.time_from_ms(last) == "9999-12-31T23:59:59.999+00:00"
    assert (values.time_from_ms(first - 1), values.time_from_ms(last + 1)) == (first - 1, last + 1)
    rows = values.SeriesFormatter(FieldType.FLOAT_SERIES).rows([(1.0, 0.5, last), (2.0, 0.5, last + 1)])
    assert rows == f"1.0,0.5,9999-12-31T23:59:59.999+00:00\n2.0,0.5,{last + 1}\n"
    with pytest.raises(ValueError):
        values.ms_from_time("not a time")


@pytest.mark.parametrize(
    ("field_type", "bad"),
    [
        (FieldType.FLOAT_SERIES, (2.0, 1.0, None)),  # no timestamp
        (FieldType.FLOAT_SERIES, (2.0, 1.0, 1.7e12)),  # not whole milliseconds
        (FieldType.STRING_SERIES, (2.0, 7, 1_700_000_000_000)),  # a number in a string series
    ],
)
def test_a_series_point_that_cannot_be_written_is_the_answers_fault(
    field_type: FieldType, bad: tuple[float, object, object]
) -> None:
    good = (1.0, "a" if field_type is FieldType.STRING_SERIES else 0.5, 1_700_000_000_000)
    formatter = values.SeriesFormatter(field_type)
    with pytest.raises(MalformedAnswerError, match="malformed answer from Neptune: a series point"):
        formatter.rows([good, bad])  # type: ignore[list-item]
    assert formatter.rows([good]).startswith("1.0,")
