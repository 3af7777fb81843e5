"""Handler of the backup endpoint: the backup job's plan (api.md's checks), then the job."""

from __future__ import annotations

from aiohttp import web

from app.web.jobhttp import submit_job
from jobs.models import JobKind


async def backup_wallet(request: web.Request) -> web.Response:
    """POST/GET /api/wallets/backup: destination (required), wallet_path, async."""
    return await submit_job(request, JobKind.BACKUP)
