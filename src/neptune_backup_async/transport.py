"""One attempt of one Neptune request, and the one place where its failures get their types.

Each call here blocks for one request and raises at once: no retries, no sleeps. The
async retry loop (:mod:`.retry`) decides what to do next, by the type of the error:

- :class:`~.errors.TransientError` for what may pass: a dropped, refused, timed-out or cut
  connection, a retryable status (408, 429, 5xx, with ``Retry-After`` read whole), a
  garbled answer;
- :class:`~.errors.AuthenticationError` for 401: the token was revoked;
- :class:`~.errors.HttpStatusError` (with its status) for any other error status.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import requests

from .errors import AuthenticationError, BackupError, FetchError, HttpStatusError, TransientError, redact
from .retry import RETRYABLE_STATUSES, parse_retry_after
from .source import Download

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


def connection_error(e: BaseException) -> TransientError | None:
    """The transient error for a failed connection, or None if ``e`` is not one.

    A body cut short surfaces from ``session.send()`` as ChunkedEncodingError, which is not a
    ConnectionError; the client's token refresh goes through oauthlib and may raise its own
    wrappers of these, so their causes are followed too.
    """
    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, requests.Timeout):
            return TransientError(f"no answer in time ({type(seen).__name__})", reason="timeout")
        if isinstance(
            seen,
            requests.ConnectionError
            | requests.exceptions.ChunkedEncodingError
            | requests.exceptions.ContentDecodingError
            | ConnectionError,
        ):
            return TransientError(f"connection failed ({type(seen).__name__})", reason="connection")
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return None


def status_error(response: requests.Response, what: str, secrets: list[str]) -> BackupError:
    """The error for an answer with an error status; ``what`` was asked."""
    status = response.status_code
    if status in RETRYABLE_STATUSES:
        return TransientError(
            f"HTTP {status}",
            reason=f"HTTP {status}",
            status=status,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if status == 401:
        return AuthenticationError(REVOKED)
    return HttpStatusError(status, f"{what}: HTTP {status}: {redact(response.text[:300], secrets)}")


class Transport:
    """Sends requests through the client's authenticated session. Thread-safe."""

    def __init__(
        self,
        session: requests.Session,
        authenticate: Callable[[requests.Request], requests.Request],
        secrets: list[str],
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        self._session = session
        self._authenticate = authenticate
        self._secrets = secrets
        self._timeout = (CONNECT_TIMEOUT, read_timeout)
        self._proxies: dict[tuple[str, str], dict[str, str]] = {}
        self._decoding = threading.BoundedSemaphore(DECODING_SLOTS)

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
    ) -> requests.Response:
        """One attempt; an answer with a status below 400, or the error for what happened."""
        request = requests.Request(method, url, params=params, json=body, headers=headers or {})
        try:
            prepared = self._session.prepare_request(self._authenticate(request))
            proxies = self._proxies_for(prepared)
            response = self._session.send(prepared, stream=True, timeout=self._timeout, proxies=proxies)
            if not stream or response.status_code >= 400:
                # What requests itself does without stream=True, in 1 MiB reads instead of its
                # 10 KB ones: a 10,000-point series page took 80 reads, at ~0.6 ms of CPU.
                response._content = b"".join(response.iter_content(CHUNK))
        except BackupError:
            raise  # the token refresh's, already typed
        except Exception as e:
            raise connection_error(e) or e from None
        if response.status_code < 400:
            return response
        response.close()
        raise status_error(response, what, self._secrets)

    def _proxies_for(self, prepared: requests.PreparedRequest) -> dict[str, str]:
        """The proxies requests would choose for this request's host, looked up once per host.

        Left to itself, ``Session.send`` reads every environment variable three times per
        request to find them, which was a quarter of the client's cost of a small request.
        """
        scheme, host = urllib.parse.urlsplit(prepared.url or "")[:2]
        proxies = self._proxies.get((scheme, host))
        if proxies is None:
            session = self._session
            proxies = requests.utils.resolve_proxies(prepared, dict(session.proxies), session.trust_env)
            self._proxies[scheme, host] = proxies
        return proxies

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
        one of the few decoding slots (see :data:`DECODING_SLOTS`).
        """
        response = self.send(method, url, what, **kwargs)
        with self._decoding:
            try:
                result = json.loads(response.content)  # the stdlib decoder: faster than simplejson here
            except ValueError as e:
                # A body cut short or garbled in transit: worth another try.
                raise TransientError(
                    f"invalid JSON in the answer ({type(e).__name__})", reason="invalid answer"
                ) from None
            del response  # the raw body: the decoded answer replaces it
            missing = [key for key in required if not isinstance(result, dict) or key not in result]
            if missing:
                raise FetchError(
                    f"{what}: malformed answer from Neptune, without {', '.join(map(repr, missing))}"
                )
            return result if convert is None else convert(result)

    def open(self, method: str, url: str, what: str, **kwargs: Any) -> Download:
        """A streamed body, open; reading it may raise a TransientError if it is cut off."""
        response = self.send(method, url, what, stream=True, **kwargs)

        def chunks() -> Iterator[bytes]:
            try:
                yield from response.iter_content(CHUNK)
            except (requests.RequestException, OSError) as e:
                raise TransientError(
                    f"{what}: the download was cut off ({type(e).__name__})", reason="cut off"
                ) from None

        length = response.headers.get("Content-Length")
        return Download(
            chunks=chunks(),
            size=int(length) if length and length.isdigit() else None,
            content_type=response.headers.get("Content-Type"),
            close=response.close,
        )

    def close(self) -> None:
        self._session.close()
