"""Middlewares: errors become JSON; then who may call (Host, Origin / Sec-Fetch-Site with CORS, token)."""

from __future__ import annotations

import hmac
import logging
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from app.wallet.config import MAX_BODY_BYTES, Config
from app.wallet.errors import ApiError
from app.web.params import read_json_body, read_params
from app.web.state import json_body_paths_key, route_headers_key
from app.web.views.page import is_page_file

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})
CORS_ALLOW_HEADERS = "Authorization, Content-Type, Prefer, Idempotency-Key, Last-Event-ID"
CORS_EXPOSE_HEADERS = "Location, Retry-After, Preference-Applied, X-Request-Id, Deprecation, Link"
CORS_ALLOW_METHODS = "GET, POST, DELETE, OPTIONS"
REQUEST_ID = web.RequestKey("request_id", str)
CORS = web.RequestKey("cors", dict)


def json_error(error: ApiError, request_id: str) -> web.Response:
    return web.json_response(error.body, status=error.status, headers=error.headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every answer is JSON: handled errors keep their body; anything else is a logged 500."""
    request_id = request.headers.get("X-Request-Id", "")[:64]
    if not request_id or not request_id.isprintable():
        request_id = uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    try:
        response = await handler(request)
    except ApiError as error:
        return json_error(error, request_id)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        return json_error(ApiError(exc.status, exc.reason, headers=headers), request_id)
    except Exception:
        log.exception("unexpected error in %s %s (request %s)", request.method, request.path, request_id)
        internal = ApiError(500, "Internal server error", extra={"request_id": request_id})
        return json_error(internal, request_id)
    return response


async def add_response_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: the request id, CORS and the route's own headers go on every answer, streams included."""
    if REQUEST_ID in request:
        response.headers.setdefault("X-Request-Id", request[REQUEST_ID])
    for name, value in request.get(CORS, {}).items():
        response.headers.setdefault(name, value)
    resource = request.match_info.route.resource
    if resource is not None:
        response.headers.update(request.app.get(route_headers_key, {}).get(resource.canonical, {}))


def host_name(host: str) -> str:
    """The Host header without its port: `[::1]:8080` -> `[::1]`, `localhost:80` -> `localhost`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def normal_origin(origin: str) -> str:
    """An origin as browsers send it: lower case, no trailing slash (so a configured one compares equal)."""
    return origin.strip().rstrip("/").lower()


def origin_allowed(origin: str, config: Config) -> bool:
    if normal_origin(origin) in {normal_origin(o) for o in config.allowed_origins}:
        return True
    try:
        parts = urlsplit(origin)
        hostname = parts.hostname or ""
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError:
        return False
    if parts.scheme != "http" or parts.path not in ("", "/") or parts.query or parts.username:
        return False
    return hostname in ("localhost", "127.0.0.1", "::1")


def referer_allowed(referer: str, config: Config) -> bool:
    """True when the page that sent the request lies on an allowed origin (an empty Referer says nothing)."""
    if not referer.strip():
        return True
    try:
        parts = urlsplit(referer.strip())
    except ValueError:
        return False
    if not parts.scheme or not parts.netloc:
        return False
    return origin_allowed(f"{parts.scheme}://{parts.netloc}", config)


def security_middleware(config: Config) -> Middleware:
    allowed_hosts = LOOPBACK_HOSTS | {host_name(h) for h in config.allowed_hosts}

    @web.middleware
    async def security(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host")
        if host is not None and host_name(host) not in allowed_hosts:
            raise ApiError(403, "Host not allowed")
        origin = request.headers.get("Origin")
        allowed = origin is not None and origin_allowed(origin, config)
        if origin is not None and not allowed:
            raise ApiError(403, "Cross-origin request refused")
        fetch_site = request.headers.get("Sec-Fetch-Site", "").lower()
        if fetch_site in ("cross-site", "same-site") and not allowed:
            raise ApiError(403, "Cross-site request refused")
        referer = request.headers.get("Referer")
        if origin is None and not fetch_site and referer is not None and not referer_allowed(referer, config):
            # An old browser's <img> or form sends neither Origin nor Sec-Fetch-Site, but a Referer
            # (curl and scripts send none of the three, and are served).
            raise ApiError(403, "Cross-site request refused")
        cors = _cors_headers(origin) if allowed and origin else {}
        request[CORS] = cors
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            preflight = {
                **cors,
                "Access-Control-Allow-Methods": CORS_ALLOW_METHODS,
                "Access-Control-Allow-Headers": CORS_ALLOW_HEADERS,
                "Access-Control-Max-Age": "600",
            }
            return web.Response(status=204, headers=preflight)
        if config.api_token and request.path != "/api/health" and not is_page_file(request):
            supplied = request.headers.get("Authorization", "")
            expected = f"Bearer {config.api_token}"
            # surrogateescape: a header of stray bytes must compare unequal, not raise.
            if not hmac.compare_digest(
                supplied.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape")
            ):
                raise ApiError(401, "Missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})
        # The 1 MiB limit holds for every request, also one whose handler never reads the body.
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            raise ApiError(413, f"Request body is larger than {MAX_BODY_BYTES} bytes")
        # Every request's parameters are checked before any handler runs, also where the handler
        # takes none: `POST /api/system/logout` with a broken body is a 400, not a silent logout.
        if request.match_info.http_exception is None:  # an unknown route stays a 404
            if _json_document(request):
                await read_json_body(request)  # a plan: lists and objects, JSON only (415 otherwise)
            else:
                await read_params(request)
        return await handler(request)

    return security


def _json_document(request: web.Request) -> bool:
    resource = request.match_info.route.resource
    paths = request.app.get(json_body_paths_key, frozenset())
    return resource is not None and resource.canonical in paths and request.method in ("POST", "PATCH", "PUT")


def _cors_headers(origin: str) -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Expose-Headers": CORS_EXPOSE_HEADERS,
        "Vary": "Origin",
    }
