"""Configuration: flags > environment > TOML file > built-in defaults; bad values are refused."""

from __future__ import annotations

import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from app.wallet.config import Config, ConfigError, load_config, read_config_file

DEFAULT_TOML = Path(__file__).resolve().parents[1] / "config" / "default.toml"


@pytest.fixture(autouse=True)
def _start_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Relative data directories are relative to where the server starts: make that tmp_path."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_without_flags_environment_or_file_the_defaults_hold(tmp_path):
    config = load_config([], environ={})
    assert config.host == "127.0.0.1"
    assert config.port == 8080
    assert config.data_dir == tmp_path / "Client_Data"
    assert config.api_token is None
    assert config.allowed_hosts == () and config.allowed_origins == ()
    assert (config.workers, config.threads, config.max_queued) == (2, 4, 1000)
    assert config.log_level == "INFO"


def test_toml_file_overrides_defaults(tmp_path):
    path = write_toml(
        tmp_path,
        '[server]\nport = 9001\ndata_dir = "/srv/cc"\napi_token = "file-token"\n'
        'allowed_origins = ["http://app.example"]\n[jobs]\nworkers = 5\n',
    )
    config = load_config(["--config", str(path)], environ={})
    assert config.port == 9001
    assert config.data_dir == Path("/srv/cc")
    assert config.api_token == "file-token"
    assert config.allowed_origins == ("http://app.example",)
    assert config.workers == 5
    assert config.threads == 4  # not in the file: the default


def test_flat_toml_without_tables_is_accepted(tmp_path):
    path = write_toml(tmp_path, "port = 9002\nthreads = 7\n")
    config = load_config(["--config", str(path)], environ={})
    assert (config.port, config.threads) == (9002, 7)


def test_environment_overrides_the_file(tmp_path):
    path = write_toml(
        tmp_path, '[server]\nport = 9001\ndata_dir = "/from/file"\napi_token = "file-token"\n[jobs]\nworkers = 5\n'
    )
    environ = {
        "CLOUDCOIN_PORT": "9100",
        "CLOUDCOIN_DATA_DIR": "/from/env",
        "CLOUDCOIN_API_TOKEN": "env-token",
        "CLOUDCOIN_WORKERS": "3",
        "CLOUDCOIN_THREADS": "9",
        "CLOUDCOIN_MAX_QUEUED": "17",
        "CLOUDCOIN_ALLOWED_HOSTS": "wallet.lan, other.lan",
        "CLOUDCOIN_ALLOWED_ORIGINS": "http://a.example,http://b.example",
        "CLOUDCOIN_LOG_LEVEL": "DEBUG",
        "CLOUDCOIN_HOST": "127.0.0.2",
    }
    config = load_config(["--config", str(path)], environ=environ)
    assert config.port == 9100
    assert config.data_dir == Path("/from/env")
    assert config.api_token == "env-token"
    assert (config.workers, config.threads, config.max_queued) == (3, 9, 17)
    assert config.allowed_hosts == ("wallet.lan", "other.lan")
    assert config.allowed_origins == ("http://a.example", "http://b.example")
    assert config.log_level == "DEBUG"
    assert config.host == "127.0.0.2"


def test_flags_override_the_environment_and_the_file(tmp_path):
    path = write_toml(tmp_path, '[server]\nhost = "127.0.0.3"\nport = 9001\ndata_dir = "/from/file"\n')
    environ = {"CLOUDCOIN_HOST": "127.0.0.2", "CLOUDCOIN_PORT": "9100", "CLOUDCOIN_DATA_DIR": "/from/env"}
    config = load_config(
        ["--config", str(path), "--host", "127.0.0.4", "--port", "9200", "--data-dir", "/from/flag"],
        environ=environ,
    )
    assert (config.host, config.port, config.data_dir) == ("127.0.0.4", 9200, Path("/from/flag"))


def test_config_file_may_come_from_the_environment(tmp_path):
    path = write_toml(tmp_path, "[jobs]\nmax_queued = 12\n")
    assert load_config([], environ={"CLOUDCOIN_CONFIG": str(path)}).max_queued == 12


def test_empty_environment_variable_does_not_override(tmp_path):
    path = write_toml(tmp_path, '[server]\napi_token = "file-token"\n')
    config = load_config(["--config", str(path)], environ={"CLOUDCOIN_API_TOKEN": "", "CLOUDCOIN_PORT": ""})
    assert config.api_token == "file-token"
    assert config.port == 8080


def test_relative_data_dir_is_relative_to_the_start_directory(tmp_path):
    assert load_config(["--data-dir", "here/data"], environ={}).data_dir == tmp_path / "here" / "data"


def test_empty_api_token_in_the_file_means_no_token(tmp_path):
    path = write_toml(tmp_path, '[server]\napi_token = ""\n')
    assert load_config(["--config", str(path)], environ={}).api_token is None


def test_timezone_is_an_iana_name_or_empty_for_the_systems(tmp_path):
    assert load_config([], environ={"CLOUDCOIN_TIMEZONE": "Europe/Berlin"}).timezone == "Europe/Berlin"
    assert load_config(["--config", str(write_toml(tmp_path, '[plans]\ntimezone = ""\n'))], environ={}).timezone is None
    with pytest.raises(SystemExit):
        load_config([], environ={"CLOUDCOIN_TIMEZONE": "Mars/Olympus_Mons"})


def test_default_toml_lists_every_setting_with_the_builtin_default():
    settings = read_config_file(DEFAULT_TOML)
    assert set(settings) == {f.name for f in fields(Config)}
    from_file = load_config(["--config", str(DEFAULT_TOML)], environ={})
    assert from_file == Config()


def test_default_toml_is_valid_toml_grouped_in_tables():
    document = tomllib.loads(DEFAULT_TOML.read_text(encoding="utf-8"))
    assert set(document) == {"server", "plans", "jobs"}


@pytest.mark.parametrize(
    "environ",
    [
        {"CLOUDCOIN_PORT": "eighty"},
        {"CLOUDCOIN_PORT": "70000"},
        {"CLOUDCOIN_PORT": "-1"},
        {"CLOUDCOIN_PORT": "80.5"},
        {"CLOUDCOIN_WORKERS": "0"},
        {"CLOUDCOIN_THREADS": "-3"},
        {"CLOUDCOIN_MAX_QUEUED": "lots"},
        {"CLOUDCOIN_LOG_LEVEL": "LOUD"},
    ],
)
def test_bad_environment_value_stops_with_a_message(environ, capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_config([], environ=environ)
    assert exit_info.value.code == 2
    (name,) = environ
    setting = name.removeprefix("CLOUDCOIN_").lower()
    assert setting in capsys.readouterr().err


@pytest.mark.parametrize(
    "text, named",
    [
        ("[server]\nport = true\n", "port"),
        ("[server]\nport = 80.5\n", "port"),
        ('[server]\nport = "x"\n', "port"),
        ("[jobs]\nworkers = 0\n", "workers"),
        ("[server]\nprot = 8080\n", "prot"),  # a typo is not silently ignored
        ("[server]\nallowed_hosts = 5\n", "allowed_hosts"),
        ("[server]\nallowed_origins = [1, 2]\n", "allowed_origins"),
        ('[server]\nhost = ""\n', "host"),
        ("[server]\nhost = 5\n", "host"),
        ('[server]\nlog_level = "chatty"\n', "log_level"),
        ("[server\nport = 1\n", "TOML"),
    ],
)
def test_bad_config_file_stops_with_a_message(tmp_path, capsys, text, named):
    path = write_toml(tmp_path, text)
    with pytest.raises(SystemExit) as exit_info:
        load_config(["--config", str(path)], environ={})
    assert exit_info.value.code == 2
    assert named in capsys.readouterr().err


def test_missing_config_file_stops_with_a_message(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_config(["--config", str(tmp_path / "nope.toml")], environ={})
    assert exit_info.value.code == 2
    assert "nope.toml" in capsys.readouterr().err


def test_bad_flag_stops_with_a_message(capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_config(["--port", "eighty"], environ={})
    assert exit_info.value.code == 2


@pytest.mark.parametrize(
    "overrides",
    [
        {"port": 65536},
        {"port": True},
        {"workers": 0},
        {"threads": 0},
        {"max_queued": 0},
        {"log_level": "x"},
        {"host": ""},
        {"allowed_origins": ("",)},
        {"api_token": "a\nb"},
    ],
)
def test_config_refuses_values_it_cannot_run_with(overrides):
    with pytest.raises(ConfigError):
        Config(**overrides)


def test_config_is_frozen_and_paths_derive_from_data_dir(tmp_path):
    config = Config(data_dir=tmp_path / "cd")
    assert config.wallets_dir == tmp_path / "cd" / "Wallets"
    assert config.registry_path == tmp_path / "cd" / "wallet-locations.csv"
    with pytest.raises(AttributeError):
        config.port = 1  # type: ignore[misc]


def test_pool_and_connection_settings_from_the_file_and_the_environment(tmp_path):
    path = write_toml(tmp_path, "[jobs]\nrequest_threads = 6\n[server]\nmax_connections = 100\nheader_timeout = 2.5\n")
    config = load_config(["--config", str(path)], environ={})
    assert (config.request_threads, config.max_connections, config.header_timeout) == (6, 100, 2.5)
    environ = {"CLOUDCOIN_REQUEST_THREADS": "3", "CLOUDCOIN_MAX_CONNECTIONS": "64", "CLOUDCOIN_HEADER_TIMEOUT": "7"}
    config = load_config(["--config", str(path)], environ=environ)
    assert (config.request_threads, config.max_connections, config.header_timeout) == (3, 64, 7.0)


@pytest.mark.parametrize(
    "overrides",
    [
        {"request_threads": 0},
        {"max_connections": 2},
        {"header_timeout": 0},
        {"header_timeout": True},
        {"header_timeout": "10"},
        {"header_timeout": 1e9},
    ],
)
def test_pool_and_connection_settings_refuse_what_the_server_cannot_run_with(overrides):
    with pytest.raises(ConfigError):
        Config(**overrides)


def test_a_header_timeout_that_is_no_number_ends_the_program(tmp_path):
    with pytest.raises(SystemExit):
        load_config([], environ={"CLOUDCOIN_HEADER_TIMEOUT": "soon"})
