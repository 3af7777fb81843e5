"""Handlers of /api/wallets/restore and /api/wallets/backup/verify: the kind's plan, then the job."""

from __future__ import annotations

from aiohttp import web

from app.web.jobhttp import submit_job
from jobs.models import JobKind


async def restore_wallet(request: web.Request) -> web.Response:
    """POST /api/wallets/restore: zip_path (required), location, new_name, async."""
    return await submit_job(request, JobKind.RESTORE)


async def verify_backup(request: web.Request) -> web.Response:
    """POST /api/wallets/backup/verify: zip_path (required), async."""
    return await submit_job(request, JobKind.VERIFY)
