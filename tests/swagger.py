"""A validator for the part of swagger 2.0 that Neptune's response definitions use: ``$ref``,
``type``, ``properties``, ``required``, ``items``, ``enum``, ``format`` and ``minimum``.

Stricter than swagger on one point, on purpose: a property that the definition does not
declare is an error, so that a fake server cannot invent what the real one never sends.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from typing import Any

Json = dict[str, Any]

_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


def _is_datetime(text: str) -> bool:
    try:
        dt.datetime.fromisoformat(re.sub(r"Z$", "+00:00", text))
    except ValueError:
        return False
    return "T" in text


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


class Document:
    """One swagger file: its operations by id and its definitions."""

    def __init__(self, spec: Json) -> None:
        self.definitions: dict[str, Json] = spec.get("definitions", {})
        self.operations: dict[str, Json] = {
            op["operationId"]: op
            for methods in spec.get("paths", {}).values()
            for op in methods.values()
            if isinstance(op, dict) and "operationId" in op
        }

    def response_schema(self, operation_id: str, status: str = "200") -> Json | None:
        """The schema of an operation's answer with ``status``; None if it declares none."""
        response = self.operations[operation_id]["responses"].get(status) or {}
        schema: Json | None = response.get("schema")
        return schema

    def errors(self, value: Any, schema: Json, where: str = "$") -> Iterator[str]:
        """Every way ``value`` breaks ``schema``, each with its JSON path."""
        if "$ref" in schema:
            name = schema["$ref"].removeprefix("#/definitions/")
            if name not in self.definitions:
                yield f"{where}: unknown definition {name!r}"
                return
            yield from self.errors(value, self.definitions[name], where)
            return
        kind = schema.get("type")
        if kind is None and "properties" in schema:
            kind = "object"
        if value is None:
            yield f"{where}: null, where the definition gives {kind or 'a value'}"
            return
        checks = {
            "object": lambda v: isinstance(v, dict),
            "array": lambda v: isinstance(v, list),
            "string": lambda v: isinstance(v, str),
            "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
            "boolean": lambda v: isinstance(v, bool),
            "file": lambda v: isinstance(v, bytes),
        }
        if kind is not None and not checks.get(kind, lambda v: False)(value):
            yield f"{where}: {type(value).__name__} {value!r:.60}, where the definition gives {kind}"
            return
        if "enum" in schema and value not in schema["enum"]:
            yield f"{where}: {value!r} is none of {schema['enum']}"
        yield from self._format(value, schema.get("format"), where)
        if "minimum" in schema and isinstance(value, int | float):
            low = schema["minimum"]
            if value < low or (schema.get("exclusiveMinimum") and value == low):
                yield f"{where}: {value} is below the minimum {low}"
        if kind == "array":
            for i, item in enumerate(value):
                yield from self.errors(item, schema.get("items") or {}, f"{where}[{i}]")
        if isinstance(value, dict) and kind == "object":
            properties: Json = schema.get("properties") or {}
            for name in schema.get("required") or ():
                if name not in value:
                    yield f"{where}: no {name!r}, which the definition requires"
            for name, item in value.items():
                if name not in properties:
                    yield f"{where}: {name!r} is not in the definition"
                else:
                    yield from self.errors(item, properties[name], f"{where}.{name}")

    @staticmethod
    def _format(value: Any, form: str | None, where: str) -> Iterator[str]:
        if form in _INT_RANGES and isinstance(value, int):
            low, high = _INT_RANGES[form]
            if not low <= value <= high:
                yield f"{where}: {value} does not fit {form}"
        elif form == "date-time" and isinstance(value, str) and not _is_datetime(value):
            yield f"{where}: {value!r} is no date-time"
        elif form == "uuid" and isinstance(value, str) and not _is_uuid(value):
            yield f"{where}: {value!r} is no uuid"
