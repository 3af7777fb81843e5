"""The exception tree: every answer that is not a success, with its HTTP status and exact body.

    ApiError                      {"success": false, "error": msg, "code": status}  (api.md, rename seed)
    ├── WalletNotFound            404 "Wallet not found: <path>"
    ├── FlagError                 {"error": true, "message": msg, "code": status}   (backup seed)
    └── StatusError               {"status": "error", "error": msg, "error_code": n} (backup seed)

Handlers raise these; the error middleware (app.web.middleware) turns them into responses. Anything else
that escapes a handler is an error, logged with its traceback and answered 500 with a request id.
The domain modules raise them too: they carry no aiohttp type, only a status and a dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ApiError(Exception):
    """A handled failure: `status` and `body` are exactly what the client receives."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})

    @property
    def body(self) -> dict[str, Any]:
        return {"success": False, "error": self.message, "code": self.status, **self.extra}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.status} {self.message!r}>"


class WalletNotFound(ApiError):
    """The path does not name a registered wallet (api.md: unregistered is not found)."""

    def __init__(self, path: str) -> None:
        super().__init__(404, f"Wallet not found: {path}")
        self.path = path


class FlagError(ApiError):
    """The backup seed's {"error": true, …} shape."""

    @property
    def body(self) -> dict[str, Any]:
        return {"error": True, "message": self.message, "code": self.status, **self.extra}


class StatusError(ApiError):
    """The backup seed's {"status": "error", …, "error_code": n} shape."""

    def __init__(self, status: int, message: str, *, error_code: int) -> None:
        super().__init__(status, message)
        self.error_code = error_code

    @property
    def body(self) -> dict[str, Any]:
        return {"status": "error", "error": self.message, "error_code": self.error_code}


def missing_parameter(name: str) -> ApiError:
    return ApiError(400, f"Missing required parameter: {name}")
