"""Services that hang, a registry another process holds, and paths that try to leave the store."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest
from conftest import World
from test_email import email_config, make_alerts, statuses
from test_registry import booster_text, lineage
from test_slack import SECRET_PATH, slack_config

from jobs.alerting import send_pending
from jobs.batch import run_batch
from jobs.config import Config
from registry import ArtifactIntegrityError, Registry, RegistryBusy


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A server that accepts connections and never says a word (a hung SMTP or Slack)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    server.close()


def test_hung_smtp_server_times_out_and_keeps_alerts_pending(
    silent_port: int, write_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FW_TEST_SMTP_USER", "u")
    monkeypatch.setenv("FW_TEST_SMTP_PASSWORD", "p")
    cfg = email_config(write_config, silent_port, None)
    text = cfg.path.read_text().replace("timeout_seconds = 5", "timeout_seconds = 1")
    cfg.path.write_text(text)
    from jobs.config import load_config

    cfg = load_config(cfg.path)
    con = make_alerts(cfg)
    started = time.monotonic()
    result = send_pending(con, cfg)
    assert time.monotonic() - started < 30
    assert result.channels["email"].pending == 3
    assert all(
        s[0] == "pending" and s[1] == 1 and "timed out" in (s[2] or "") for s in statuses(con)
    )


def test_hung_slack_times_out_and_keeps_alerts_pending(
    silent_port: int, write_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FW_TEST_SLACK_URL", f"http://127.0.0.1:{silent_port}{SECRET_PATH}")
    cfg = slack_config(write_config)
    text = cfg.path.read_text().replace("timeout_seconds = 5", "timeout_seconds = 1")
    cfg.path.write_text(text)
    from jobs.config import load_config

    cfg = load_config(cfg.path)
    con = make_alerts(cfg, 2)
    started = time.monotonic()
    result = send_pending(con, cfg)
    assert time.monotonic() - started < 60
    assert result.channels["slack"].pending == 2
    rows = con.execute("SELECT status, attempts, last_error FROM alerts").fetchall()
    assert all(r[0] == "pending" and r[1] == 1 for r in rows)
    assert all(SECRET_PATH not in (r[2] or "") for r in rows)


def test_registry_held_by_another_process_is_a_clear_bounded_wait(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    reg = Registry(f"sqlite:///{db}", tmp_path / "artifacts", busy_timeout=1.0)
    reg.register_version("fraud", booster_text(), lineage())
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sqlite3, sys, time
                con = sqlite3.connect({str(db)!r}, isolation_level=None)
                con.execute("BEGIN IMMEDIATE")
                print("locked", flush=True)
                sys.stdin.readline()
                con.execute("ROLLBACK")
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(
            RegistryBusy, match="stayed locked by another process; nothing was changed"
        ):
            reg.set_alias("fraud", "champion", 1, reason="while another process holds the lock")
        waited = time.monotonic() - started
        assert 0.9 <= waited < 15
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(30)
    # nothing half-written: the alias was not moved, and the database is sound
    assert reg.get_alias("fraud", "champion") is None
    reg.set_alias("fraud", "champion", 1, reason="once the lock is released")
    champion = reg.get_alias("fraud", "champion")
    assert champion is not None and champion.version == 1
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


@pytest.mark.parametrize("digest", ["../../../etc/passwd", "a" * 63 + "/", "A" * 64, ""])
def test_an_artifact_digest_can_never_name_a_path_outside_the_store(
    tmp_path: Path, digest: str
) -> None:
    reg = Registry(f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "artifacts")
    with pytest.raises(ArtifactIntegrityError, match="not a sha256 digest"):
        reg.artifacts.get(digest, what="fraud v1")


def test_smtp_down_during_a_run_the_ledger_and_reports_show_what_is_pending(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FW_TEST_SMTP_USER", "u")
    monkeypatch.setenv("FW_TEST_SMTP_PASSWORD", "p")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    text = world.cfg.path.read_text().replace('channels = ["file"]', 'channels = ["file", "email"]')
    text += (
        f'\n[alerts.email]\nhost = "127.0.0.1"\nport = {port}\nsender = "fw@example.com"\n'
        'recipients = ["fraud@example.com"]\nusername_env = "FW_TEST_SMTP_USER"\n'
        'password_env = "FW_TEST_SMTP_PASSWORD"\ntimeout_seconds = 2\n'
    )
    world.cfg.path.write_text(text)
    from jobs.config import load_config

    summary = run_batch(load_config(world.cfg.path), reports=True)
    assert summary.status == "ok"
    email = summary.counts["alerts"]["channels"]["email"]
    assert email["sent"] == 0 and email["pending"] > 0
    assert summary.counts["alerts"]["channels"]["file"]["sent"] == email["pending"]
    with duckdb.connect(str(world.cfg.warehouse_path), read_only=True) as con:
        pending = con.execute(
            "SELECT count(*) FROM alerts WHERE channel = 'email' AND status = 'pending'"
        ).fetchall()[0][0]
        ledger = json.loads(
            con.execute("SELECT counts FROM runs ORDER BY started_at DESC LIMIT 1").fetchall()[0][0]
        )
    assert pending == email["pending"]
    assert ledger["alerts"]["channels"]["email"]["pending"] == pending
    manifest = json.loads((world.cfg.reports_dir / "index.json").read_text())
    perf = next(e for e in manifest["reports"] if e["kind"] == "performance")
    assert perf["headline"]["alerts pending delivery"] == f"email {pending}"
    page = (world.cfg.reports_dir / perf["path"]).read_text()
    assert f"alerts pending delivery: <strong>email {pending}</strong>" in page


def test_a_run_that_gives_up_on_alerts_needs_attention_and_the_report_says_so(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from jobs.cli import cli

    monkeypatch.setenv("FW_TEST_SMTP_USER", "u")
    monkeypatch.setenv("FW_TEST_SMTP_PASSWORD", "p")
    with socket.socket() as s:  # a port nobody listens on: an outage longer than the attempts
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    text = world.cfg.path.read_text().replace('channels = ["file"]', 'channels = ["file", "email"]')
    text = text.replace("daily_budget = 20", "daily_budget = 20\nmax_attempts = 1")
    text += (
        f'\n[alerts.email]\nhost = "127.0.0.1"\nport = {port}\nsender = "fw@example.com"\n'
        'recipients = ["fraud@example.com"]\nusername_env = "FW_TEST_SMTP_USER"\n'
        'password_env = "FW_TEST_SMTP_PASSWORD"\ntimeout_seconds = 2\n'
    )
    world.cfg.path.write_text(text)
    result = CliRunner().invoke(cli, ["run", "--config", str(world.cfg.path), "--json"])
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert summary["status"] == "needs_attention"
    failed = summary["counts"]["alerts"]["channels"]["email"]["newly_failed"]
    assert failed > 0 and summary["counts"]["alerts"]["failed"] == failed
    assert f"alerts/email: {failed} alert(s) not delivered after 1 attempt(s)" in summary["error"]
    with duckdb.connect(str(world.cfg.warehouse_path), read_only=True) as con:
        assert con.execute("SELECT status, error FROM runs WHERE job = 'run'").fetchall() == [
            ("needs_attention", summary["error"])
        ]
    manifest = json.loads((world.cfg.reports_dir / "index.json").read_text())
    perf = next(e for e in manifest["reports"] if e["kind"] == "performance")
    assert perf["headline"]["alerts failed"] == f"email {failed}"
