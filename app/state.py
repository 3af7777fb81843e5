"""The typed application keys: where each shared service lives on the aiohttp app."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from app.config import Config
from app.keyring import KeyRing
from app.wallets import WalletService
from jobs.runner import JobRunner

config_key = web.AppKey("config", Config)
executor_key = web.AppKey("executor", ThreadPoolExecutor)
wallets_key = web.AppKey("wallets", WalletService)
started_key = web.AppKey("started", float)
keyring_key = web.AppKey("keyring", KeyRing)
runner_key = web.AppKey("runner", JobRunner)

