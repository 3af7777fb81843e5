"""Handlers of the system endpoints: health and the OpenAPI description."""
from __future__ import annotations

import time

from aiohttp import web

from app import __version__
from app.openapi import build_openapi
from app.state import runner_key, started_key


async def health(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "status": "ok",
            "version": __version__,
            "uptime_s": round(time.monotonic() - request.app[started_key], 3),
            "jobs": request.app[runner_key].counts(),
        }
    )


async def openapi(request: web.Request) -> web.Response:
    from app.routes import ROUTES

    return web.json_response(build_openapi(ROUTES))
