"""The plain request/response values passed between the HTTP layer and the operations."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Request:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def args(self, name: str) -> list[str]:
        return self.query.get(name, [])

    def int_arg(self, name: str, default: int) -> int:
        text = self.arg(name)
        if text is None or text == "":
            return default
        try:
            return int(text)
        except ValueError:
            raise ApiError(400, "BAD_REQUEST", f"{name} must be an integer") from None

    def json(self) -> Any:
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except ValueError:
            raise ApiError(400, "BAD_REQUEST", "the body is not JSON") from None


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data, separators=(",", ":")).encode()
    return Response(status, body, "application/json", dict(headers or {}))


class ApiError(Exception):
    """An error answer in the shape the client inspects (``errorType``, ``title``)."""

    def __init__(self, status: int, error_type: str, message: str, *, title: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.title = title or message

    def response(self) -> Response:
        body = {"code": self.status, "errorType": self.error_type, "message": str(self), "title": self.title}
        return json_response(body, self.status)
