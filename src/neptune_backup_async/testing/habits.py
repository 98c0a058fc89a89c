"""What a real Neptune server (or a proxy before it) may do that is no fault: every answer
stays correct by the API, yet a careless reader loses or mixes data.

Switched on through :class:`~.server.Faults` (``table_page``, ``projects_page``, ``gzip``,
``repeat_series_point``, ``rewrite_series``, ``series_page_max``, ``zip_polls``), applied to
the real answers of :meth:`~.server.FakeNeptuneServer.answer`:

- pages of the runs table, or of the projects list, no longer than the server's own length,
  whatever ``limit`` was asked for (the count stays that of the whole listing);
- downloads (files, images, file-set zips) gzip-encoded, ``Content-Encoding: gzip``, for a
  client whose ``Accept-Encoding`` takes gzip;
- float and string series pages after the first starting one point early: the last point
  of the page before comes again;
- a float or string series cleared and logged again once its first page is served: every
  value changed, and one point more, so its last step grows;
- float and string series pages that ask for more points than the server serves at once
  refused with an error status (``series_page_refusal``: 400, 413 or 422, as a server or a
  proxy before it may answer);
- a file set's zip that takes the server a while to build: the first polls of its request
  (``getDownloadPrepareRequest``) answer without a ``downloadUrl``, counted per request
  over the server's life, so a client that asks anew waits anew.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import threading
from collections.abc import Callable
from typing import Protocol

from .messages import ApiError, Request, Response
from .model import FloatPoint, FloatSeries, StringPoint, StringSeries, World

SERIES_VALUES = frozenset({"getFloatSeriesValues", "getStringSeriesValues"})
DOWNLOADS = frozenset({"downloadAttribute", "getImageSeriesValue", "downloadFileSetZip"})


class Switches(Protocol):
    """The habits' switches, as :class:`~.server.Faults` holds them."""

    table_page: int | None
    projects_page: int | None
    gzip: bool
    repeat_series_point: bool
    rewrite_series: bool
    series_page_max: int | None
    series_page_refusal: int
    zip_polls: int


def _first(request: Request, name: str) -> int:
    values = request.query.get(name) or ["0"]
    try:
        return int(values[0] or 0)
    except ValueError:
        return 0


class Habits:
    """Applies the switched-on habits of ``faults`` to the answers served from ``world``."""

    def __init__(self, world: World, faults: Callable[[], Switches]) -> None:
        self._world = world
        self._faults = faults
        self._lock = threading.Lock()
        self._rewritten: set[tuple[str, str]] = set()  # (container uuid, path)
        self._polls: dict[str, int] = {}  # zip request id -> polls so far

    def answer(self, operation: str, request: Request, handle: Callable[[Request], Response]) -> Response:
        faults = self._faults()
        offset = _first(request, "offset")
        most = faults.series_page_max
        if most is not None and operation in SERIES_VALUES and _first(request, "limit") > most:
            message = f"limit must be at most {most}"
            return ApiError(faults.series_page_refusal, "BAD_REQUEST", message).response()
        if faults.repeat_series_point and operation in SERIES_VALUES and offset > 0:
            request = dataclasses.replace(request, query={**request.query, "offset": [str(offset - 1)]})
        response = handle(request)
        if not 200 <= response.status < 300:
            return response
        caps = {"searchLeaderboardEntries": faults.table_page, "listProjects": faults.projects_page}
        cap = caps.get(operation)
        if cap is not None:
            response = _capped(response, cap)
        if faults.gzip and operation in DOWNLOADS and "gzip" in request.headers.get("accept-encoding", ""):
            response = Response(
                response.status,
                gzip.compress(response.body, mtime=0),
                response.content_type,
                {**response.headers, "Content-Encoding": "gzip"},
            )
        if faults.rewrite_series and operation in SERIES_VALUES and offset == 0:
            self._rewrite(request)
        if operation == "getDownloadPrepareRequest":
            response = self._building(request, response, faults.zip_polls)
        return response

    def _building(self, request: Request, response: Response, polls: int) -> Response:
        """A zip request's answer without its ``downloadUrl`` for its first ``polls`` polls."""
        request_id = request.arg("id") or ""
        with self._lock:
            self._polls[request_id] = seen = self._polls.get(request_id, 0) + 1
        if seen > polls:
            return response
        data = json.loads(response.body)
        data.pop("downloadUrl", None)
        return Response(response.status, json.dumps(data).encode(), response.content_type, response.headers)

    def _rewrite(self, request: Request) -> None:
        """Clear the requested series and log it again, changed and one point longer; once."""
        found = self._world.find(request.arg("experimentId") or request.arg("holderIdentifier") or "")
        path = request.arg("attribute") or ""
        if found is None:
            return
        project, container = found
        with self._lock:
            if (container.uuid, path) in self._rewritten:
                return
            self._rewritten.add((container.uuid, path))
        with self._world.lock:
            series = container.fields.get(path)
            if isinstance(series, FloatSeries) and series.points:
                end = series.points[-1]
                points = [FloatPoint(p.step, p.value + 1000.0, p.timestamp_ms + 1) for p in series.points]
                points.append(FloatPoint(end.step + 1, end.value + 1001.0, end.timestamp_ms + 2))
                rewritten: FloatSeries | StringSeries = dataclasses.replace(series, points=tuple(points))
            elif isinstance(series, StringSeries) and series.points:
                tail = series.points[-1]
                logged = [StringPoint(p.step, f"again {p.value}", p.timestamp_ms + 1) for p in series.points]
                logged.append(StringPoint(tail.step + 1, "again, one more", tail.timestamp_ms + 2))
                rewritten = StringSeries(tuple(logged))
            else:
                return
            self._world.set_field(project.qualified_name, container.sys_id, path, rewritten)


def _capped(response: Response, cap: int) -> Response:
    """A listing's answer with at most ``cap`` of its entries, its counts unchanged."""
    data = json.loads(response.body)
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        return response
    data["entries"] = data["entries"][:cap]
    body = json.dumps(data, separators=(",", ":")).encode()
    return Response(response.status, body, response.content_type, response.headers)
