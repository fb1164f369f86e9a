"""Alerts: the policy that turns scores into alerts, and the outbox that delivers them.

Policy (:func:`create_alerts`): a transaction becomes an alert when its
champion score is at or above ``[alerts] threshold``, within a daily budget of
``daily_budget`` alerts per alert day (the event's date; highest scores first,
counting the alerts earlier runs already made that day), and at most one open
alert per card per day. Each alert becomes one outbox row per enabled channel,
``pending`` with no attempts.

Delivery (:func:`deliver`): each channel renders ONE digest of its pending
rows per run and marks them ``sent`` only after the channel accepted it. On
failure the rows stay ``pending`` with ``attempts`` and ``last_error``, and
become ``failed`` after ``max_attempts``. Delivery is at-least-once: a crash
between the channel's acceptance and the marking re-sends that digest on the
next run (a rare duplicate, never a loss). The warehouse is held only to read
the pending rows and to mark them, never while a channel is being waited on.

Giving up is never silent: alerts that became ``failed`` are the result's
:attr:`DeliveryResult.problems` (the CLI exits 1, the run ledger says
``needs_attention``), every later digest counts the failed alerts per channel,
and :func:`requeue_failed` (``fraudwatch alerts retry --failed``) puts them back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from jobs import logs
from jobs.config import Alerts, Config
from jobs.errors import ConfigError
from jobs.runs import utcnow

log = logs.get("alerts")

CANDIDATE_COLUMNS = (
    "transaction_id",
    "event_time",
    "card_id",
    "merchant_id",
    "amount",
    "score",
    "model_name",
    "model_version",
    "reasons",
)


@dataclass(frozen=True)
class AlertBatchResult:
    candidates: int
    created: int  # alerts (transactions), not outbox rows
    over_budget: int
    same_card_same_day: int


@dataclass
class ChannelResult:
    sent: int = 0
    pending: int = 0
    failed: int = 0  # of this digest's rows
    newly_failed: int = 0  # rows that used their last attempt in this delivery
    failed_total: int = 0  # every failed row of the channel in the outbox
    error: str | None = None
    digests: list[str] = field(default_factory=list)


@dataclass
class DeliveryResult:
    channels: dict[str, ChannelResult] = field(default_factory=dict)
    requeued: int = 0
    max_attempts: int = 0

    @property
    def pending(self) -> int:
        return sum(c.pending for c in self.channels.values())

    @property
    def problems(self) -> list[str]:
        """Alerts given up on in this delivery: each needs a person."""
        return [
            f"alerts/{name}: {c.newly_failed} alert(s) not delivered after {self.max_attempts} "
            f"attempt(s) ({c.error}); marked failed: `fraudwatch alerts retry --failed` "
            "sends them again"
            for name, c in self.channels.items()
            if c.newly_failed
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "channels": {name: dict(c.__dict__) for name, c in self.channels.items()},
            "pending": self.pending,
            "failed": sum(c.failed_total for c in self.channels.values()),
            "requeued": self.requeued,
            "problems": self.problems,
        }


def create_alerts(
    con: duckdb.DuckDBPyConnection,
    a: Alerts,
    candidates: pl.DataFrame,
    run_id: str,
    explain: Callable[[list[str]], Sequence[str]] | None = None,
) -> AlertBatchResult:
    """Apply the alert policy to ``candidates`` and add outbox rows (inside the caller's transaction).

    ``explain``, when given, is called once with the ids of the transactions that become
    alerts and returns their ``reasons`` (JSON), which replace the candidates' own: the
    reasons are costly to compute, and the budget lets few candidates through.
    """
    frame = candidates.select(CANDIDATE_COLUMNS).filter(pl.col("score") >= a.threshold)
    con.register("fw_candidates", frame.to_arrow())
    try:
        con.execute("DROP TABLE IF EXISTS temp.fw_new_alerts")
        con.execute(
            """
            CREATE TEMP TABLE fw_new_alerts AS
            WITH c AS (
                SELECT *, CAST(event_time AS DATE) AS alert_day FROM fw_candidates
                ANTI JOIN (SELECT DISTINCT transaction_id FROM alerts) USING (transaction_id)
            ),
            open_cards AS (SELECT DISTINCT card_id, alert_day FROM alerts),
            fresh AS (
                SELECT c.* FROM c ANTI JOIN open_cards o USING (card_id, alert_day)
            ),
            one_per_card AS (
                SELECT * FROM fresh QUALIFY row_number() OVER
                    (PARTITION BY card_id, alert_day ORDER BY score DESC, transaction_id) = 1
            ),
            used AS (
                SELECT alert_day, count(DISTINCT transaction_id) AS n FROM alerts GROUP BY alert_day
            ),
            ranked AS (
                SELECT o.*, row_number() OVER
                    (PARTITION BY o.alert_day ORDER BY o.score DESC, o.transaction_id) AS rank,
                    coalesce(u.n, 0) AS used
                FROM one_per_card o LEFT JOIN used u USING (alert_day)
            )
            SELECT * EXCLUDE (rank, used) FROM ranked WHERE rank + used <= ?
            """,
            [a.daily_budget],
        )
        if explain is not None:
            _explain(con, explain)
        n_cand = frame.height
        fresh = int(
            con.execute(
                "SELECT count(*) FROM (SELECT DISTINCT c.card_id, CAST(c.event_time AS DATE) "
                "FROM fw_candidates c ANTI JOIN (SELECT card_id, alert_day FROM alerts) o "
                "ON o.card_id = c.card_id AND o.alert_day = CAST(c.event_time AS DATE))"
            ).fetchall()[0][0]
        )
        created = int(con.execute("SELECT count(*) FROM fw_new_alerts").fetchall()[0][0])
        now = utcnow()
        for channel in a.channels:
            con.execute(
                "INSERT INTO alerts (transaction_id, channel, status, attempts, last_error, "
                "created_at, sent_at, alert_day, card_id, merchant_id, amount, event_time, score, "
                "model_name, model_version, reasons, run_id) "
                "SELECT transaction_id, ?, 'pending', 0, NULL, ?, NULL, alert_day, card_id, "
                "merchant_id, amount, event_time, score, model_name, model_version, reasons, ? "
                "FROM fw_new_alerts ON CONFLICT DO NOTHING",
                [channel, now, run_id],
            )
    finally:
        con.unregister("fw_candidates")
        con.execute("DROP TABLE IF EXISTS temp.fw_new_alerts")
    return AlertBatchResult(
        candidates=n_cand,
        created=created,
        over_budget=max(0, fresh - created),
        same_card_same_day=max(0, n_cand - fresh),
    )


def _explain(con: duckdb.DuckDBPyConnection, explain: Callable[[list[str]], Sequence[str]]) -> None:
    """Fill in the reasons of the alerts about to be created (``fw_new_alerts``)."""
    ids = [r[0] for r in con.execute("SELECT transaction_id FROM fw_new_alerts").fetchall()]
    if not ids:
        return
    reasons = list(explain(ids))
    if len(reasons) != len(ids):
        raise ValueError(f"explain gave {len(reasons)} reasons for {len(ids)} alerts")
    con.register("fw_reasons", pa.table({"transaction_id": ids, "reasons": reasons}))
    try:
        con.execute(
            "UPDATE fw_new_alerts SET reasons = r.reasons FROM fw_reasons r "
            "WHERE fw_new_alerts.transaction_id = r.transaction_id"
        )
    finally:
        con.unregister("fw_reasons")


def pending_rows(con: duckdb.DuckDBPyConnection, channel: str) -> pl.DataFrame:
    frame = pl.from_arrow(
        con.sql(
            "SELECT transaction_id, alert_day, card_id, merchant_id, amount, event_time, score, "
            "model_name, model_version, reasons, attempts FROM alerts "
            "WHERE channel = ? AND status = 'pending' ORDER BY score DESC, transaction_id",
            params=[channel],
        ).to_arrow_table()
    )
    assert isinstance(frame, pl.DataFrame)
    return frame


def _mark(
    con: duckdb.DuckDBPyConnection,
    channel: str,
    ids: list[str],
    *,
    ok: bool,
    error: str | None,
    max_attempts: int,
) -> int:
    """Mark one message's rows; return how many of them used their last attempt."""
    if not ids:
        return 0
    if ok:
        con.execute(
            "UPDATE alerts SET status = 'sent', sent_at = ?, attempts = attempts + 1, "
            "last_error = NULL WHERE channel = ? AND transaction_id IN (SELECT unnest(?::VARCHAR[]))",
            [utcnow(), channel, ids],
        )
        return 0
    gave_up = con.execute(
        "UPDATE alerts SET attempts = attempts + 1, last_error = ?, "
        "status = CASE WHEN attempts + 1 >= ? THEN 'failed' ELSE 'pending' END "
        "WHERE channel = ? AND status = 'pending' AND transaction_id IN "
        "(SELECT unnest(?::VARCHAR[])) RETURNING status",
        [error, max_attempts, channel, ids],
    ).fetchall()
    return sum(1 for (status,) in gave_up if status == "failed")


Session = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]


def send_pending(con: duckdb.DuckDBPyConnection, cfg: Config) -> DeliveryResult:
    """:func:`deliver` on a connection held throughout (tests, notebooks)."""
    return deliver(cfg, lambda: nullcontext(con))


def failed_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Failed (given up) alerts per channel."""
    return {
        str(c): int(n)
        for c, n in con.execute(
            "SELECT channel, count(*) FROM alerts WHERE status = 'failed' GROUP BY 1 ORDER BY 1"
        ).fetchall()
    }


def requeue_failed(con: duckdb.DuckDBPyConnection, channel: str | None = None) -> int:
    """Put failed alerts back in the outbox as pending with fresh attempts (one statement,
    so a crash leaves each either failed or pending, never lost); return how many."""
    rows = con.execute(
        "UPDATE alerts SET status = 'pending', attempts = 0 "
        "WHERE status = 'failed' AND (? IS NULL OR channel = ?) RETURNING transaction_id",
        [channel, channel],
    ).fetchall()
    if rows:
        logs.event(log, "failed alerts re-queued", "info", n=len(rows), channel=channel)
    return len(rows)


def deliver(cfg: Config, session: Session) -> DeliveryResult:
    """Deliver each channel's pending alerts as one digest; a failing channel never stops
    the others. ``session()`` gives the warehouse for a short read or write: it is not held
    while a channel is being waited on."""
    from jobs.alert_reviews import day_before
    from jobs.channels import make_channel
    from jobs.digest import build_digest, estimate_alarm

    a = cfg.settings.alerts
    result = DeliveryResult(max_attempts=a.max_attempts)
    alarm = estimate_alarm(cfg.reports_dir)
    with session() as con:
        pending = {
            r[0]
            for r in con.execute(
                "SELECT DISTINCT channel FROM alerts WHERE status = 'pending'"
            ).fetchall()
        }
    for name in sorted(set(a.channels) | pending):
        res = ChannelResult()
        result.channels[name] = res
        with session() as con:
            rows = pending_rows(con, name)
            budget = _budget_used(con, rows) if rows.height else {}
            failed = failed_counts(con)
            yesterday = day_before(con, rows["alert_day"].to_list()) if rows.height else None
        res.failed_total = failed.get(name, 0)
        if rows.height == 0:
            continue
        try:
            channel = make_channel(name, cfg)
        except ConfigError as exc:
            res.error = str(exc)
            res.pending = rows.height
            logs.event(log, "channel not configured", "error", channel=name, error=str(exc))
            continue
        digest = build_digest(
            cfg,
            rows,
            budget_used=budget,
            undelivered=failed,
            yesterday=yesterday,
            estimate_alarm=alarm,
        )
        for part_ids, ok, error, ref in channel.deliver(digest):
            with session() as con:
                res.newly_failed += _mark(
                    con, name, part_ids, ok=ok, error=error, max_attempts=a.max_attempts
                )
            if ok:
                res.sent += len(part_ids)
                if ref:
                    res.digests.append(ref)
            else:
                res.error = error
        with session() as con:
            counts = dict(
                con.execute(
                    "SELECT status, count(*) FROM alerts WHERE channel = ? AND transaction_id IN "
                    "(SELECT unnest(?::VARCHAR[])) GROUP BY status",
                    [name, rows["transaction_id"].to_list()],
                ).fetchall()
            )
            res.failed_total = failed_counts(con).get(name, 0)
        res.pending = int(counts.get("pending", 0))
        res.failed = int(counts.get("failed", 0))
        logs.event(
            log,
            "digest delivered" if not res.error else "digest not (fully) delivered",
            "info" if not res.error else ("error" if res.newly_failed else "warning"),
            channel=name,
            sent=res.sent,
            pending=res.pending,
            failed=res.failed,
            newly_failed=res.newly_failed,
            error=res.error,
        )
    return result


def _budget_used(con: duckdb.DuckDBPyConnection, rows: pl.DataFrame) -> dict[str, int]:
    days = sorted({str(d) for d in rows["alert_day"].to_list()})
    out = con.execute(
        "SELECT CAST(alert_day AS VARCHAR), count(DISTINCT transaction_id) FROM alerts "
        "WHERE CAST(alert_day AS VARCHAR) IN (SELECT unnest(?::VARCHAR[])) GROUP BY 1",
        [days],
    ).fetchall()
    return {d: int(n) for d, n in out}


def list_alerts(
    con: duckdb.DuckDBPyConnection,
    status: str | None = None,
    limit: int = 100,
    review: str | None = None,
) -> list[dict[str, Any]]:
    """Outbox rows, newest first, each with its transaction's review status (``review``:
    pending review, confirmed, cleared, or a decision that says neither), the disposition,
    analyst and review time; ``review`` filters on it (pending, confirmed, cleared, other)."""
    from jobs.alert_reviews import REVIEW_STATUS, review_filter, review_join

    cur = con.execute(
        "SELECT a.transaction_id, a.channel, a.status, a.attempts, a.last_error, a.created_at, "
        "a.sent_at, a.alert_day, a.score, a.card_id, a.merchant_id, a.amount, a.reasons, "
        f"{REVIEW_STATUS} AS review, d.disposition, d.analyst, d.reviewed_at "
        f"FROM alerts a {review_join()} "
        f"WHERE (? IS NULL OR a.status = ?) AND {review_filter(review)} "
        "ORDER BY a.created_at DESC, a.score DESC, a.transaction_id, a.channel LIMIT ?",
        [status, status, limit],
    )
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def send_job(cfg: Config, *, requeue: bool = False, channel: str | None = None) -> DeliveryResult:
    """The ``alerts send`` / ``alerts retry`` job: under a run-ledger row, re-queue failed
    alerts if asked (of one channel, or all), then deliver what is pending. The warehouse
    is open only while each step reads or writes, so analysts can read in between."""
    from jobs.runs import recorded_run
    from jobs.warehouse_windows import Windows

    with recorded_run(cfg, "alerts") as rec, Windows(cfg) as access:
        # a window is an ATTACH on one in-memory connection, not a DuckDB instance per
        # session with its catalog and migration check (the ledger's open has migrated)
        requeued = 0
        if requeue:
            with access.writing("re-queue failed alerts") as con:
                requeued = requeue_failed(con, channel)
        result = deliver(cfg, lambda: access.writing("deliver alerts"))
        result.requeued = requeued
        rec.counts["alerts"] = result.to_dict()
        rec.problems += result.problems
    return result
