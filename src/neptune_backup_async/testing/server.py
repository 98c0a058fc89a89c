"""A fake Neptune server on 127.0.0.1 that the real ``neptune`` 1.x client reads from.

It serves a :class:`~.model.World` over the same HTTP API as Neptune (client config, our
own swagger specs, OAuth, projects, runs table, attributes, series, files, artifacts), counts
every request in :class:`Stats` and injects the faults of :class:`Faults`: latency, 429s,
5xx, responses cut off mid-body, slow answers, malformed bodies (not JSON, half bodies,
missing keys, short series pages, downloads that are no zip, HTML error pages and ``{}``
where anything else was due), at random or scripted per operation (once or for good, for
every request or only those with given arguments), and 429s above a concurrency limit. It
can also hold requests until a test lets them go (:mod:`.holding`).
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import random
import re
import socket
import ssl
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, cast, get_args
from urllib.parse import parse_qs, urlsplit

from .auth import REFRESH_PATH, Auth
from .habits import Habits
from .holding import Gather, Hold
from .messages import ApiError, Request, Response, json_response
from .model import World
from .operations import ZIP_PATH, Operations
from .spec import OPERATIONS, SWAGGER_PATHS, swagger

_log = logging.getLogger(__name__)

FaultKind = Literal[
    "cut",
    "slow",
    "garbage",
    "truncated_json",
    "missing_keys",
    "short_page",
    "early_page",
    "late_page",
    "not_zip",
    "html",
    "empty_json",
]
# A scripted answer: an HTTP status (>= 400 answers that error, below it the real answer) or a fault kind.
Answer = int | FaultKind
FAULT_KINDS: frozenset[str] = frozenset(get_args(FaultKind))

# Startup calls never get random faults: the client's setup has no retries worth testing.
STARTUP_OPERATIONS = frozenset({"getClientConfig", "swagger", "exchangeApiToken", "oauthRefresh"})
_ROUTES = {(op.method.upper(), op.path): op.operation_id for op in OPERATIONS if "{" not in op.path}
# Paths with parameters in them, such as /channels/{channelId}/values.
_TEMPLATES = {
    (op.method.upper(), re.compile(re.sub(r"\\{\w+\\}", "[^/]+", re.escape(op.path)))): op.operation_id
    for op in OPERATIONS
    if "{" in op.path
}
_ERRORS_5XX = (500, 502, 503, 504)
SERIES_PAGE_OPERATIONS = frozenset({"getFloatSeriesValues", "getStringSeriesValues"})
# Series pages served from another offset than the one asked for: points again, or skipped.
PAGE_SHIFTS = {"early_page": -2, "late_page": 1}
DOWNLOAD_OPERATIONS = frozenset({"downloadFileSetZip", "downloadAttribute"})
GARBAGE_BODY = b"<html>oops</html>"
NOT_ZIP_BODY = b"this is not a zip"
# What a proxy or gateway in trouble answers instead, with status 200.
HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>Service Unavailable</title></head>"
    b"<body><h1>The service is temporarily unavailable.</h1></body></html>"
)


def route(method: str, path: str) -> str:
    """The operation name of a request: its swagger operationId, or a fixed name."""
    if (method, path) in _ROUTES:
        return _ROUTES[(method, path)]
    for (verb, pattern), operation in _TEMPLATES.items():
        if verb == method and pattern.fullmatch(path):
            return operation
    if method == "GET" and path in SWAGGER_PATHS:
        return "swagger"
    if method == "POST" and path == REFRESH_PATH:
        return "oauthRefresh"
    if method == "GET" and path.startswith(ZIP_PATH):
        return "downloadFileSetZip"
    return "unknown"


@dataclass
class _Script:
    """Scripted answers for the requests of one operation whose arguments include ``match``."""

    answers: collections.deque[Answer]
    match: dict[str, str]
    forever: bool  # the one answer is given again and again

    def fits(self, arguments: Mapping[str, str]) -> bool:
        return all(arguments.get(name) == value for name, value in self.match.items())


def _checked(answers: Iterable[Answer]) -> Iterable[Answer]:
    for answer in answers:
        if isinstance(answer, bool) or not isinstance(answer, int | str):
            raise TypeError(f"a scripted answer is a status or a fault kind, not {answer!r}")
        if isinstance(answer, str) and answer not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {answer!r}; one of {', '.join(sorted(FAULT_KINDS))}")
        yield answer


@dataclass
class Faults:
    """Faults to inject; every field may change at any time, also while serving.

    Scripted answers (:meth:`script` for the next calls, :meth:`always` for every call, of
    one operation, or only of its calls with given arguments) and the random ``rate_*``
    faults are, besides an HTTP status:

    - ``"cut"``: the full Content-Length promised, half the body sent, connection closed;
    - ``"slow"``: the real answer, sent only after ``slow_seconds``;
    - ``"garbage"``: a 200 ``application/json`` whose body is not JSON;
    - ``"truncated_json"``: a 200 with the first half of the real body (JSON or a download),
      Content-Length to match;
    - ``"missing_keys"``: a 200 with the real JSON's top-level keys removed (``{}``, or
      ``[{}]`` for a list);
    - ``"short_page"``: for ``getFloatSeriesValues``/``getStringSeriesValues``, the real page
      with half its ``values`` and ``totalItemCount`` unchanged;
    - ``"early_page"``, ``"late_page"``: for those too, the page of an offset two points
      before the one asked for (its first two points given again), or one after it (a point
      skipped), ``totalItemCount`` unchanged; for an offset with no such other, the real page;
    - ``"not_zip"``: for ``downloadFileSetZip``/``downloadAttribute``, a body that is no zip,
      with the real headers;
    - ``"html"``: a 200 ``text/html`` error page, whatever the real answer was;
    - ``"empty_json"``: a 200 ``application/json`` ``{}``, whatever the real answer was.

    The body faults apply to a 2xx real answer of an operation they fit; otherwise the real
    answer is sent and no fault counted. With ``max_in_flight`` set, a request beyond that
    many served at once (start-up operations aside) gets a 429 with ``retry_after``.

    The last switches are no faults but what a real server may do, every answer still right
    by the API (see :mod:`.habits`): pages of the runs table (``table_page``) or of the
    projects list (``projects_page``) no longer than that, whatever was asked for; downloads
    gzip-encoded for a client that accepts it (``gzip``); series pages after the first
    starting with the last point of the page before (``repeat_series_point``); a series
    cleared and logged again, one point longer, once its first page is served
    (``rewrite_series``); series pages of more points than ``series_page_max`` refused with
    the status ``series_page_refusal``; a file set's zip that is ready only after its request
    was polled ``zip_polls`` times (the answers before say nothing of a ``downloadUrl``).

    Last, requests can be held in the server (start-up operations aside, see :mod:`.holding`):
    until some are in flight at once (``gather``), or after a number of them (``hold``).
    """

    latency: float = 0.0  # seconds added to every request
    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_cut: float = 0.0  # full Content-Length promised, half the body sent, connection closed
    retry_after: str = "1"
    seed: int = 0
    rate_slow: float = 0.0  # the answer waits slow_seconds before anything is sent
    slow_seconds: float = 5.0
    max_in_flight: int | None = None  # more requests at once than this get 429 ("over_limit")
    table_page: int | None = None  # entries a runs-table page holds at most
    projects_page: int | None = None  # entries a projects-list page holds at most
    gzip: bool = False
    repeat_series_point: bool = False
    rewrite_series: bool = False
    series_page_max: int | None = None  # series pages asking for more points are refused
    series_page_refusal: int = 400  # with this status
    zip_polls: int = 0  # polls of a zip request answered "not built yet" before its downloadUrl
    gather: Gather | None = None
    hold: Hold | None = None
    _scripts: dict[str, list[_Script]] = field(default_factory=dict, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)
    _rng: random.Random = field(default_factory=random.Random, init=False, repr=False, compare=False)
    _rng_seed: int | None = field(default=None, init=False, repr=False, compare=False)

    def script(self, operation: str, *answers: Answer, match: Mapping[str, str] | None = None) -> None:
        """The next calls of ``operation`` answer these statuses or faults, in order.

        With ``match``, only the calls whose arguments (see :meth:`FakeNeptuneServer.arguments`)
        include these, such as ``{"attribute": "images/predictions", "index": "1"}``.
        """
        self._add(operation, _Script(collections.deque(_checked(answers)), dict(match or {}), forever=False))

    def always(self, operation: str, answer: Answer, *, match: Mapping[str, str] | None = None) -> None:
        """From now on every call of ``operation`` (with ``match``, as in :meth:`script`) answers
        ``answer``: a fault that no retry gets past, until :meth:`clear`."""
        self._add(operation, _Script(collections.deque(_checked((answer,))), dict(match or {}), forever=True))

    def clear(self) -> None:
        """Forget every scripted answer not given yet, the lasting ones too."""
        with self._lock:
            self._scripts.clear()

    def _add(self, operation: str, scripted: _Script) -> None:
        with self._lock:
            self._scripts.setdefault(operation, []).append(scripted)

    def draw(self, operation: str, arguments: Mapping[str, str] | None = None) -> Answer | None:
        """The fault for one request of ``operation`` with these ``arguments``, or None to
        answer it normally. Scripts are used in the order they were given."""
        with self._lock:
            for scripted in self._scripts.get(operation, ()):
                if scripted.answers and scripted.fits(arguments or {}):
                    return scripted.answers[0] if scripted.forever else scripted.answers.popleft()
            if operation in STARTUP_OPERATIONS:
                return None
            if self._rng_seed != self.seed:  # a new seed restarts the sequence
                self._rng.seed(self.seed)
                self._rng_seed = self.seed
            roll = self._rng.random()
            if roll < self.rate_429:
                return 429
            if roll < self.rate_429 + self.rate_5xx:
                return self._rng.choice(_ERRORS_5XX)
            if roll < self.rate_429 + self.rate_5xx + self.rate_cut:
                return "cut"
            if roll < self.rate_429 + self.rate_5xx + self.rate_cut + self.rate_slow:
                return "slow"
            return None


class Stats:
    """Thread-safe accounting of the requests served."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.by_operation: collections.Counter[str] = collections.Counter()
            self.statuses: collections.Counter[int] = collections.Counter()
            self.total = 0
            self.max_in_flight = self.in_flight
            self.bytes_served = 0
            self.cuts = 0
            # injected faults by kind: a status ("429", "503"), a FaultKind, or "over_limit"
            self.faults: collections.Counter[str] = collections.Counter()
            # for each request admitted (start-up aside), how many admitted requests were then
            # in progress, itself included: how busy the client keeps a server that takes N
            self.admitted_with: collections.Counter[int] = collections.Counter()

    def begin(self, operation: str) -> int:
        """Count a request that arrives; return how many are in flight, this one included."""
        with self._lock:
            self.by_operation[operation] += 1
            self.total += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return self.in_flight

    @property
    def unbooked(self) -> int:
        """Requests begun whose answer is not booked yet (it is booked once sent)."""
        with self._lock:
            return self.total - sum(self.statuses.values())

    def answered(self) -> None:
        """The answer is about to go out: from here the client may hold it and ask again."""
        with self._lock:
            self.in_flight -= 1

    def end(self, status: int, body_bytes: int, cut: bool) -> None:
        with self._lock:
            self.statuses[status] += 1
            self.bytes_served += body_bytes
            self.cuts += cut

    def fault(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] += 1

    def admitted(self, serving: int) -> None:
        with self._lock:
            self.admitted_with[serving] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": self.total,
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "bytes_served": self.bytes_served,
                "cuts": self.cuts,
                "faults": dict(sorted(self.faults.items())),
                "by_operation": dict(sorted(self.by_operation.items())),
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            }


def _fault_response(status: int, retry_after: str) -> Response:
    headers = {"Retry-After": retry_after} if status == 429 else {}
    return json_response({"code": status, "message": f"injected fault {status}"}, status, headers)


def malformed(operation: str, kind: str, response: Response) -> Response | None:
    """``response`` spoiled by a body fault, or None where that fault does not apply."""
    if not 200 <= response.status < 300:
        return None
    if kind == "garbage":
        return Response(200, GARBAGE_BODY, "application/json")
    if kind == "html":
        return Response(200, HTML_PAGE, "text/html; charset=utf-8")
    if kind == "empty_json":
        return json_response({})
    if kind == "truncated_json":
        return Response(
            200, response.body[: len(response.body) // 2], response.content_type, response.headers
        )
    if kind == "not_zip":
        if operation not in DOWNLOAD_OPERATIONS:
            return None
        return Response(200, NOT_ZIP_BODY, response.content_type, response.headers)
    if response.content_type != "application/json":
        return None
    data = json.loads(response.body)
    if kind == "missing_keys":
        if isinstance(data, dict):
            return json_response({}, headers=response.headers)
        if isinstance(data, list):
            return json_response([{}], headers=response.headers)
        return None
    if kind == "short_page":
        if operation not in SERIES_PAGE_OPERATIONS or not isinstance(data, dict):
            return None
        values = data.get("values")
        if not isinstance(values, list):
            return None
        return json_response({**data, "values": values[: len(values) // 2]}, headers=response.headers)
    return None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # idle keep-alive connections must not hold stop() up
    allow_reuse_address = True
    request_queue_size = 512  # many clients connect at once

    def __init__(self, address: tuple[str, int], fake: FakeNeptuneServer) -> None:
        self.fake = fake
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a client hanging up is no error
            super().handle_error(request, client_address)

    def close_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the client's connection pool is reused

    @property
    def http_server(self) -> _HTTPServer:
        return cast(_HTTPServer, self.server)

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.http_server.connections_lock:
            self.http_server.connections.add(self.connection)

    def finish(self) -> None:
        with self.http_server.connections_lock:
            self.http_server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        fake = self.http_server.fake
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        request = Request(
            path=url.path,
            query=parse_qs(url.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        operation = route(self.command, url.path)
        in_flight = fake.stats.begin(operation)
        admitted = fake.admit(operation)
        status, sent, cut = 0, 0, False
        try:
            try:
                faults = fake.faults
                fake.wait_to_answer(operation, in_flight)
                if faults.latency > 0:
                    fake.pause(faults.latency)
                if not admitted:
                    fake.stats.fault("over_limit")
                    response = _fault_response(429, faults.retry_after)
                else:
                    response, cut = self._answer(operation, request)
            finally:
                # Given back before sending: a client that holds the answer may ask again at once,
                # and that request must not count as a second one in flight.
                if admitted:
                    fake.release(operation)
                fake.stats.answered()
            status = response.status
            sent = self._send(response, cut)
        finally:
            fake.stats.end(status, sent, cut)

    def _answer(self, operation: str, request: Request) -> tuple[Response, bool]:
        """The answer to an admitted request, with its drawn fault; and whether to cut it."""
        fake = self.http_server.fake
        fault = fake.faults.draw(operation, fake.arguments(operation, request))
        if isinstance(fault, int):
            if fault >= 400:
                fake.stats.fault(str(fault))
                return _fault_response(fault, fake.faults.retry_after), False
            return fake.answer(operation, request), False
        if fault == "slow":
            fake.stats.fault(fault)
            fake.pause(fake.faults.slow_seconds)
        if fault in PAGE_SHIFTS and operation in SERIES_PAGE_OPERATIONS:
            asked = request.int_arg("offset", 0)
            if (offset := asked + PAGE_SHIFTS[fault]) >= 0:
                fake.stats.fault(fault)
                request = replace(request, query={**request.query, "offset": [str(offset)]})
        response = fake.answer(operation, request)
        if fault == "cut":
            fake.stats.fault(fault)
            return response, True
        if fault is not None and fault != "slow":
            spoiled = malformed(operation, fault, response)
            if spoiled is not None:
                fake.stats.fault(fault)
                return spoiled, False
        return response, False

    def _send(self, response: Response, cut: bool) -> int:
        body = memoryview(response.body)
        size = len(body) // 2 if cut else len(body)
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body[:size])
        except OSError:  # the client went away
            self.close_connection = True
            return 0
        if cut:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
        return size


class FakeNeptuneServer:
    """Serves ``world`` at ``base_url``; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        world: World,
        *,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.world = world
        self.faults = faults or Faults()
        self.stats = Stats()
        self._httpd = _HTTPServer((host, port), self)  # bound now, so that the token knows the port
        if tls is not None:  # https; the handshake happens in each connection's own thread
            self._httpd.socket = tls.wrap_socket(
                self._httpd.socket, server_side=True, do_handshake_on_connect=False
            )
        self.base_url = f"{'https' if tls else 'http'}://{host}:{self._httpd.server_address[1]}"
        self.auth = Auth(self.base_url)
        self.operations = Operations(world, self.base_url)
        self._habits = Habits(world, lambda: self.faults)
        self._swagger = {path: json.dumps(swagger(api)).encode() for path, api in SWAGGER_PATHS.items()}
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()  # cuts latency and slow answers short on stop()
        self._serving = 0  # admitted requests in progress, start-up operations aside
        self._serving_lock = threading.Lock()

    @property
    def api_token(self) -> str:
        return self.auth.api_token

    def revoke_token(self) -> None:
        """From now on the old API token and every access token issued for it get 401."""
        self.auth.revoke()

    def admit(self, operation: str) -> bool:
        """Whether a request fits under ``faults.max_in_flight``; if so it holds a place
        until :meth:`release`. Start-up operations are neither limited nor counted."""
        if operation in STARTUP_OPERATIONS:
            return True
        with self._serving_lock:
            limit = self.faults.max_in_flight
            if limit is not None and self._serving >= limit:
                return False
            self._serving += 1
            self.stats.admitted(self._serving)
            return True

    def release(self, operation: str) -> None:
        if operation in STARTUP_OPERATIONS:
            return
        with self._serving_lock:
            self._serving -= 1

    def arguments(self, operation: str, request: Request) -> dict[str, str]:
        """A request's arguments as scripted faults match them: its query (the first value of
        each), and for a file set's zip the ``experimentId`` and ``attribute`` it was prepared for."""
        arguments = {name: values[0] for name, values in request.query.items() if values}
        if operation == "downloadFileSetZip" and (target := self.operations.zip_target(request)) is not None:
            arguments["experimentId"], arguments["attribute"] = target
        return arguments

    def wait_to_answer(self, operation: str, in_flight: int) -> None:
        """Hold a request that arrived with ``in_flight`` in flight (admitted under
        ``max_in_flight`` or not) while ``faults.hold`` or ``faults.gather`` says so; start-up
        operations are never held."""
        if operation in STARTUP_OPERATIONS:
            return
        faults = self.faults
        if faults.hold is not None:
            faults.hold.arrive()
        if faults.gather is not None:
            faults.gather.arrive(operation, in_flight)

    def pause(self, seconds: float) -> None:
        """Sleep, but no longer than until the server stops."""
        self._stopping.wait(seconds)

    def client_config(self) -> dict[str, Any]:
        return {
            "apiUrl": self.base_url,
            "applicationUrl": self.base_url,
            "pyLibVersions": {
                "minRecommendedVersion": "1.0.0",
                "minCompatibleVersion": "1.0.0",
                "maxCompatibleVersion": "1.99.99",
            },
            "artifacts": {"enabled": True},
        }

    def answer(self, operation: str, request: Request) -> Response:
        """The real answer to a request (no faults)."""
        try:
            if operation == "swagger":
                return Response(200, self._swagger[request.path])
            if operation == "oauthRefresh":
                return self.auth.refresh(request)
            if operation == "exchangeApiToken":
                return self.auth.exchange(request)
            if not self.auth.authorized(request):
                raise ApiError(401, "UNAUTHORIZED", "missing, invalid or revoked token")
            if operation == "getClientConfig":
                return json_response(self.client_config())
            handler = self.operations.handlers.get(operation)
            if handler is None:
                raise ApiError(404, "NOT_FOUND", f"no route for {request.path}")
            return self._habits.answer(operation, request, handler)
        except ApiError as e:
            return e.response()
        except Exception as e:  # a bug here must show, not hang the client in its 5xx retries
            _log.exception("fake Neptune server failed on %s", operation)
            return ApiError(400, "FAKE_SERVER_BUG", f"{type(e).__name__}: {e}").response()

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-neptune", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.close_connections()
        self._httpd.server_close()
        for holding in (self.faults.hold, self.faults.gather):  # into connections now cut
            if holding is not None:
                holding.release()

    def __enter__(self) -> FakeNeptuneServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def serve(
    world: World, *, faults: Faults | None = None, port: int = 0, tls: ssl.SSLContext | None = None
) -> Iterator[FakeNeptuneServer]:
    """Serve ``world`` on 127.0.0.1 for the duration of the block (over https with ``tls``)."""
    with FakeNeptuneServer(world, faults=faults, port=port, tls=tls) as server:
        yield server
