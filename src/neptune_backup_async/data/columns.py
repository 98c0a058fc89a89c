"""The types of a backup read as data: each Neptune field type and JSON value (docs/FORMAT.md)
to one Arrow type and Python value, so pandas, polars and Parquet all get the same exact
columns (docs/DATA.md).

Arrow is imported only when a table is built, so the package imports without the extra.
"""

from __future__ import annotations

import enum
import importlib
import json
import math
from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import Any

from ..domain import FieldType, parse_iso

INSTALL = "pip install 'neptune-backup-async[data]'"
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def need(module: str) -> ModuleType:
    """``module`` (pyarrow, pandas, polars); an ImportError naming the extra where it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"Reading a backup as data needs {module}: {INSTALL}") from e


class Kind(str, enum.Enum):
    """What a column holds."""

    FLOAT = "float"  # float64; NaN and the infinities restored from their JSON strings
    INT = "int"  # Int64 (nullable)
    BOOL = "bool"  # boolean (nullable)
    STRING = "string"
    DATETIME = "datetime"  # UTC, nanoseconds
    STRINGS = "strings"  # a string set: a sorted list of strings
    JSON = "json"  # a git or notebook ref, or a column whose objects disagree on the type: JSON text


KIND_OF: dict[str, Kind] = {
    FieldType.FLOAT.value: Kind.FLOAT,
    FieldType.INT.value: Kind.INT,
    FieldType.BOOL.value: Kind.BOOL,
    FieldType.STRING.value: Kind.STRING,
    FieldType.DATETIME.value: Kind.DATETIME,
    FieldType.STRING_SET.value: Kind.STRINGS,
    FieldType.STATE.value: Kind.STRING,
    FieldType.ARTIFACT.value: Kind.STRING,  # its hash
    FieldType.GIT_REF.value: Kind.JSON,
    FieldType.NOTEBOOK_REF.value: Kind.JSON,
}


def float_of(value: Any) -> float:
    """A float as the format writes it: a JSON number, or NaN and the infinities by name."""
    if isinstance(value, str) and value in _NON_FINITE:
        return _NON_FINITE[value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"{value!r} is not a float of the backup format")


def value_of(kind: Kind, value: Any) -> Any:
    """The Python value of ``value`` (as ``simple_metadata.json`` holds it) in a column of
    ``kind``; ValueError when it is not of that type (a damaged file)."""
    if value is None:
        return None
    if kind is Kind.FLOAT:
        return float_of(value)
    if kind is Kind.JSON:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, allow_nan=False)
    expected: dict[Kind, type] = {Kind.INT: int, Kind.BOOL: bool, Kind.STRING: str, Kind.DATETIME: str}
    if kind is Kind.STRINGS:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
    elif isinstance(value, expected[kind]) and (kind is Kind.BOOL or not isinstance(value, bool)):
        return parse_iso(str(value)) if kind is Kind.DATETIME else value
    raise ValueError(f"{value!r} is not a {kind.value}")


def column_kind(kinds: Iterable[Kind]) -> Kind:
    """One kind for a field whose objects may disagree: ints among floats are floats (exactly,
    below 2**53), any other mix is JSON text."""
    found = set(kinds)
    if len(found) == 1:
        return found.pop()
    return Kind.FLOAT if found == {Kind.INT, Kind.FLOAT} else Kind.JSON


def arrow_type(kind: Kind) -> Any:
    pa = need("pyarrow")
    return {
        Kind.FLOAT: pa.float64(),
        Kind.INT: pa.int64(),
        Kind.BOOL: pa.bool_(),
        Kind.STRING: pa.string(),
        Kind.DATETIME: pa.timestamp("ns", tz="UTC"),
        Kind.STRINGS: pa.list_(pa.string()),
        Kind.JSON: pa.string(),
    }[kind]


def column(kind: Kind, raw: Sequence[Any]) -> Any:
    """The Arrow array of the JSON values ``raw`` (None where an object has no such field)."""
    pa = need("pyarrow")
    return pa.array([value_of(kind, v) for v in raw], type=arrow_type(kind))


def to_frame(table: Any, backend: str) -> Any:
    """An Arrow table as a pandas or polars frame, keeping every type exact: nullable Int64,
    boolean and string columns in pandas, lists of strings as lists."""
    pa = need("pyarrow")
    if backend == "polars":
        return need("polars").from_arrow(table)
    if backend != "pandas":
        raise ValueError(f"backend must be 'pandas' or 'polars', not {backend!r}")
    pd = need("pandas")
    nullable = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype(), pa.string(): pd.StringDtype()}
    frame = table.to_pandas(types_mapper=nullable.get)
    for name, kind in zip(table.column_names, table.schema.types, strict=True):
        if pa.types.is_list(kind):
            frame[name] = [None if v is None else list(v) for v in table.column(name).to_pylist()]
    return frame


def float_of_text(text: str) -> float:
    """A float as a series CSV writes it (NaN and the infinities by name)."""
    return _NON_FINITE[text] if text in _NON_FINITE else float(text)
