"""What the job kinds may use of the wallet domain: one typed bundle, made once at start."""

from __future__ import annotations

from dataclasses import dataclass

from app.wallet.config import Config
from app.wallet.keyring import KeyRing
from app.wallet.wallets import WalletService


@dataclass(frozen=True, slots=True)
class Services:
    #: the server's settings (data directory, registry path, jobs directory)
    config: Config
    #: the registry and wallet folders; its `registry_lock` serialises registry changes
    wallets: WalletService
    #: the login key, read by a job when it starts
    keyring: KeyRing
