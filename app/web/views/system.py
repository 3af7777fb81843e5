"""Handlers of the system endpoints: health and the OpenAPI description."""

from __future__ import annotations

import time

from aiohttp import web

from app import __version__
from app.web.jobhttp import runner_key
from app.web.state import openapi_key, started_key


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
    return web.json_response(request.app[openapi_key])
