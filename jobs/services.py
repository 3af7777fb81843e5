"""What the job kinds may use of the wallet domain: one typed bundle, made once at start."""

from __future__ import annotations

from dataclasses import dataclass

from app.wallet.config import Config
from app.wallet.keyring import KeyRing
from app.wallet.wallets import WalletService
from jobs.plans.service import PlanService


@dataclass(frozen=True, slots=True)
class Services:
    #: the server's settings (data directory, registry path, jobs directory)
    config: Config
    #: the registry and wallet folders; its `registry_lock` serialises registry changes
    wallets: WalletService
    #: the login key, read by a job when it starts
    keyring: KeyRing
    #: backup plans: the plan-run job records its runs here; renames retarget plans
    plans: PlanService | None = None

    async def wallet_moved(self, old_path: str, new_path: str) -> None:
        """A rename completed: whatever follows wallets (backup plans) follows this one."""
        if self.plans is not None:
            await self.plans.retarget(old_path, new_path)
