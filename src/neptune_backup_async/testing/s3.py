"""A real S3 server on 127.0.0.1 for tests and benchmarks: moto's, behind a counting middleware.

It checks credentials as S3 does (IAM authentication on, one user with full access), and
counts what a backup asks of it: requests, those in flight at once (optionally into a
counter shared with the fake Neptune server), and the bytes and ``Range`` of every
object read. Needs the ``moto[server]`` test extra.
"""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

REGION = "us-east-1"


class InFlight:
    """Requests in flight at once, and the most ever; thread-safe, shareable between servers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def begin(self) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def end(self) -> None:
        with self._lock:
            self.now -= 1


@dataclass(frozen=True)
class Read:
    """One request as the server saw it."""

    method: str
    path: str  # /bucket/key
    range: str | None
    status: str = ""
    bytes: int = 0


@dataclass
class S3Server:
    url: str
    access_key: str
    secret_key: str
    in_flight: InFlight
    reads: list[Read] = field(default_factory=list)
    # Seconds to pause per MiB sent of these paths (/bucket/key): a slow link, to interrupt.
    slow: dict[str, float] = field(default_factory=dict)
    # Cut the connection of the next read of these paths after this many bytes of its body.
    cut: dict[str, int] = field(default_factory=dict)
    # Flip a byte in the body of the next read of these paths: a transfer gone wrong.
    garble: set[str] = field(default_factory=set)
    # Answer this many of the next requests "503 SlowDown", as S3 does when asked too much.
    slow_down: int = 0

    def client(self, access_key: str | None = None, secret_key: str | None = None) -> Any:
        import boto3

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
        )

    def env(self) -> dict[str, str]:
        """The environment a backup process needs to read from this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        }


class _Counting:
    """WSGI middleware: a request is in flight from its arrival until its last byte is handed out."""

    def __init__(self, app: Callable[..., Iterable[bytes]], server: S3Server) -> None:
        self.app = app
        self.server = server
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        self.server.in_flight.begin()
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        with self._lock:
            slow_down, self.server.slow_down = self.server.slow_down > 0, max(0, self.server.slow_down - 1)
        if slow_down:
            return self._send(self._slow_down(start_response), method, path, None, ["503"])
        status: list[str] = []

        def start(code: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            status.append(code)
            return start_response(code, headers, *args)

        try:
            body = self.app(environ, start)
        except BaseException:
            self.server.in_flight.end()
            raise
        return self._send(body, method, path, environ.get("HTTP_RANGE"), status)

    @staticmethod
    def _slow_down(start_response: Callable[..., Any]) -> list[bytes]:
        body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
        start_response(
            "503 Slow Down", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
        )
        return [body]

    def _send(
        self, body: Iterable[bytes], method: str, path: str, ranged: str | None, status: list[str]
    ) -> Iterator[bytes]:
        """The body in slices of at most 1 MiB; the request leaves 'in flight' before its last slice
        goes out, since the client may start its next request as soon as it has that slice."""
        pause = self.server.slow.get(path, 0.0)
        cut = self.server.cut.pop(path, None) if method == "GET" else None
        garble = method == "GET" and path in self.server.garble
        self.server.garble.discard(path)
        sent = 0
        slices = (
            memoryview(chunk)[i : i + 2**20].tobytes() for chunk in body for i in range(0, len(chunk), 2**20)
        )
        ended = False
        try:
            current = next(slices, None)
            while current is not None:
                following = next(slices, None)
                if following is None:
                    self.server.in_flight.end()
                    ended = True
                sent += len(current)
                if pause:
                    time.sleep(pause)
                if garble:
                    current, garble = bytes([current[0] ^ 1]) + current[1:], False
                if cut is not None and sent > cut:
                    yield current[: len(current) - (sent - cut)]
                    sent = cut
                    raise ConnectionAbortedError("cut by the test")  # the server drops the connection
                yield current
                current = following
        finally:
            if not ended:
                self.server.in_flight.end()
            self.server.reads.append(Read(method, path, ranged, status[0] if status else "", sent))
            close = getattr(body, "close", None)
            if close is not None:
                close()


@contextlib.contextmanager
def serve_s3(in_flight: InFlight | None = None) -> Iterator[S3Server]:
    """Start moto's S3 on a free port of 127.0.0.1, with one IAM user whose keys it accepts."""
    import boto3
    from moto.core import enable_iam_authentication
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    class Quiet(MotoRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    server = S3Server("", "", "", in_flight or InFlight())
    app = _Counting(DomainDispatcherApplication(create_backend_app), server)
    httpd = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
        # moto keeps its buckets and users per process, not per server: a server started
        # after another in the same process (a test module's fixture set up again) starts empty.
        urllib.request.urlopen(urllib.request.Request(f"{server.url}/moto-api/reset", method="POST")).close()
        iam = boto3.session.Session().client(
            "iam",
            endpoint_url=server.url,
            region_name=REGION,
            aws_access_key_id="setup",
            aws_secret_access_key="setup",
        )
        iam.create_user(UserName="backup")
        policy = (
            '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}'
        )
        iam.put_user_policy(UserName="backup", PolicyName="all", PolicyDocument=policy)
        key = iam.create_access_key(UserName="backup")["AccessKey"]
        server.access_key, server.secret_key = key["AccessKeyId"], key["SecretAccessKey"]
        server.reads.clear()
        with enable_iam_authentication():
            yield server
    finally:
        httpd.shutdown()
        thread.join()
