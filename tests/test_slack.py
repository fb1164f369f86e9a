"""Slack delivery against a local HTTP server playing Slack's incoming webhook."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from test_email import EVIL, make_alerts

from jobs.alerting import send_pending
from jobs.channels.slack import MAX_BLOCKS, MAX_TEXT
from jobs.config import Config

SECRET_PATH = "/services/T000/B000/very-secret-token"


class FakeSlack(BaseHTTPRequestHandler):
    script: list[tuple[int, dict[str, str]]] = []  # responses to give, in order; then 200
    received: list[dict[str, Any]] = []
    times: list[float] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls = type(self)
        cls.times.append(time.monotonic())
        status, headers = cls.script.pop(0) if cls.script else (200, {})
        if status == 200:
            cls.received.append(body)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(b"ok" if status == 200 else b"rate_limited" if status == 429 else b"error")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeSlack]]:
    handler = type("S", (FakeSlack,), {"script": [], "received": [], "times": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv(
        "FW_TEST_SLACK_URL", f"http://127.0.0.1:{server.server_address[1]}{SECRET_PATH}"
    )
    yield handler
    server.shutdown()
    server.server_close()


def slack_config(write_config: Callable[..., Config], budget: int = 500) -> Config:
    return write_config(
        extra=f"""
[alerts]
channels = ["slack"]
daily_budget = {budget}
max_attempts = 5

[alerts.slack]
webhook_url_env = "FW_TEST_SLACK_URL"
timeout_seconds = 5
max_retries = 2
"""
    )


def test_blocks_escaped_and_delivered(
    slack: type[FakeSlack], write_config: Callable[..., Config]
) -> None:
    cfg = slack_config(write_config)
    con = make_alerts(cfg, 3)
    result = send_pending(con, cfg)
    assert result.channels["slack"].sent == 3
    [msg] = slack.received
    blocks = msg["blocks"]
    assert blocks[0]["type"] == "header"
    texts = json.dumps(blocks)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in texts and EVIL not in texts
    assert "****4242" in texts and "card0004242" not in texts


def test_split_to_slack_limits(slack: type[FakeSlack], write_config: Callable[..., Config]) -> None:
    cfg = slack_config(write_config)
    con = make_alerts(cfg, 120)
    result = send_pending(con, cfg)
    assert result.channels["slack"].sent == 120
    assert len(slack.received) == 3
    for msg in slack.received:
        assert len(msg["blocks"]) <= MAX_BLOCKS
        for block in msg["blocks"]:
            text = block.get("text", {}).get("text", "")
            assert len(text) <= MAX_TEXT
    ids = [b["text"]["text"] for m in slack.received for b in m["blocks"] if b["type"] == "section"]
    assert len(ids) == 120


def test_429_retry_after_is_honoured(
    slack: type[FakeSlack], write_config: Callable[..., Config]
) -> None:
    slack.script = [(429, {"Retry-After": "1"})]
    cfg = slack_config(write_config)
    con = make_alerts(cfg, 2)
    result = send_pending(con, cfg)
    assert result.channels["slack"].sent == 2
    assert len(slack.times) == 2 and slack.times[1] - slack.times[0] >= 0.9


def test_500_keeps_alerts_pending_and_the_url_secret(
    slack: type[FakeSlack], write_config: Callable[..., Config]
) -> None:
    slack.script = [(500, {})]
    cfg = slack_config(write_config)
    con = make_alerts(cfg, 2)
    result = send_pending(con, cfg)
    assert result.channels["slack"].pending == 2
    rows = con.execute("SELECT status, attempts, last_error FROM alerts").fetchall()
    assert all(r[0] == "pending" and r[1] == 1 and "HTTP 500" in r[2] for r in rows)
    assert all(SECRET_PATH not in r[2] for r in rows)
    again = send_pending(con, cfg)
    assert again.channels["slack"].sent == 2


def test_refused_connection(
    write_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("FW_TEST_SLACK_URL", f"http://127.0.0.1:{port}{SECRET_PATH}")
    cfg = slack_config(write_config)
    con = make_alerts(cfg, 2)
    result = send_pending(con, cfg)
    assert result.channels["slack"].pending == 2
    error = con.execute("SELECT last_error FROM alerts LIMIT 1").fetchall()[0][0]
    assert error.startswith("Slack unreachable") and SECRET_PATH not in error


def test_missing_webhook_env_is_a_config_problem_not_a_loss(
    write_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FW_TEST_SLACK_URL", raising=False)
    cfg = slack_config(write_config)
    con = make_alerts(cfg, 2)
    result = send_pending(con, cfg)
    assert result.channels["slack"].pending == 2
    assert "FW_TEST_SLACK_URL" in (result.channels["slack"].error or "")
    assert con.execute("SELECT DISTINCT status, attempts FROM alerts").fetchall() == [
        ("pending", 0)
    ]


def test_slack_answering_500_until_given_up_exits_1_then_retry_failed_delivers(
    slack: type[FakeSlack], write_config: Callable[..., Config]
) -> None:
    from click.testing import CliRunner

    from jobs.cli import cli

    slack.script = [(500, {})] * 5
    cfg = slack_config(write_config)
    make_alerts(cfg, 2).close()
    runner = CliRunner()
    args = ["--config", str(cfg.path)]
    codes = [runner.invoke(cli, ["alerts", "send", *args]) for _ in range(5)]
    assert [r.exit_code for r in codes] == [1] * 5
    assert ["needs attention" in r.output for r in codes] == [False] * 4 + [True]
    assert "alerts/slack: 2 alert(s) not delivered after 5 attempt(s) (Slack answered HTTP 500" in (
        codes[-1].output
    )
    assert SECRET_PATH not in codes[-1].output
    listed = runner.invoke(cli, ["alerts", "list", "--status", "failed", *args])
    assert listed.exit_code == 0 and listed.output.count("failed") == 2
    assert not slack.received
    retried = runner.invoke(cli, ["alerts", "retry", "--failed", "--channel", "slack", *args])
    assert retried.exit_code == 0, retried.output
    assert "2 failed alert(s) re-queued" in retried.output
    assert "slack: 2 sent, 0 pending, 0 failed" in retried.output
    assert len(slack.received) == 1
