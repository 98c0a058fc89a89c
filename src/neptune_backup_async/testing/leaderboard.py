"""The runs table: NQL filtering, sorting and offset paging over a project's containers.

Like Neptune, a page may not reach past offset 10,000; the client then filters on the sort
column (``> last value``) and starts again at offset 0. Ties keep creation order.
"""

from __future__ import annotations

from typing import Any

from . import wire
from .messages import ApiError
from .model import Container, Project, Value, World
from .nql import NqlSyntaxError, Predicate, comparable, compile_query

MAX_OFFSET = 10_000
DEFAULT_PAGE = 100
SEARCHABLE_KINDS = ("run", "model", "modelVersion")


def _compile(query: str) -> Predicate:
    try:
        return compile_query(query)
    except NqlSyntaxError as e:
        raise ApiError(400, "BAD_REQUEST", str(e), title="Syntax error") from e


def _candidates(project: Project, kinds: list[str]) -> list[Container]:
    wanted = set(kinds or SEARCHABLE_KINDS)
    return [c for c in project.containers.values() if c.kind in wanted]


def search_attributes(
    world: World, project: Project, kinds: list[str], search: str, query: str
) -> list[tuple[str, str]]:
    """The distinct (name, type) pairs of the matching containers whose name contains ``search``."""
    predicate = _compile(query)
    found: set[tuple[str, str]] = set()
    with world.lock:
        for container in _candidates(project, kinds):
            if predicate(container):
                found.update((p, v.TYPE) for p, v in container.fields.items() if search in p)
    return sorted(found)


def _order(containers: list[Container], column: str, descending: bool) -> list[Container]:
    keyed: list[tuple[tuple[bool, Any], Container]] = []
    missing: list[Container] = []
    for container in containers:
        value = container.fields.get(column)
        key = comparable(value) if value is not None else None
        if key is None:
            missing.append(container)
        else:  # strings after numbers, should a column mix them
            keyed.append(((isinstance(key, str), key), container))
    keyed.sort(key=lambda item: item[0], reverse=descending)
    return [c for _, c in keyed] + missing


def search_entries(
    world: World, project: Project, kinds: list[str], params: dict[str, Any]
) -> dict[str, Any]:
    """Answer one ``searchLeaderboardEntries`` body: ``{sorting, attributeFilters, query, pagination}``."""
    pagination = params.get("pagination") or {}
    try:
        limit = int(pagination.get("limit", DEFAULT_PAGE))
        offset = int(pagination.get("offset", 0))
    except (TypeError, ValueError):
        raise ApiError(400, "BAD_REQUEST", "pagination must be integers") from None
    if offset < 0 or limit < 0 or offset + limit > MAX_OFFSET:
        raise ApiError(400, "BAD_REQUEST", f"offset + limit must be between 0 and {MAX_OFFSET}")
    predicate = _compile((params.get("query") or {}).get("query", ""))
    sorting = params.get("sorting") or {}
    column = (sorting.get("sortBy") or {}).get("name")
    filters = params.get("attributeFilters")
    columns = {f["path"] for f in filters} | {"sys/id", column or "sys/id"} if filters else None

    with world.lock:
        matching = [c for c in _candidates(project, kinds) if predicate(c)]
        if column:
            matching = _order(matching, column, sorting.get("dir") == "descending")
        page: list[tuple[Container, dict[str, Value]]] = [
            (c, {p: v for p, v in c.fields.items() if columns is None or p in columns})
            for c in matching[offset : offset + limit]
        ]
    return {
        "entries": [wire.leaderboard_entry(project, c, fields) for c, fields in page],
        "matchingItemCount": len(matching),
    }
