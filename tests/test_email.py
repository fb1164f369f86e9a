"""Email delivery against a real SMTP server (aiosmtpd) on loopback, with real TLS (trustme CA)."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from jobs.alerting import create_alerts, send_pending
from jobs.config import Config
from jobs.warehouse import open_warehouse

USER, PASSWORD = "fraudwatch", "correct horse battery staple"
EVIL = "<script>alert(1)</script>"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = BytesParser(policy=policy.default).parsebytes(envelope.original_content)
        self.messages.append(msg)  # type: ignore[arg-type]
        return "250 OK"


def _auth(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TLSController(Controller):
    def __init__(self, handler: Any, *, implicit_tls: bool, tls: ssl.SSLContext, **kw: Any) -> None:
        self._tls = tls
        self._implicit = implicit_tls
        super().__init__(
            handler,
            hostname="127.0.0.1",
            port=free_port(),
            ssl_context=tls if implicit_tls else None,
            server_hostname="localhost",
            **kw,
        )

    def factory(self) -> SMTP:
        return SMTP(
            self.handler,
            tls_context=None if self._implicit else self._tls,
            require_starttls=not self._implicit,
            authenticator=_auth,
            auth_required=True,
            auth_require_tls=not self._implicit,  # implicit TLS: the whole session is TLS
            hostname="localhost",
        )


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, path


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(ctx)
    return ctx


@pytest.fixture
def smtp_server(ca: tuple[trustme.CA, Path]) -> Iterator[Callable[[bool], tuple[Inbox, int]]]:
    started: list[Controller] = []

    def start(implicit_tls: bool = False, port: int | None = None) -> tuple[Inbox, int]:
        inbox = Inbox()
        ctl = TLSController(inbox, implicit_tls=implicit_tls, tls=server_context(ca[0]))
        if port is not None:
            ctl.port = port
        ctl.start()
        started.append(ctl)
        return inbox, ctl.port

    yield start
    for ctl in started:
        ctl.stop()


def email_config(
    write_config: Callable[..., Config], port: int, ca_file: Path | None, security: str = "starttls"
) -> Config:
    ca_line = f'ca_file = "{ca_file}"' if ca_file else ""
    return write_config(
        extra=f"""
[alerts]
channels = ["email"]
daily_budget = 10
max_attempts = 3

[alerts.email]
host = "localhost"
port = {port}
security = "{security}"
sender = "fraudwatch@example.com"
recipients = ["fraud-team@example.com"]
username_env = "FW_TEST_SMTP_USER"
password_env = "FW_TEST_SMTP_PASSWORD"
timeout_seconds = 5
{ca_line}
"""
    )


def candidates(n: int = 3) -> pl.DataFrame:
    t0 = datetime(2026, 3, 2, 10)
    return pl.DataFrame(
        {
            "transaction_id": [f"t{i}" for i in range(n)],
            "event_time": [t0 + timedelta(minutes=i) for i in range(n)],
            "card_id": [f"card00{i}4242" for i in range(n)],
            "merchant_id": [EVIL] + [f"m{i}" for i in range(1, n)],
            "amount": [100.0 + i for i in range(n)],
            "score": [0.99 - i / 1000 for i in range(n)],
            "model_name": ["fraud"] * n,
            "model_version": [1] * n,
            "reasons": ['["amount vs the card\'s 30-day average: 6.20"]'] * n,
        }
    )


def make_alerts(cfg: Config, n: int = 3) -> Any:
    con = open_warehouse(cfg.warehouse_path)
    con.execute("BEGIN")
    create_alerts(con, cfg.settings.alerts, candidates(n), "run-1")
    con.execute("COMMIT")
    return con


@pytest.fixture
def creds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FW_TEST_SMTP_USER", USER)
    monkeypatch.setenv("FW_TEST_SMTP_PASSWORD", PASSWORD)


def statuses(con: Any) -> list[tuple]:
    return con.execute(
        "SELECT status, attempts, last_error FROM alerts ORDER BY transaction_id"
    ).fetchall()


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_digest_arrives_with_both_parts_masked_and_escaped(
    smtp_server: Any,
    ca: tuple[trustme.CA, Path],
    write_config: Callable[..., Config],
    creds: None,
    security: str,
) -> None:
    inbox, port = smtp_server(implicit_tls=security == "ssl")
    cfg = email_config(write_config, port, ca[1], security)
    con = make_alerts(cfg)
    result = send_pending(con, cfg)
    assert result.channels["email"].sent == 3
    assert [s[0] for s in statuses(con)] == ["sent"] * 3
    [msg] = inbox.messages
    assert msg["Subject"] == "[fraudwatch] 3 fraud alert(s) for 2026-03-02"
    assert msg["To"] == "fraud-team@example.com"
    text = msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    html = msg.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    assert "****4242" in text and "card0004242" not in text and "card0004242" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and EVIL not in html
    assert "amount vs the card&#39;s 30-day average: 6.20" in html
    assert "3 of 10 daily alerts used" in text


def test_wrong_password_keeps_alerts_pending_without_leaking_it(
    smtp_server: Any,
    ca: tuple[trustme.CA, Path],
    write_config: Callable[..., Config],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, port = smtp_server()
    monkeypatch.setenv("FW_TEST_SMTP_USER", USER)
    monkeypatch.setenv("FW_TEST_SMTP_PASSWORD", "wrong-password-123")
    cfg = email_config(write_config, port, ca[1])
    con = make_alerts(cfg)
    result = send_pending(con, cfg)
    assert result.channels["email"].sent == 0 and result.channels["email"].pending == 3
    rows = statuses(con)
    assert all(r[0] == "pending" and r[1] == 1 for r in rows)
    assert "SMTP login refused (535)" in rows[0][2]
    assert "wrong-password-123" not in rows[0][2]


def test_untrusted_certificate_is_refused(
    smtp_server: Any, write_config: Callable[..., Config], creds: None
) -> None:
    _, port = smtp_server()
    cfg = email_config(write_config, port, None)  # system trust store: our test CA is unknown
    con = make_alerts(cfg)
    send_pending(con, cfg)
    row = statuses(con)[0]
    assert row[0] == "pending" and "CERTIFICATE_VERIFY_FAILED" in row[2]


def test_server_down_then_up_delivers_everything_once(
    smtp_server: Any, ca: tuple[trustme.CA, Path], write_config: Callable[..., Config], creds: None
) -> None:
    port = free_port()
    cfg = email_config(write_config, port, ca[1])
    con = make_alerts(cfg)
    first = send_pending(con, cfg)
    assert first.channels["email"].pending == 3
    assert "Connection refused" in (statuses(con)[0][2] or "")
    inbox, _ = smtp_server(port=port)
    second = send_pending(con, cfg)
    assert second.channels["email"].sent == 3
    third = send_pending(con, cfg)
    assert third.channels["email"].sent == 0
    assert len(inbox.messages) == 1
    assert [s[:2] for s in statuses(con)] == [("sent", 2)] * 3


def test_gives_up_after_max_attempts(
    write_config: Callable[..., Config], ca: tuple[trustme.CA, Path], creds: None
) -> None:
    cfg = email_config(write_config, free_port(), ca[1])
    con = make_alerts(cfg)
    for _ in range(3):
        send_pending(con, cfg)
    assert [s[:2] for s in statuses(con)] == [("failed", 3)] * 3


class DropMidData:
    """An SMTP server that accepts the envelope, then drops the connection during DATA."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        server.transport.abort()
        return "451 never sent"


def plain_server(handler: Any, port: int) -> Controller:
    ctl = Controller(handler, hostname="127.0.0.1", port=port)
    ctl.start()
    return ctl


def test_alerts_given_up_on_are_loud_shown_in_digests_and_retried(
    write_config: Callable[..., Config], tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from jobs.cli import cli

    port = free_port()
    cfg = write_config(
        extra=f"""
[alerts]
channels = ["email", "file"]
daily_budget = 10
max_attempts = 2

[alerts.email]
host = "127.0.0.1"
port = {port}
security = "none"
sender = "fraudwatch@example.com"
recipients = ["fraud-team@example.com"]
username_env = "FW_TEST_UNSET_USER"
password_env = "FW_TEST_UNSET_PASSWORD"
timeout_seconds = 5
"""
    )
    make_alerts(cfg).close()

    def fw(*args: str) -> Any:
        return CliRunner().invoke(cli, [*args, "--config", str(cfg.path)])

    def email_rows() -> list[tuple]:
        with open_warehouse(cfg.warehouse_path, read_only=True) as con:
            return con.execute(
                "SELECT status, attempts FROM alerts WHERE channel = 'email' ORDER BY 1, 2"
            ).fetchall()

    dropper = plain_server(DropMidData(), port)
    try:
        first = fw("alerts", "send")
        assert first.exit_code == 1  # not delivered yet: pending, retried next time
        assert "needs attention" not in first.output
        assert "email: 0 sent, 3 pending, 0 failed" in first.output
        second = fw("alerts", "send")  # the last attempt: given up on, and said so
        assert second.exit_code == 1
        assert "needs attention: alerts/email: 3 alert(s) not delivered after 2 attempt(s)" in (
            second.output
        )
        assert "SMTPServerDisconnected" in second.output
    finally:
        dropper.stop()
    assert email_rows() == [("failed", 2)] * 3
    with open_warehouse(cfg.warehouse_path, read_only=True) as con:
        status, error = con.execute(
            "SELECT status, error FROM runs ORDER BY started_at DESC LIMIT 1"
        ).fetchall()[0]
    assert status == "needs_attention" and "alerts/email: 3 alert(s)" in error

    # the next digest on any channel says what was given up on
    con = open_warehouse(cfg.warehouse_path)
    later = candidates(2).with_columns(
        pl.Series("transaction_id", ["u0", "u1"]), pl.Series("card_id", ["card9991", "card9992"])
    )
    con.execute("BEGIN")
    create_alerts(con, cfg.settings.alerts, later, "run-2")
    con.execute("COMMIT")
    con.close()
    inbox = Inbox()
    server = plain_server(inbox, port)
    try:
        sent = fw("alerts", "send")
        assert sent.exit_code == 0, sent.output
        assert "email: 2 sent, 0 pending, 3 failed" in sent.output
        [msg] = inbox.messages
        text = msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        assert "UNDELIVERED: 3 earlier alert(s) on email" in text
        assert "fraudwatch alerts retry --failed" in text
        eml = sorted((cfg.outbox_dir).glob("*.eml"))[-1].read_text()
        assert "3 earlier alert(s) on email" in eml

        retried = fw("alerts", "retry", "--failed")
        assert retried.exit_code == 0, retried.output
        assert "3 failed alert(s) re-queued" in retried.output
        assert "email: 3 sent, 0 pending, 0 failed" in retried.output
        assert len(inbox.messages) == 2
        assert (
            "UNDELIVERED"
            not in inbox.messages[1]
            .get_body(  # type: ignore[union-attr]
                preferencelist=("plain",)
            )
            .get_content()
        )
    finally:
        server.stop()
    assert email_rows() == [("sent", 1)] * 5  # re-queued alerts start their attempts afresh
