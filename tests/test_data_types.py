"""The type mapping of the data reader, as a property: any value a backup writes for a
simple field comes back from a pandas or polars frame as exactly that value."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from neptune_backup_async.data import columns
from neptune_backup_async.domain import FieldType
from neptune_backup_async.format import values
from optional import need

pd = need("pandas", "data")
pa = need("pyarrow", "data")
pl = need("polars", "data")

UTC = dt.timezone.utc
_ns_times = st.datetimes(
    min_value=dt.datetime(1678, 1, 1), max_value=dt.datetime(2261, 12, 31), timezones=st.timezones()
)
FIELDS = st.one_of(
    st.tuples(st.just(FieldType.FLOAT), st.floats(allow_nan=True, allow_infinity=True)),
    st.tuples(st.just(FieldType.INT), st.integers(-(2**63), 2**63 - 1)),
    st.tuples(st.just(FieldType.BOOL), st.booleans()),
    st.tuples(st.just(FieldType.STRING), st.text()),
    st.tuples(st.just(FieldType.DATETIME), _ns_times),
    st.tuples(st.just(FieldType.STRING_SET), st.frozensets(st.text())),
)


def back(cell: Any) -> Any:
    if cell is None or cell is pd.NA or cell is pd.NaT:
        return None
    if isinstance(cell, pd.Timestamp):
        return cell.to_pydatetime()
    return cell.item() if hasattr(cell, "item") else cell


def same(field_type: FieldType, got: Any, value: Any) -> bool:
    if field_type is FieldType.FLOAT:
        return (math.isnan(got) and math.isnan(value)) or (
            got == value and math.copysign(1, got) == math.copysign(1, value)
        )
    if field_type is FieldType.DATETIME:
        # The instant in UTC, as the backup writes it: ``==`` between zones is False for a
        # wall time in a DST gap or fold (PEP 495), though it names one instant.
        return got.utcoffset() == dt.timedelta(0) and got == value.astimezone(UTC)
    if field_type is FieldType.STRING_SET:
        return got == sorted(value)
    return type(got) is type(value) and got == value


@given(st.lists(FIELDS, min_size=1, max_size=5), st.sampled_from(["pandas", "polars"]))
def test_every_simple_value_comes_back_exactly(fields: list[tuple[FieldType, Any]], backend: str) -> None:
    field_type = fields[0][0]
    same_type = [v for t, v in fields if t is field_type]
    # As simple_metadata.json holds them: written by the format's mapping, read as JSON.
    saved = [json.loads(values.dumps(values.simple_value(field_type, v))) for v in same_type] + [None]
    kind = columns.KIND_OF[field_type.value]
    frame = columns.to_frame(pa.table({"x": columns.column(kind, saved)}), backend)
    cells = list(frame["x"]) if backend == "pandas" else frame["x"].to_list()
    assert back(cells[-1]) is None or (field_type is FieldType.FLOAT and math.isnan(back(cells[-1])))
    for cell, value in zip(cells, same_type, strict=False):
        assert same(field_type, back(cell), value), (cell, value)


@pytest.mark.parametrize(
    ("kinds", "column"),
    [
        ({columns.Kind.INT, columns.Kind.FLOAT}, columns.Kind.FLOAT),
        ({columns.Kind.INT}, columns.Kind.INT),
        ({columns.Kind.STRING, columns.Kind.FLOAT}, columns.Kind.JSON),
    ],
)
def test_objects_that_disagree_on_a_type_share_one_column(
    kinds: set[columns.Kind], column: columns.Kind
) -> None:
    assert columns.column_kind(kinds) is column


def test_a_value_of_another_type_is_refused() -> None:
    with pytest.raises(ValueError, match="is not a float"):
        columns.value_of(columns.Kind.FLOAT, "nan")  # only NaN as the format spells it
    with pytest.raises(ValueError, match="is not a int"):
        columns.value_of(columns.Kind.INT, True)
