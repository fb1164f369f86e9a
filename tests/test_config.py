"""config.toml: validation names the key and the file; paths resolve against the file's folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from jobs.config import Config, load_config, secret
from jobs.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_config_is_valid() -> None:
    cfg = load_config(ROOT / "config.toml")
    assert cfg.settings.alerts.channels == ["file"]
    assert cfg.warehouse_path == ROOT / "var" / "warehouse.duckdb"
    assert cfg.extra_columns() == {"distance_km": "numeric", "channel": "categorical"}


def test_relative_paths_resolve_against_config_folder(
    tmp_path: Path, write_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = write_config()
    monkeypatch.chdir("/")
    assert cfg.data_dir == tmp_path / "var"
    assert cfg.transactions_glob == str(tmp_path / "landing/transactions/*.parquet")
    assert cfg.registry_url == f"sqlite:///{tmp_path / 'var' / 'registry.db'}"


def test_config_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text('data_dir = "/srv/fw"\n')
    monkeypatch.setenv("FRAUDWATCH_CONFIG", str(path))
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None)
    assert cfg.path == path
    assert cfg.data_dir == Path("/srv/fw")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[alerts]\nthreshhold = 0.3\n", "key 'alerts.threshhold' (did you mean 'threshold'?)"),
        ("[schedul]\nrun = ''\n", "unknown key 'schedul' (did you mean 'schedule'?)"),
        ("[alerts]\nzzz = 1\n", "unknown key 'alerts.zzz'\n"),
        ("[alerts]\nthreshold = 'high'\n", "key 'alerts.threshold'"),
        ("[alerts]\nthreshold = 1.5\n", "key 'alerts.threshold'"),
        ("[alerts]\nchannels = ['pager']\n", "key 'alerts.channels[0]'"),
        ("[alerts]\nchannels = ['email']\n", "key 'alerts.email.recipients' is required"),
        ("[schedule]\nrun = 'every minute'\n", "not a 5-field cron expression"),
        ("[source.numeric_columns]\namount = 'x'\n", "canonical column"),
        ("[source.numeric_columns]\n'Bad Name;drop' = 'x'\n", "not a valid column name"),
        ("data_dir = \n", "not valid TOML"),
        ("[warehouse]\ningest_memory_limit = 'lots'\n", "key 'warehouse.ingest_memory_limit'"),
        ("[warehouse]\nmemory_limit = '2 GB; DROP'\n", "key 'warehouse.memory_limit'"),
    ],
)
def test_invalid_config_names_key_and_file(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert expected in str(info.value) + "\n"
    assert str(path) in str(info.value)
    assert "(top level)" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.toml")


def test_secret_only_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FW_TEST_SECRET", raising=False)
    with pytest.raises(ConfigError, match="FW_TEST_SECRET"):
        secret("FW_TEST_SECRET", "alerts.slack.webhook_url_env")
    monkeypatch.setenv("FW_TEST_SECRET", "s3cret")
    assert secret("FW_TEST_SECRET", "alerts.slack.webhook_url_env") == "s3cret"
