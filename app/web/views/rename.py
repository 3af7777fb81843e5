"""Handlers of the rename endpoints: /api/wallets/rename and the legacy index form /api/wallets/active/rename."""

from __future__ import annotations

from aiohttp import web

from app.web.jobhttp import submit_job
from jobs import rename
from jobs.models import JobKind


async def rename_wallet(request: web.Request) -> web.Response:
    """GET/POST /api/wallets/rename: wallet_path, new_name, async."""
    return await submit_job(request, JobKind.RENAME)


async def rename_wallet_legacy(request: web.Request) -> web.Response:
    """The deprecated index form; its Deprecation and Link headers come from the route table."""
    return await submit_job(request, JobKind.RENAME, rename.plan_rename_legacy)
