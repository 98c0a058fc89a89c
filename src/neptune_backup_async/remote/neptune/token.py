"""The OAuth access token every request is signed with, refreshed without requests-oauthlib.

The client's ``NeptuneAuth`` refreshes through requests-oauthlib, which refuses plain http
unless ``OAUTHLIB_INSECURE_TRANSPORT`` is set, and that switch is read from the environment
of the whole process at every check. So the refresh is made here, with oauthlib's own
functions for its body and its answer, and :func:`.transport.check_plain_http` decides
where a token may go. Nothing here touches the ``neptune`` client: :mod:`.client` hands over
the client's OAuth session and its way to exchange the API token again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from ...errors import BackupError
from ..http import RETRYABLE_STATUSES
from .transport import CONNECT_TIMEOUT, check_plain_http, connection_error, status_error

REFRESH_BEFORE = 30.0  # seconds before the access token expires, as the client's own NeptuneAuth
_FORM = {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}


class OAuthToken:
    """The access and refresh tokens of a requests-oauthlib ``OAuth2Session``, refreshed by one
    thread at a time, as the client's ``NeptuneAuth`` refreshes them: the refresh-token grant at
    the session's ``auto_refresh_url``, and once that is refused (an OAuth error), a new
    exchange of the API token (``exchange``, which returns a new session). One attempt each:
    the client's ``refresh_token_if_needed`` retries a failed one for a minute. Its errors come
    out typed as the transport's."""

    def __init__(
        self,
        oauth: Any,
        exchange: Callable[[], Any],
        http: requests.Session,
        read_timeout: float,
        allow_insecure_http: bool,
    ) -> None:
        self._exchange = exchange
        self._http = http
        self._timeout = (CONNECT_TIMEOUT, read_timeout)
        self._allow_insecure_http = allow_insecure_http
        self._lock = threading.Lock()
        self._take(oauth)

    def _take(self, oauth: Any) -> None:
        """Use the tokens of ``oauth`` from now on."""
        import jwt

        self._oauth = oauth
        self._access = str(oauth.token["access_token"])
        self._refresh_token = str(oauth.token["refresh_token"])
        # The token's own expiry, read as the client reads it, without checking its signature:
        # the client sets its own only on a refresh, so its first request always refreshes.
        claims = jwt.decode(self._access, options={"verify_signature": False})
        self._expires_at = float(claims.get("exp") or 0)

    def bearer(self) -> str:
        if self._expires_at - time.time() < REFRESH_BEFORE:
            with self._lock:
                if self._expires_at - time.time() < REFRESH_BEFORE:
                    self._refresh()
        return self._access

    def refresh(self, stale: str) -> None:
        with self._lock:
            if self._access == stale:
                self._refresh()

    def _refresh(self) -> None:
        from oauthlib.oauth2 import OAuth2Error
        from oauthlib.oauth2.rfc6749.parameters import parse_token_response, prepare_token_request

        oauth = self._oauth
        check_plain_http(oauth.auto_refresh_url, self._allow_insecure_http)
        body = prepare_token_request(
            "refresh_token", refresh_token=self._refresh_token, scope=oauth.scope, **oauth.auto_refresh_kwargs
        )
        try:
            try:
                answer = self._http.post(
                    oauth.auto_refresh_url, data=body, headers=_FORM, timeout=self._timeout
                )
                if answer.status_code in RETRYABLE_STATUSES:
                    raise status_error(answer.status_code, answer.headers, b"", "token refresh", [])
                token = parse_token_response(answer.text, scope=oauth.scope)
            except OAuth2Error:  # refused, as when the refresh token has expired
                self._take(self._exchange())
                return
            token.setdefault("refresh_token", self._refresh_token)
            oauth.token = token
            self._take(oauth)
        except BackupError:
            raise
        except Exception as e:
            raise connection_error(e) or e from None


class Bearer:
    """Signs the client's own (bravado) requests, its spec downloads, with ``token``: a bravado
    authenticator by the two methods bravado calls."""

    def __init__(self, token: OAuthToken, allow_insecure_http: bool) -> None:
        self._token = token
        self._allow_insecure_http = allow_insecure_http

    def matches(self, url: str) -> bool:
        return True

    def apply(self, request: requests.Request) -> requests.Request:
        check_plain_http(request.url, self._allow_insecure_http)
        request.headers["Authorization"] = f"Bearer {self._token.bearer()}"
        return request
