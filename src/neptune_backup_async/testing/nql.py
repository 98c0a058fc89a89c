"""A parser and evaluator for the subset of NQL that the neptune client and its users send.

The client writes conditions as ``(`sys/id`:string = "RUN-1")``, joins them with ``AND``
and ``OR`` in parentheses and pages past offset 10,000 with ``(`col`:type > "last")``.
Users write ``(accuracy: float > 0.88) AND NOT (sys/tags:stringSet CONTAINS "x")``.
A query compiles once into a predicate over containers; comparisons use the same
:func:`comparable` keys as sorting, so the keyset filter agrees with the sort order.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from .model import (
    Bool,
    Container,
    Datetime,
    Float,
    FloatSeries,
    Int,
    State,
    String,
    StringSeries,
    StringSet,
    Value,
)
from .wire import epoch_ms

Predicate = Callable[[Container], bool]


class NqlSyntaxError(ValueError):
    pass


# Declared NQL type -> the attribute types it selects. Numbers select both ints and floats,
# as the client sorts a mixed int/float column as "float".
_TYPES: dict[str, frozenset[str]] = {
    "string": frozenset({"string"}),
    "stringset": frozenset({"stringSet"}),
    "experimentstate": frozenset({"experimentState"}),
    "bool": frozenset({"bool"}),
    "boolean": frozenset({"bool"}),
    "datetime": frozenset({"datetime"}),
    "int": frozenset({"int", "float"}),
    "integer": frozenset({"int", "float"}),
    "float": frozenset({"int", "float"}),
    "double": frozenset({"int", "float"}),
    "number": frozenset({"int", "float"}),
    "floatseries": frozenset({"floatSeries"}),
    "stringseries": frozenset({"stringSeries"}),
}
_ORDERING = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}
_STATES = {"active": "running", "inactive": "idle"}
_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?",
    re.IGNORECASE,
)


def comparable(value: Value) -> Any:
    """The sort/compare key of an attribute, or None if it has no order (files, sets, ...)."""
    if isinstance(value, Float | Int | Bool | String | State):
        return value.value
    if isinstance(value, Datetime):
        return epoch_ms(value.value)
    if isinstance(value, FloatSeries | StringSeries):
        return value.points[-1].value if value.points else None
    return None


def parse_datetime(text: str) -> dt.datetime:
    match = _DATETIME.fullmatch(text.strip())
    if match is None:
        raise NqlSyntaxError(f"not a datetime: {text!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    tz = dt.timezone.utc
    if zone and zone.upper() != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        tz = dt.timezone(sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    try:
        return dt.datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micros, tz
        )
    except ValueError as e:
        raise NqlSyntaxError(str(e)) from e


def _literal(attribute_type: str, text: str) -> Any:
    """Read a literal as the attribute type it is compared with; ValueError if it is not one."""
    if attribute_type in ("int", "float", "floatSeries"):
        return int(text) if re.fullmatch(r"[+-]?\d+", text) else float(text)
    if attribute_type == "bool":
        if text.lower() not in ("true", "false"):
            raise ValueError(text)
        return text.lower() == "true"
    if attribute_type == "datetime":
        return epoch_ms(parse_datetime(text))
    if attribute_type == "experimentState":
        return _STATES.get(text.lower(), text)
    return text


def compile_query(query: str) -> Predicate:
    """Compile an NQL query; raises NqlSyntaxError. The empty query matches everything."""
    parser = _Parser(query)
    parser.skip()
    if parser.at_end():
        return lambda container: True
    predicate = parser.or_expr()
    parser.skip()
    if not parser.at_end():
        raise parser.error("unexpected input")
    return predicate


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, message: str) -> NqlSyntaxError:
        return NqlSyntaxError(f"{message} at {self.pos} in {self.text!r}")

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def skip(self) -> None:
        while not self.at_end() and self.text[self.pos].isspace():
            self.pos += 1

    def keyword(self, word: str) -> bool:
        """Consume ``word`` (any case) if it comes next as a whole word."""
        self.skip()
        end = self.pos + len(word)
        if self.text[self.pos : end].upper() != word:
            return False
        if end < len(self.text) and not (self.text[end].isspace() or self.text[end] in '("`'):
            return False
        self.pos = end
        return True

    def expect(self, char: str) -> None:
        self.skip()
        if self.text[self.pos : self.pos + 1] != char:
            raise self.error(f"expected {char!r}")
        self.pos += 1

    def or_expr(self) -> Predicate:
        items = [self.and_expr()]
        while self.keyword("OR"):
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else (lambda c: any(p(c) for p in items))

    def and_expr(self) -> Predicate:
        items = [self.unary()]
        while self.keyword("AND"):
            items.append(self.unary())
        return items[0] if len(items) == 1 else (lambda c: all(p(c) for p in items))

    def unary(self) -> Predicate:
        if self.keyword("NOT"):
            inner = self.unary()
            return lambda c: not inner(c)
        self.skip()
        if self.text.startswith("(", self.pos):
            self.pos += 1
            inner = self.or_expr()
            self.expect(")")
            return inner
        return self.condition()

    def word(self, stop: str) -> str:
        self.skip()
        start = self.pos
        while not self.at_end() and not self.text[self.pos].isspace() and self.text[self.pos] not in stop:
            self.pos += 1
        if start == self.pos:
            raise self.error("expected a word")
        return self.text[start : self.pos]

    def quoted(self, quote: str) -> str:
        self.pos += 1
        out: list[str] = []
        while not self.at_end() and self.text[self.pos] != quote:
            if self.text[self.pos] == "\\" and self.pos + 1 < len(self.text):
                self.pos += 1
            out.append(self.text[self.pos])
            self.pos += 1
        if self.at_end():
            raise self.error("unterminated quote")
        self.pos += 1
        return "".join(out)

    def name(self) -> str:
        self.skip()
        if self.text.startswith("`", self.pos):
            return self.quoted("`")
        return self.word(':()"`=!<>')

    def operator(self) -> str:
        self.skip()
        for op in ("!=", ">=", "<=", "=", ">", "<"):
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                return op
        if self.keyword("CONTAINS"):
            return "CONTAINS"
        if self.keyword("NOT") and self.keyword("CONTAINS"):
            return "NOT CONTAINS"
        raise self.error("expected an operator")

    def value(self) -> str:
        self.skip()
        if self.text.startswith('"', self.pos):
            return self.quoted('"')
        return self.word("()")

    def condition(self) -> Predicate:
        name = self.name()
        selected: frozenset[str] | None = None
        self.skip()
        if self.text.startswith(":", self.pos):
            self.pos += 1
            declared = self.word('()"`=!<>')
            if declared.lower() not in _TYPES:
                raise self.error(f"unknown type {declared!r}")
            selected = _TYPES[declared.lower()]
        op = self.operator()
        text = self.value()
        if name == "sys/trashed":
            wanted = _literal("bool", text) if text.lower() in ("true", "false") else None
            if wanted is None or op not in ("=", "!="):
                raise self.error("sys/trashed takes = or != with true or false")
            return lambda c: (c.trashed == wanted) == (op == "=")
        if selected is not None:  # check the literal once against every type it selects
            for attribute_type in selected:
                try:
                    _literal(attribute_type, text)
                except ValueError as e:
                    raise self.error(f"{text!r} is not a {attribute_type}") from e
        return _condition(name, selected, op, text)


def _condition(name: str, selected: frozenset[str] | None, op: str, text: str) -> Predicate:
    literals: dict[str, Any] = {}

    def literal(attribute_type: str) -> Any:
        if attribute_type not in literals:
            try:
                literals[attribute_type] = _literal(attribute_type, text)
            except (ValueError, NqlSyntaxError):
                literals[attribute_type] = None  # an untyped condition that can't apply to this type
        return literals[attribute_type]

    def test(container: Container) -> bool:
        value = container.fields.get(name)
        if value is None or (selected is not None and value.TYPE not in selected):
            return False
        if op in ("CONTAINS", "NOT CONTAINS"):
            if isinstance(value, StringSet):
                found = text in value.values
            elif isinstance(value, String):
                found = text in value.value
            else:
                return False
            return found == (op == "CONTAINS")
        key, wanted = comparable(value), literal(value.TYPE)
        if key is None or wanted is None:
            return False
        try:
            return bool(_ORDERING[op](key, wanted))
        except TypeError:
            return False

    return test
