"""Secrets come from the environment only and never reach logs, reports, digests or databases."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import duckdb
import pytest
from test_demo import SMALL

from jobs import logs
from jobs.demo import WEBHOOK_SECRET_ENV, run_demo

SENTINELS = {
    "FRAUDWATCH_SMTP_USER": "sentinel-user-6b1f",
    "FRAUDWATCH_SMTP_PASSWORD": "sentinel-password-93ad",
    "FRAUDWATCH_SLACK_WEBHOOK_URL": "https://hooks.slack.example/sentinel-slack-77c2",
}


def test_no_secret_anywhere_after_the_whole_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for key, value in SENTINELS.items():
        monkeypatch.setenv(key, value)
    log_file = tmp_path / "log.jsonl"
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logs.JsonFormatter())
    logging.getLogger("fraudwatch").addHandler(handler)
    try:
        result = run_demo(None, tmp_path / "demo", SMALL, say=lambda s: None)
    finally:
        logging.getLogger("fraudwatch").removeHandler(handler)
    secrets = [*SENTINELS.values(), os.environ[WEBHOOK_SECRET_ENV]]
    assert result.steps[-1] == "v3 promoted"
    haystacks: dict[str, str] = {"log": log_file.read_text()}
    for path in (tmp_path / "demo").rglob("*"):
        if path.is_file() and path.suffix in (".html", ".json", ".eml", ".toml", ".txt"):
            haystacks[str(path)] = path.read_text(errors="replace")
    with duckdb.connect(str(tmp_path / "demo" / "warehouse.duckdb"), read_only=True) as con:
        for (table,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall():
            rows = con.execute(f'SELECT * FROM "{table}"').fetchall()
            haystacks[f"warehouse.{table}"] = repr(rows)
    with sqlite3.connect(tmp_path / "demo" / "registry.db") as s:
        for (table,) in s.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            haystacks[f"registry.{table}"] = repr(s.execute(f'SELECT * FROM "{table}"').fetchall())
    assert len(haystacks) > 20
    for where, text in haystacks.items():
        for secret in secrets:
            assert secret not in text, f"a secret leaked into {where}"
    # the webhook secret's NAME is recorded, its value is not
    assert WEBHOOK_SECRET_ENV in haystacks["registry.webhooks"]
