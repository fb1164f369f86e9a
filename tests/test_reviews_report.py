"""Alerts carry their disposition (issue 18): the digest's line on yesterday's reviews, and the
performance report's alert precision per day from dispositions next to the chargebacks',
with how often chargebacks overturned an analyst. Real warehouse, real champion, real
digests in the file outbox, the real HTML report."""

from __future__ import annotations

import re
from datetime import date, timedelta
from email import message_from_bytes
from email.message import Message

import duckdb
from click.testing import CliRunner

from jobs.batch import run_batch
from jobs.cli import cli
from jobs.config import Config, load_config
from tests.conftest import World
from tests.test_slack import FakeSlack, slack  # noqa: F401 (the local Slack server fixture)


def _config(world: World, max_age_days: int = 2) -> Config:
    path = world.root / "config.toml"
    text = path.read_text().replace(
        "daily_budget = 20\n", f"daily_budget = 20\nmax_age_days = {max_age_days}\n", 1
    )
    path.write_text(text)
    return load_config(path)


def _query(cfg: Config, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(cfg.warehouse_path), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _review(cfg: Config, tid: str, verdict: str, at: object) -> None:
    result = CliRunner().invoke(
        cli,
        ["--config", str(cfg.path), "alerts", "review", tid, verdict, "--at", f"{at:%Y-%m-%d %H:%M:%S}"],
        env={"FRAUDWATCH_ACTOR": "ana"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output


def _text_part(msg: Message) -> str:
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode()
    raise AssertionError("no text part")


def test_digest_shows_yesterdays_confirmed_rate(world: World) -> None:
    cfg = _config(world)
    run_batch(cfg, reports=False)
    [(day,)] = _query(cfg, "SELECT max(alert_day) FROM alerts")
    alerts = _query(
        cfg,
        "SELECT transaction_id, any_value(event_time) FROM alerts WHERE alert_day = ? "
        "GROUP BY 1 ORDER BY 1",
        [day],
    )
    assert len(alerts) >= 4
    for (tid, t), verdict in zip(alerts, ["--fraud", "--fraud", "--legit"], strict=False):
        _review(cfg, tid, verdict, t + timedelta(hours=2))
    before = set((cfg.data_dir / "outbox").glob("*.eml"))

    world.land_days(day + timedelta(days=1))
    run_batch(cfg, reports=False)

    [new] = set((cfg.data_dir / "outbox").glob("*.eml")) - before
    msg = message_from_bytes(new.read_bytes())
    text = _text_part(msg)
    assert (
        f"Yesterday ({day}): {len(alerts)} alert(s), 2 confirmed as fraud, 1 cleared, "
        f"{len(alerts) - 3} pending review; confirmed rate 67% of those decided"
    ) in text
    html = next(p for p in msg.walk() if p.get_content_type() == "text/html")
    assert "confirmed rate 67% of those decided" in str(html.get_payload(decode=True))


def test_slack_digest_shows_yesterdays_reviews(world: World, slack: type[FakeSlack]) -> None:  # noqa: F811
    """The Slack digest carries the same line on yesterday's reviews as the email."""
    cfg = _config(world)
    text = cfg.path.read_text().replace('channels = ["file"]', 'channels = ["file", "slack"]')
    cfg.path.write_text(text + '\n[alerts.slack]\nwebhook_url_env = "FW_TEST_SLACK_URL"\n')
    cfg = load_config(cfg.path)
    run_batch(cfg, reports=False)
    [(day,)] = _query(cfg, "SELECT max(alert_day) FROM alerts")
    alerts = _query(
        cfg,
        "SELECT transaction_id, any_value(event_time) FROM alerts WHERE alert_day = ? "
        "GROUP BY 1 ORDER BY 1",
        [day],
    )
    for (tid, t), verdict in zip(alerts, ["--fraud", "--legit"], strict=False):
        _review(cfg, tid, verdict, t + timedelta(hours=2))
    slack.received.clear()
    world.land_days(day + timedelta(days=1))
    run_batch(cfg, reports=False)
    assert slack.received, "the new day's digest went to Slack"
    contexts = [
        e["text"]
        for m in slack.received
        for b in m["blocks"]
        if b["type"] == "context"
        for e in b["elements"]
    ]
    line = (
        f"Yesterday ({day}): {len(alerts)} alert(s), 1 confirmed as fraud, 1 cleared, "
        f"{len(alerts) - 2} pending review; confirmed rate 50% of those decided"
    )
    assert all(line in c for c in contexts), contexts


def _cells(html: str, table: str) -> list[list[str]]:
    body = re.search(rf'<table id="{table}">.*?<tbody>(.*?)</tbody>', html, re.S)
    assert body, f"no table {table}"
    return [
        [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body.group(1), re.S)
    ]


def test_performance_report_shows_alert_precision_from_dispositions(world: World) -> None:
    cfg = _config(world, max_age_days=30)
    run_batch(cfg, reports=False)
    alerts = _query(
        cfg,
        "SELECT a.transaction_id, any_value(a.event_time), any_value(a.alert_day), "
        "bool_or(coalesce(l.is_fraud, false)), min(l.reported_at) "
        "FROM alerts a LEFT JOIN labels l USING (transaction_id) GROUP BY 1 ORDER BY 1",
    )
    # an analyst who gets two in three right, and one decision a chargeback overturns
    overturn = next(a for a in alerts if a[3] and a[4] > a[1] + timedelta(hours=2))
    cleared_frauds = 0
    for i, (tid, t, _, fraud, _) in enumerate(alerts):
        verdict = "--fraud" if fraud != (i % 3 == 0) else "--legit"
        if tid == overturn[0]:
            verdict = "--legit"
        if i % 5 != 4:  # some stay pending review
            _review(cfg, tid, verdict, t + timedelta(hours=1))
            cleared_frauds += verdict == "--legit" and fraud

    result = CliRunner().invoke(cli, ["--config", str(cfg.path), "report", "performance"])
    assert result.exit_code == 0, result.output
    [path] = sorted((cfg.reports_dir).rglob("performance-*.html"))
    html = path.read_text()

    # the report's figures are the dispositions in the warehouse
    expected = _query(
        cfg,
        """
        WITH d AS (SELECT * FROM dispositions QUALIFY row_number() OVER
                   (PARTITION BY transaction_id ORDER BY reviewed_at DESC) = 1),
        a AS (SELECT transaction_id, any_value(alert_day) AS day FROM alerts GROUP BY 1)
        SELECT a.day, count(*), count(*) FILTER (WHERE d.is_fraud),
               count(*) FILTER (WHERE NOT d.is_fraud)
        FROM a LEFT JOIN d USING (transaction_id) GROUP BY 1 ORDER BY 1
        """,
    )
    rows = {r[0]: r for r in _cells(html, "review-days")}
    [(clock,)] = _query(cfg, "SELECT max(event_time)::DATE FROM transactions")
    matured = clock - timedelta(days=7)
    shown = 0
    for day, n, confirmed, cleared in expected:
        if f"{day}" not in rows:
            continue  # before the report's window
        shown += 1
        row = rows[f"{day}"]
        assert row[1:4] == [str(n), str(confirmed), str(cleared)]
        decided = confirmed + cleared
        assert row[6] == (f"{confirmed / decided:.3f}" if decided else "n/a")
        if day < matured:
            frauds = sum(1 for a in alerts if a[2] == day and a[3])
            assert row[7] == f"{frauds / n:.3f}"
        else:
            assert row[7] == "not matured"
    assert shown >= 20 and any(date.fromisoformat(d) >= matured for d in rows)
    said = re.search(r'<p id="overturned">(.*?)</p>', html, re.S)
    assert said is not None
    text = re.sub(r"<[^>]+>", "", said.group(1))
    assert cleared_frauds >= 1
    assert f"{cleared_frauds} cleared but charged back as fraud" in text
    assert "0 confirmed as fraud but charged back legitimate" in text  # chargebacks are frauds
