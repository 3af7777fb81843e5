"""What the job kinds may use of the wallet domain: one typed bundle, made once at start."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from app.wallet.config import Config
from app.wallet.keyring import KeyRing
from app.wallet.wallets import WalletService


class PlanHooks(Protocol):
    """What the queue's jobs tell backup plans: a wallet moved, an archive was verified."""

    async def retarget(self, old_path: str, new_path: str) -> None: ...

    async def mark_verified(self, path: str, size: int, mtime_ns: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Services:
    #: the server's settings (data directory, registry path, jobs directory)
    config: Config
    #: the registry and wallet folders; its `registry_lock` serialises registry changes
    wallets: WalletService
    #: the login key, read by a job when it starts
    keyring: KeyRing
    #: backup plans (jobs/plans/service.py): they follow their wallet through renames, and the
    #: plan-run job records its runs there. Typed by what the queue needs of them: the queue knows no kind.
    plans: PlanHooks | None = None

    async def wallet_moved(self, old_path: str, new_path: str) -> None:
        """A rename completed: whatever follows wallets (backup plans) follows this one."""
        if self.plans is not None:
            await self.plans.retarget(old_path, new_path)

    async def archive_verified(self, path: str, size: int, mtime_ns: int) -> None:
        """A verify found the archive sound: the backups list shows when (while the file is unchanged)."""
        if self.plans is not None:
            await self.plans.mark_verified(path, size, mtime_ns)
