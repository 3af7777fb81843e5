"""Handler of the backup endpoint: the immediate checks in api.md's order, then the backup job."""
from __future__ import annotations

from pathlib import Path

from aiohttp import web

from app.wallet.errors import WalletNotFound
from app.web.jobhttp import answer_with_job
from app.web.params import read_params
from app.wallet.paths import canonical
from app.web.state import config_key, run_blocking, wallets_key
from jobs.backup import backup
from jobs.models import JobKind


async def backup_wallet(request: web.Request) -> web.Response:
    """POST/GET /api/wallets/backup: destination (required), wallet_path, async."""
    params = await read_params(request)
    raw = params.get("destination", "")
    if not raw.strip():
        raise backup.MISSING_DESTINATION
    data_dir = request.app[config_key].data_dir

    def resolve() -> Path:  # canonicalising stats every path component: never on the loop
        return backup.resolve_destination(raw, data_dir=canonical(data_dir))

    destination = await run_blocking(request.app, resolve)
    try:
        wallet = await request.app[wallets_key].resolve(params.get("wallet_path"))
    except WalletNotFound as exc:
        raise backup.wallet_not_found(exc.path) from None
    if not wallet.online:
        raise backup.wallet_not_found(params.get("wallet_path") or str(wallet.path))
    await run_blocking(request.app, backup.check_destination_place, destination, wallet.path)
    return await answer_with_job(
        request, JobKind.BACKUP, wallet_path=str(wallet.path), params={"destination": str(destination)}
    )
