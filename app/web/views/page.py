"""The status page's own files (GET / and /static/<name>): shipped in the package, holding no data."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from app.wallet.errors import ApiError

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
#: The page's files and their types: a fixed list, so no name from a request is ever joined to a path.
FILES = {"index.html": "text/html", "page.css": "text/css", "page.js": "text/javascript"}
#: The page runs only its own script and talks only to this server; names it shows can never run.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
#: Read once at import (before the event loop runs): a few kilobytes, never read on the loop.
CONTENTS = {name: (STATIC_DIR / name).read_bytes() for name in FILES}


def is_page_file(request: web.Request) -> bool:
    """The requests that need no token (api.md): reading the page and its assets, which hold no data."""
    resource = request.match_info.route.resource
    return request.method in ("GET", "HEAD") and resource is not None and resource.canonical in PATHS


async def index(request: web.Request) -> web.Response:
    return _file("index.html")


async def static_file(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in FILES or name == "index.html":
        raise ApiError(404, f"Not found: {request.path}")
    return _file(name)


def _file(name: str) -> web.Response:
    return web.Response(body=CONTENTS[name], content_type=FILES[name], charset="utf-8", headers=HEADERS)


#: The page's routes, registered by app.web.routes beside the API's table (they are not API endpoints:
#: not in /api/openapi.json, and readable without the token).
ROUTES: tuple[tuple[str, Callable[[web.Request], Awaitable[web.Response]]], ...] = (
    ("/", index),
    ("/static/{name}", static_file),
)
PATHS = frozenset(path for path, _ in ROUTES)
