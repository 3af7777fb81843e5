"""CloudCoin Wallet Server: a local aiohttp service that backs up and renames wallets."""

__version__ = "0.1.0"
