"""Settings: the frozen Config and load_config(), which reads flags > environment > TOML file > defaults."""
from __future__ import annotations

import argparse
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
#: 1 MiB: the largest request body any endpoint needs is a few parameters.
MAX_BODY_BYTES = 1024 * 1024
#: api.md: a parameter longer than this is refused with 400.
MAX_PARAM_CHARS = 4096


@dataclass(frozen=True, slots=True)
class Config:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    data_dir: Path = field(default_factory=lambda: Path("Client_Data"))
    api_token: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    workers: int = 2
    threads: int = 4
    max_queued: int = 1000
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser().absolute())
        if self.workers < 1 or self.threads < 1 or self.max_queued < 1:
            raise ValueError("workers, threads and max_queued must be at least 1")

    @property
    def wallets_dir(self) -> Path:
        return self.data_dir / "Wallets"

    @property
    def registry_path(self) -> Path:
        return self.data_dir / "wallet-locations.csv"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def backup_places_path(self) -> Path:
        return self.data_dir / "BackupPlaces.txt"


#: Environment variables and the setting each one fills.
ENVIRONMENT = {
    "CLOUDCOIN_HOST": "host",
    "CLOUDCOIN_PORT": "port",
    "CLOUDCOIN_DATA_DIR": "data_dir",
    "CLOUDCOIN_API_TOKEN": "api_token",
    "CLOUDCOIN_ALLOWED_HOSTS": "allowed_hosts",
    "CLOUDCOIN_ALLOWED_ORIGINS": "allowed_origins",
    "CLOUDCOIN_WORKERS": "workers",
    "CLOUDCOIN_THREADS": "threads",
    "CLOUDCOIN_MAX_QUEUED": "max_queued",
    "CLOUDCOIN_LOG_LEVEL": "log_level",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m app", description="CloudCoin Wallet Server")
    parser.add_argument("--host", help=f"address to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, help=f"port to listen on (default {DEFAULT_PORT})")
    parser.add_argument("--data-dir", dest="data_dir", help="the Client_Data directory (default ./Client_Data)")
    parser.add_argument("--config", dest="config_file", help="a TOML settings file (see config/default.toml)")
    return parser.parse_args(argv)


def load_config(
    argv: list[str] | None = None, *, environ: Mapping[str, str] | None = None
) -> Config:
    """Merge the sources, highest first: flags, environment, the TOML file, built-in defaults."""
    args = parse_args(argv)
    environ = os.environ if environ is None else environ
    settings: dict[str, Any] = {}
    config_file = args.config_file or environ.get("CLOUDCOIN_CONFIG")
    if config_file:
        with open(config_file, "rb") as fh:
            settings.update(_from_toml(tomllib.load(fh)))
    for name, key in ENVIRONMENT.items():
        if environ.get(name):
            settings[key] = environ[name]
    for key in ("host", "port", "data_dir"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    return Config(**_coerce(settings))


def _from_toml(document: dict[str, Any]) -> dict[str, Any]:
    """Accept the settings flat or grouped in tables ([server], [jobs], …) as config/default.toml shows."""
    known = {f.name for f in fields(Config)}
    flat: dict[str, Any] = {}
    for key, value in document.items():
        if isinstance(value, dict):
            flat.update({k: v for k, v in value.items() if k in known})
        elif key in known:
            flat[key] = value
    return flat


def _coerce(settings: dict[str, Any]) -> dict[str, Any]:
    out = dict(settings)
    for key in ("port", "workers", "threads", "max_queued"):
        if key in out:
            out[key] = int(out[key])
    for key in ("allowed_hosts", "allowed_origins"):
        if isinstance(out.get(key), str):
            out[key] = tuple(part.strip() for part in out[key].split(",") if part.strip())
        elif key in out:
            out[key] = tuple(out[key])
    if out.get("api_token") == "":
        out["api_token"] = None
    if "data_dir" in out:
        out["data_dir"] = Path(out["data_dir"])
    return out
