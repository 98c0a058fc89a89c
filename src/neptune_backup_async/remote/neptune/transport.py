"""One attempt of one Neptune request, and the one place where its failures get their types.

Each call here blocks for one request and raises at once: no retries, no sleeps. The
async retry loop (:mod:`.retry`) decides what to do next, by the type of the error:

- :class:`~.errors.TransientError` for what may pass: a dropped, refused, timed-out or cut
  connection, a retryable status (408, 429, 5xx, with ``Retry-After`` read whole), an
  answer that is not JSON;
- :class:`~.errors.MalformedAnswerError` for JSON of the wrong shape, raised here where the
  answer is decoded, so that no KeyError or TypeError of an answer reaches the caller;
- :class:`~.errors.AuthenticationError` for 401: the token was revoked;
- :class:`~.errors.HttpStatusError` (with its status) for any other error status.
"""

from __future__ import annotations

import ipaddress
import json
import os
import threading
import urllib.parse
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import requests
import urllib3

from ...domain import Download
from ...errors import (
    AuthenticationError,
    BackupError,
    HttpStatusError,
    MalformedAnswerError,
    Retry,
    TransientError,
    UsageError,
    redact,
)
from ..http import RETRYABLE_STATUSES, parse_retry_after
from . import decoding

CHUNK = 1024 * 1024
CONNECT_TIMEOUT = 30.0
READ_TIMEOUT = 300.0
# Answers decoded at once. A 10,000-point page decodes to ~4 MB of Python objects; under the
# GIL more decoders at once are no faster, and with 64 requests in flight they would hold
# 64 such pages (W3 peaked at 300+ MiB). Answers waiting for a slot hold only their bytes.
DECODING_SLOTS = 4
REVOKED = (
    "Neptune rejected the API token during the backup (it may have been revoked)."
    " Get a new token and run the same command again; finished runs are kept."
)
INSECURE = (
    "{address} is plain http, and the API token is sent over plain http only to this machine"
    " (localhost, 127.0.0.0/8, ::1). Use the https address of the Neptune server, or, on a network"
    " you trust, pass --allow-insecure-http (allow_insecure_http=True)."
)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine: localhost, 127.0.0.0/8 or ::1."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_plain_http(url: str, allow_insecure_http: bool = False) -> None:
    """Refuse to send a token to ``url`` in clear text: over https always, over plain http only
    to this machine, unless ``allow_insecure_http``. What oauthlib enforces for the client's
    own requests, without its switch (``OAUTHLIB_INSECURE_TRANSPORT``), which is process-wide."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" or allow_insecure_http or is_loopback(parts.hostname or ""):
        return
    raise UsageError(INSECURE.format(address=f"{parts.scheme}://{parts.netloc}"))


def connection_error(e: BaseException) -> TransientError | None:
    """The transient error for a failed connection, or None if ``e`` is not one.

    A body cut short surfaces from ``session.send()`` as ChunkedEncodingError, which is not a
    ConnectionError, and from the pool as urllib3's ProtocolError; the client's token refresh goes through oauthlib and may raise its own
    wrappers of these, so their causes are followed too.
    """
    seen: BaseException | None = e
    while seen is not None:
        # A refused connection is a NewConnectionError, which urllib3 makes a ConnectTimeoutError.
        timeout = isinstance(seen, urllib3.exceptions.TimeoutError) and not isinstance(
            seen, urllib3.exceptions.NewConnectionError
        )
        if timeout or isinstance(seen, requests.Timeout):
            return TransientError(f"no answer in time ({type(seen).__name__})", reason=Retry.TIMEOUT)
        if isinstance(
            seen,
            requests.ConnectionError
            | requests.exceptions.ChunkedEncodingError
            | requests.exceptions.ContentDecodingError
            | ConnectionError
            # What requests wraps in the errors above, raised by the pool of JSON calls.
            | urllib3.exceptions.NewConnectionError
            | urllib3.exceptions.ProtocolError
            | urllib3.exceptions.SSLError
            | urllib3.exceptions.DecodeError,
        ):
            return TransientError(f"connection failed ({type(seen).__name__})", reason=Retry.CONNECTION)
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return None


def status_error(
    status: int, headers: Mapping[str, str], body: bytes, what: str, secrets: list[str]
) -> BackupError:
    """The error for an answer with an error status; ``what`` was asked."""
    if status in RETRYABLE_STATUSES:
        return TransientError(
            f"HTTP {status}",
            reason=Retry.THROTTLED if status == 429 else Retry.STATUS,
            status=status,
            retry_after=parse_retry_after(headers.get("Retry-After")),
        )
    if status == 401:
        return AuthenticationError(REVOKED)
    text = body[:600].decode("utf-8", "replace")[:300]
    return HttpStatusError(status, f"{what}: HTTP {status}: {redact(text, secrets)}")


def _gunzip(raw: Iterator[bytes], what: str) -> Iterator[bytes]:
    """The decoded bytes of a gzip stream (one member or more), each member's trailer checked."""
    decoder = zlib.decompressobj(wbits=31)
    try:
        for data in raw:
            while data:
                yield decoder.decompress(data)
                data = decoder.unused_data  # the next member's start
                if data:
                    decoder = zlib.decompressobj(wbits=31)
    except zlib.error as e:
        raise TransientError(
            f"{what}: the gzip-encoded download is garbled ({e})", reason=Retry.WRONG_ANSWER
        ) from None
    if not decoder.eof:
        raise TransientError(f"{what}: the gzip-encoded download ended early", reason=Retry.CUT_OFF)


class Token(Protocol):
    """The client's OAuth access token, as the transport signs requests with it."""

    def bearer(self) -> str:
        """The access token, refreshed first if it is about to expire."""

    def refresh(self, stale: str) -> None:
        """Get a new access token after ``stale`` was refused, unless another thread already did."""


@dataclass(frozen=True)
class _Route:
    """How requests to one scheme and host go: the proxies requests would use, and the pool
    of JSON calls, or None to send them through requests too (behind a proxy)."""

    proxies: dict[str, str]
    pool: urllib3.HTTPConnectionPool | None


class Transport:
    """Sends requests with the client's token: JSON calls through a urllib3 pool, streamed
    downloads, and everything behind a proxy, through the client's requests session.

    ``Session.send`` costs about twice what the pool does per request (adapters, hooks,
    cookies, redirects, environment lookups), and a backup makes thousands of small ones.
    Thread-safe.
    """

    def __init__(
        self,
        session: requests.Session,
        token: Token,
        secrets: list[str],
        read_timeout: float = READ_TIMEOUT,
        pool_size: int = 10,
        *,
        decoding_slots: int = DECODING_SLOTS,
        allow_insecure_http: bool = False,
    ) -> None:
        self._session = session
        # The session's headers (the client's User-Agent, requests' Accept-Encoding...), fixed by now.
        self._base_headers = {k: v if isinstance(v, str) else v.decode() for k, v in session.headers.items()}
        self._token = token
        self._secrets = secrets
        self._timeout = (CONNECT_TIMEOUT, read_timeout)
        self._pool_timeout = urllib3.Timeout(connect=CONNECT_TIMEOUT, read=read_timeout)
        self._pool_size = pool_size
        self._routes: dict[tuple[str, str], _Route] = {}
        self._routes_lock = threading.Lock()
        self._decoding = threading.BoundedSemaphore(decoding_slots)
        self._allow_insecure_http = allow_insecure_http

    def _route(self, url: str) -> _Route:
        """The route to ``url``'s host, worked out once per host.

        Left to itself, ``Session.send`` reads every environment variable three times per
        request to find the proxies, which was a quarter of the client's cost of a small request.
        """
        scheme, host = urllib.parse.urlsplit(url)[:2]
        route = self._routes.get((scheme, host))
        if route is not None:
            return route
        check_plain_http(url, self._allow_insecure_http)
        session = self._session
        proxies = requests.utils.resolve_proxies(
            requests.Request("GET", url), dict(session.proxies), session.trust_env
        )
        pool = None
        if requests.utils.select_proxy(url, proxies) is None and not session.cert:
            tls: dict[str, Any] = {}
            if scheme == "https":
                # The certificates requests would trust for this host, as its HTTPAdapter reads them.
                verify = session.merge_environment_settings(url, {}, False, session.verify, None)["verify"]
                tls["cert_reqs"] = "CERT_NONE" if verify is False else "CERT_REQUIRED"
                if verify is not False:
                    bundle = verify if isinstance(verify, str) else requests.utils.DEFAULT_CA_BUNDLE_PATH
                    tls["ca_cert_dir" if os.path.isdir(bundle) else "ca_certs"] = bundle
            pool = urllib3.connection_from_url(url, maxsize=self._pool_size, **tls)
        with self._routes_lock:
            route = self._routes.setdefault((scheme, host), _Route(proxies, pool))
        if route.pool is not pool and pool is not None:
            pool.close()  # another thread's came first
        return route

    def _headers(self, bearer: str, headers: dict[str, str] | None, body: bytes | None) -> dict[str, str]:
        out = dict(self._base_headers)
        if body is not None:
            out["Content-Type"] = "application/json"
        out.update(headers or {})
        out["Authorization"] = f"Bearer {bearer}"
        return out

    def _attempt(
        self,
        method: str,
        url: str,
        params: dict[str, Any] | None,
        body: bytes | None,
        headers: dict[str, str] | None,
        stream: bool,
    ) -> tuple[str, int, Mapping[str, str], bytes, requests.Response | None]:
        """One request, signed: (the token used, status, headers, body, and the requests
        response when it went through requests, open if ``stream``)."""
        try:
            route = self._route(url)
            bearer = self._token.bearer()
            if route.pool is not None and not stream:
                target = urllib.parse.urlsplit(url).path
                if params:
                    target += "?" + urllib.parse.urlencode(params, doseq=True)
                answer = route.pool.urlopen(
                    method,
                    target,
                    body=body,
                    headers=self._headers(bearer, headers, body),
                    retries=False,
                    redirect=False,
                    timeout=self._pool_timeout,
                )
                if not 300 <= answer.status < 400:
                    return bearer, answer.status, answer.headers, answer.data, None
                # A redirect: requests follows it, as it always did.
            prepared = requests.Request(
                method, url, params=params, data=body, headers=self._headers(bearer, headers, body)
            ).prepare()
            response = self._session.send(prepared, stream=True, timeout=self._timeout, proxies=route.proxies)
            content = b""
            if not stream or response.status_code >= 400:
                # What requests itself does without stream=True, in 1 MiB reads instead of its
                # 10 KB ones: a 10,000-point series page took 80 reads, at ~0.6 ms of CPU.
                content = b"".join(response.iter_content(CHUNK))
            return bearer, response.status_code, response.headers, content, response
        except BackupError:
            raise  # the token refresh's, already typed
        except Exception as e:
            raise connection_error(e) or e from None

    def send(
        self,
        method: str,
        url: str,
        what: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        stream: bool = False,
        headers: dict[str, str] | None = None,
    ) -> tuple[bytes, requests.Response | None]:
        """One attempt; the body of an answer with a status below 400 (with the requests
        response, open, if ``stream``), or the error for what happened.

        A 401 gets one more try with a new access token: a token may expire early, or the
        clock here may be late.
        """
        data = None if body is None else json.dumps(body, allow_nan=False).encode()
        for fresh in (False, True):
            bearer, status, answer_headers, content, response = self._attempt(
                method, url, params, data, headers, stream
            )
            if status < 400:
                return content, response
            if response is not None:
                response.close()
            if status != 401 or fresh:
                break
            try:
                self._token.refresh(bearer)
            except BackupError:
                raise
            except Exception as e:
                raise connection_error(e) or e from None
        raise status_error(status, answer_headers, content, what, [*self._secrets, bearer])

    def json(
        self,
        method: str,
        url: str,
        what: str,
        *,
        required: tuple[str, ...] = (),
        convert: Callable[[Any], Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """One JSON call; ``required`` keys must be in the answer, or it is malformed.

        ``convert`` turns the decoded answer into what the caller keeps, while it still holds
        one of the few decoding slots (see :data:`DECODING_SLOTS`). It is a pure function of
        the answer (:mod:`.answers`), so what it raises on a key, type or value is the
        answer's fault: a :class:`MalformedAnswerError`.
        """
        content, _ = self.send(method, url, what, **kwargs)
        with self._decoding:
            try:
                result = decoding.loads(content)
            except ValueError as e:
                # A body cut short or garbled in transit: worth another try.
                raise TransientError(
                    f"invalid JSON in the answer ({type(e).__name__})", reason=Retry.INVALID_ANSWER
                ) from None
            del content  # the raw body: the decoded answer replaces it
            missing = [key for key in required if not isinstance(result, dict) or key not in result]
            if missing:
                raise MalformedAnswerError(
                    f"{what}: malformed answer from Neptune, without {', '.join(map(repr, missing))}"
                )
            if convert is None:
                return result
            try:
                return convert(result)
            except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
                raise MalformedAnswerError(
                    f"{what}: malformed answer from Neptune ({type(e).__name__}: {e})"
                ) from e

    def open(self, method: str, url: str, what: str, **kwargs: Any) -> Download:
        """A streamed body, open, decoded; reading it may raise a TransientError if it is cut off.

        Downloads accept gzip, which is decoded here with its trailer checked (CRC-32 and
        length of the decoded bytes): an encoded body cut short or garbled never passes for
        a whole file. Its ``Content-Length`` counts the encoded bytes, so the download's
        ``size`` is then unknown, and the file is judged by the size Neptune lists instead.
        """
        headers = {**kwargs.pop("headers", {}), "Accept-Encoding": "gzip"}
        _, response = self.send(method, url, what, stream=True, headers=headers, **kwargs)
        assert response is not None  # streamed answers go through requests
        encoding = response.headers.get("Content-Encoding", "").strip().lower()

        def chunks() -> Iterator[bytes]:
            try:
                if encoding in ("gzip", "x-gzip"):
                    yield from _gunzip(response.raw.stream(CHUNK, decode_content=False), what)
                else:  # identity, or what requests decodes itself should a proxy choose another
                    yield from response.iter_content(CHUNK)
            except (requests.RequestException, OSError, urllib3.exceptions.HTTPError) as e:
                raise TransientError(
                    f"{what}: the download was cut off ({type(e).__name__})", reason=Retry.CUT_OFF
                ) from None

        length = response.headers.get("Content-Length")
        return Download(
            chunks=chunks(),
            size=int(length) if length and length.isdigit() and encoding in ("", "identity") else None,
            content_type=response.headers.get("Content-Type"),
            close=response.close,
        )

    def close(self) -> None:
        for route in self._routes.values():
            if route.pool is not None:
                route.pool.close()
        self._session.close()
