"""API token, OAuth token exchange and refresh, as the neptune client expects them.

The API token is ``base64(JSON)`` naming our address. Access and refresh tokens are
unsigned JWTs (the client never checks signatures) with ``exp``, ``iss`` and ``azp``;
the client refreshes at ``{iss}/protocol/openid-connect/token``.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from typing import Any
from urllib.parse import parse_qs

from .messages import ApiError, Request, Response, json_response

REALM_PATH = "/auth/realms/neptune"
REFRESH_PATH = f"{REALM_PATH}/protocol/openid-connect/token"
CLIENT_ID = "neptune-client"
USERNAME = "fake-user"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Auth:
    def __init__(self, base_url: str, token_lifetime: float = 3600.0) -> None:
        self.base_url = base_url
        self.token_lifetime = token_lifetime
        self._lock = threading.Lock()
        self._access: set[str] = set()
        self._refresh: set[str] = set()
        self.api_token = self._new_api_token()

    def _new_api_token(self) -> str:
        payload = {"api_address": self.base_url, "api_url": self.base_url, "api_key": secrets.token_hex(16)}
        return base64.b64encode(json.dumps(payload).encode()).decode()

    def revoke(self) -> None:
        """Invalidate the API token and every token issued for it; a new API token replaces it."""
        with self._lock:
            self._access.clear()
            self._refresh.clear()
            self.api_token = self._new_api_token()

    def _jwt(self, kind: str, lifetime: float) -> str:
        now = time.time()
        claims = {
            "exp": int(now + lifetime),
            "iat": int(now),
            "iss": f"{self.base_url}{REALM_PATH}",
            "azp": CLIENT_ID,
            "typ": kind,
            "preferred_username": USERNAME,
            "jti": secrets.token_hex(8),
        }
        header = {"alg": "none", "typ": "JWT"}
        return f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}."

    def _issue(self) -> tuple[str, str]:
        access, refresh = self._jwt("Bearer", self.token_lifetime), self._jwt("Refresh", 30 * 86_400)
        with self._lock:
            self._access.add(access)
            self._refresh.add(refresh)
        return access, refresh

    def _claims(self, token: str) -> dict[str, Any]:
        try:
            payload = token.split(".")[1]
            claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            return claims
        except (IndexError, ValueError):
            return {}

    def api_token_valid(self, request: Request) -> bool:
        return request.headers.get("x-neptune-api-token", "").strip() == self.api_token

    def authorized(self, request: Request) -> bool:
        """True for the current API token, or a live access token issued for it."""
        if self.api_token_valid(request):
            return True
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        with self._lock:
            issued = token in self._access
        return issued and self._claims(token).get("exp", 0) > time.time()

    def exchange(self, request: Request) -> Response:
        """``exchangeApiToken``: the API token for a first access/refresh token pair."""
        if not self.api_token_valid(request):
            raise ApiError(401, "UNAUTHORIZED", "invalid API token")
        access, refresh = self._issue()
        return json_response({"accessToken": access, "refreshToken": refresh, "username": USERNAME})

    def refresh(self, request: Request) -> Response:
        """The OAuth refresh-token grant (form POST), answered like Keycloak."""
        form = parse_qs(request.body.decode())
        token = form.get("refresh_token", [""])[0]
        with self._lock:
            known = token in self._refresh
        if form.get("grant_type", [""])[0] != "refresh_token" or not known:
            return json_response(
                {"error": "invalid_grant", "error_description": "Invalid refresh token"}, 400
            )
        access, refresh = self._issue()
        return json_response(
            {
                "access_token": access,
                "refresh_token": refresh,
                "token_type": "Bearer",
                "expires_in": int(self.token_lifetime),
            }
        )
