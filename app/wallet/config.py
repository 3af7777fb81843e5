"""Settings: the frozen Config and load_config(), which reads flags > environment > TOML file > defaults."""

from __future__ import annotations

import argparse
import os
import tomllib
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from app import __version__

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
#: 1 MiB: the largest request body any endpoint needs is a few parameters.
MAX_BODY_BYTES = 1024 * 1024
#: api.md: a parameter longer than this is refused with 400.
MAX_PARAM_CHARS = 4096
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
INTEGER_SETTINGS = ("port", "workers", "threads", "request_threads", "max_queued", "max_connections")
#: Fewer connections than this would leave a browser page and a script fighting for them.
MIN_CONNECTIONS = 8


class ConfigError(ValueError):
    """A setting with a value the server cannot run with; the message names the setting."""


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
    request_threads: int = 4
    max_queued: int = 1000
    max_connections: int = 512
    header_timeout: float = 10.0
    log_level: str = "INFO"
    #: the IANA zone backup plans run in (their cron times, day boundaries, file dates); None: the system's
    timezone: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser().absolute())
        if not isinstance(self.host, str) or not self.host.strip():
            raise ConfigError(f"host must be a non-empty string, not {self.host!r}")
        for name in INTEGER_SETTINGS:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{name} must be an integer, not {value!r}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be between 0 and 65535, not {self.port}")
        if min(self.workers, self.threads, self.request_threads, self.max_queued) < 1:
            raise ConfigError("workers, threads, request_threads and max_queued must be at least 1")
        if self.max_connections < MIN_CONNECTIONS:
            raise ConfigError(f"max_connections must be at least {MIN_CONNECTIONS}, not {self.max_connections}")
        timeout = self.header_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 3600:
            raise ConfigError(f"header_timeout must be a number of seconds above 0 and at most 3600, not {timeout!r}")
        object.__setattr__(self, "header_timeout", float(timeout))
        if self.api_token is not None and (not isinstance(self.api_token, str) or not self.api_token.isprintable()):
            raise ConfigError("api_token must be a string of printable characters")
        for name in ("allowed_hosts", "allowed_origins"):
            value = getattr(self, name)
            if isinstance(value, list):
                value = tuple(value)
                object.__setattr__(self, name, value)
            if not isinstance(value, tuple) or not all(isinstance(item, str) and item for item in value):
                raise ConfigError(f"{name} must be a list of non-empty strings")
        if not isinstance(self.log_level, str) or self.log_level.upper() not in LOG_LEVELS:
            raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}, not {self.log_level!r}")
        if self.timezone is not None:
            try:
                zoneinfo.ZoneInfo(self.timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
                raise ConfigError(
                    f"timezone must be an IANA zone name like Europe/Berlin, not {self.timezone!r}"
                ) from None

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
    "CLOUDCOIN_REQUEST_THREADS": "request_threads",
    "CLOUDCOIN_MAX_QUEUED": "max_queued",
    "CLOUDCOIN_MAX_CONNECTIONS": "max_connections",
    "CLOUDCOIN_HEADER_TIMEOUT": "header_timeout",
    "CLOUDCOIN_LOG_LEVEL": "log_level",
    "CLOUDCOIN_TIMEZONE": "timezone",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description="CloudCoin Wallet Server")
    parser.add_argument("--version", action="version", version=f"CloudCoin Wallet Server {__version__}")
    parser.add_argument("--host", help=f"address to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, help=f"port to listen on (default {DEFAULT_PORT})")
    parser.add_argument("--data-dir", dest="data_dir", help="the Client_Data directory (default ./Client_Data)")
    parser.add_argument("--config", dest="config_file", help="a TOML settings file (see config/default.toml)")
    parser.add_argument(
        "--log-level", dest="log_level", type=str.upper, choices=LOG_LEVELS, help="how much to log (default INFO)"
    )
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return _parser().parse_args(argv)


def load_config(argv: list[str] | None = None, *, environ: Mapping[str, str] | None = None) -> Config:
    """Merge the sources, highest first: flags, environment, the TOML file, built-in defaults.

    A bad setting (or an unreadable config file) ends the program with a one-line message and exit
    status 2, as a bad flag does: the server never starts on a configuration it did not understand.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return build_config(args, os.environ if environ is None else environ)
    except ConfigError as exc:
        parser.error(str(exc))


def build_config(args: argparse.Namespace, environ: Mapping[str, str]) -> Config:
    settings: dict[str, Any] = {}
    config_file = args.config_file or environ.get("CLOUDCOIN_CONFIG")
    if config_file:
        settings.update(read_config_file(Path(config_file)))
    for name, key in ENVIRONMENT.items():
        if environ.get(name):
            settings[key] = environ[name]
    for key in ("host", "port", "data_dir", "log_level"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    return Config(**_coerce(settings))


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings of a TOML file, flat; an unknown setting is refused (a typo must not pass unseen)."""
    try:
        with open(path, "rb") as fh:
            document = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    return _from_toml(document)


def _from_toml(document: dict[str, Any]) -> dict[str, Any]:
    """Accept the settings flat or grouped in tables ([server], [jobs], …) as config/default.toml shows."""
    known = {f.name for f in fields(Config)}
    flat: dict[str, Any] = {}
    for key, value in document.items():
        items = value.items() if isinstance(value, dict) else [(key, value)]
        for name, item in items:
            if name not in known:
                raise ConfigError(f"unknown setting {name!r} in the config file")
            flat[name] = item
    return flat


def _coerce(settings: dict[str, Any]) -> dict[str, Any]:
    out = dict(settings)
    for key in INTEGER_SETTINGS:
        if key in out:
            out[key] = _integer(key, out[key])
    if "header_timeout" in out:
        out["header_timeout"] = _number("header_timeout", out["header_timeout"])
    for key in ("allowed_hosts", "allowed_origins"):
        value = out.get(key)
        if isinstance(value, str):
            out[key] = tuple(part.strip() for part in value.split(",") if part.strip())
        elif isinstance(value, list):
            out[key] = tuple(value)
        elif key in out:
            raise ConfigError(f"{key} must be a list of strings, not {value!r}")
    for key in ("api_token", "timezone"):
        if out.get(key) == "":
            out[key] = None
    if "data_dir" in out:
        if not isinstance(out["data_dir"], (str, os.PathLike)) or not os.fspath(out["data_dir"]):
            raise ConfigError(f"data_dir must be a non-empty path, not {out['data_dir']!r}")
        out["data_dir"] = Path(out["data_dir"])
    return out


def _integer(name: str, value: Any) -> int:
    """An int from TOML (a real integer) or from the environment (decimal digits); never a bool or float."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise ConfigError(f"{name} must be an integer, not {value!r}")


def _number(name: str, value: Any) -> float:
    """A number of seconds from TOML (int or float) or from the environment ("10", "2.5")."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise ConfigError(f"{name} must be a number of seconds, not {value!r}")
