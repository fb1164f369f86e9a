"""What analysts' reviews say about the alerts: each alert's review status, the confirmed
rate per day, the day's alerts for a case-management system, and how often a chargeback
overturned an analyst (issue 18; the decisions are written by :mod:`jobs.dispositions`).

An alert's review status is its transaction's latest decision: ``pending review`` (none
yet), ``confirmed`` (fraud), ``cleared`` (legitimate), or the value of a decision that says
neither (``unreachable``). Alerts are counted once per transaction, whatever the channels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import duckdb

LABEL_SOURCE = "disposition"  # labels.source of a label written from a decision

# The latest decision per transaction (ties: the later ingested, then the later row).
LATEST = """
    SELECT transaction_id, disposition, is_fraud, analyst, reviewed_at, note
    FROM dispositions
    QUALIFY row_number() OVER (PARTITION BY transaction_id
                               ORDER BY reviewed_at DESC, ingested_at DESC, source_row DESC) = 1
"""

REVIEW_STATUS = (
    "CASE WHEN d.transaction_id IS NULL THEN 'pending review' WHEN d.is_fraud THEN 'confirmed' "
    "WHEN NOT d.is_fraud THEN 'cleared' ELSE d.disposition END"
)
REVIEW_FILTERS = ("pending", "confirmed", "cleared", "other")

# one row per alerted transaction (the outbox has one per channel)
_ALERTS = """
    SELECT transaction_id, any_value(alert_day) AS alert_day, any_value(event_time) AS event_time,
           any_value(card_id) AS card_id, any_value(merchant_id) AS merchant_id,
           any_value(amount) AS amount, max(score) AS score, any_value(model_name) AS model_name,
           any_value(model_version) AS model_version, any_value(reasons) AS reasons
    FROM alerts GROUP BY transaction_id
"""


@dataclass(frozen=True)
class Overturned:
    """Decisions whose transaction also has a chargeback (a label of another source)."""

    compared: int  # decisions (fraud/legit, the latest per transaction) with a chargeback
    overturned: int  # the chargeback disagreed
    confirmed_but_legit: int  # the analyst said fraud, the chargeback legitimate
    cleared_but_fraud: int  # the analyst cleared it, it was charged back as fraud

    @property
    def rate(self) -> float | None:
        return self.overturned / self.compared if self.compared else None

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "rate": self.rate}


@dataclass(frozen=True)
class DayReviews:
    """One alert day's alerts and what their reviews said."""

    day: date
    alerts: int
    confirmed: int
    cleared: int
    other: int  # reviewed with a decision that says neither (unreachable)

    @property
    def pending(self) -> int:
        return self.alerts - self.confirmed - self.cleared - self.other

    @property
    def decided(self) -> int:
        return self.confirmed + self.cleared

    @property
    def confirmed_rate(self) -> float | None:
        """Alert precision from dispositions: confirmed among the alerts decided."""
        return self.confirmed / self.decided if self.decided else None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "day": self.day.isoformat(),
            "pending": self.pending,
            "confirmed_rate": self.confirmed_rate,
        }


def overturned(
    con: duckdb.DuckDBPyConnection, start: datetime | None = None, end: datetime | None = None
) -> Overturned:
    """How often a chargeback disagreed with the analyst: the latest fraud/legit decision per
    transaction against its latest label of another source (transactions whose event time
    is in ``[start, end)`` when given)."""
    row = con.execute(
        f"""
        WITH d AS (SELECT * FROM ({LATEST}) WHERE is_fraud IS NOT NULL),
        c AS (SELECT transaction_id, arg_max(is_fraud, reported_at) AS truth FROM labels
              WHERE source <> ? AND transaction_id IN (SELECT transaction_id FROM d) GROUP BY 1),
        t AS (SELECT transaction_id, min(event_time) AS event_time FROM transactions
              WHERE transaction_id IN (SELECT transaction_id FROM c) GROUP BY 1)
        SELECT count(*), count(*) FILTER (WHERE d.is_fraud <> c.truth),
               count(*) FILTER (WHERE d.is_fraud AND NOT c.truth),
               count(*) FILTER (WHERE NOT d.is_fraud AND c.truth)
        FROM d JOIN c USING (transaction_id) JOIN t USING (transaction_id)
        WHERE (?::TIMESTAMP IS NULL OR t.event_time >= ?)
          AND (?::TIMESTAMP IS NULL OR t.event_time < ?)
        """,
        [LABEL_SOURCE, start, start, end, end],
    ).fetchall()[0]
    return Overturned(*(int(v) for v in row))


def label_sources(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Labels per source."""
    return {
        str(s): int(n)
        for s, n in con.execute(
            "SELECT coalesce(source, 'chargeback'), count(*) FROM labels GROUP BY 1 ORDER BY 1"
        ).fetchall()
    }


def reviews_per_day(
    con: duckdb.DuckDBPyConnection, start: date | None = None, end: date | None = None
) -> list[DayReviews]:
    """Per alert day in ``[start, end)``: alerts, confirmed, cleared, other decisions."""
    rows = con.execute(
        f"""
        SELECT a.alert_day, count(*), count(*) FILTER (WHERE d.is_fraud),
               count(*) FILTER (WHERE NOT d.is_fraud),
               count(*) FILTER (WHERE d.transaction_id IS NOT NULL AND d.is_fraud IS NULL)
        FROM ({_ALERTS}) a LEFT JOIN ({LATEST}) d USING (transaction_id)
        WHERE (?::DATE IS NULL OR a.alert_day >= ?) AND (?::DATE IS NULL OR a.alert_day < ?)
        GROUP BY 1 ORDER BY 1
        """,
        [start, start, end, end],
    ).fetchall()
    return [DayReviews(d, int(n), int(c), int(x), int(o)) for d, n, c, x, o in rows]


def day_before(con: duckdb.DuckDBPyConnection, alert_days: list[date]) -> DayReviews | None:
    """What analysts decided about the alerts of the day before the newest of ``alert_days``
    (a digest's "yesterday"), or None when that day had no alerts."""
    from datetime import timedelta

    day = max(alert_days) - timedelta(days=1)
    found = reviews_per_day(con, day, day + timedelta(days=1))
    return found[0] if found else None


def review_join(alias: str = "a") -> str:
    """SQL joining the latest decision ``d`` to alert rows ``alias`` (for SELECTs that show
    :data:`REVIEW_STATUS`)."""
    return f"LEFT JOIN ({LATEST}) d ON d.transaction_id = {alias}.transaction_id"


def review_filter(review: str | None) -> str:
    """A WHERE condition for ``--review``: pending, confirmed, cleared, other (or none)."""
    return {
        None: "true",
        "pending": "d.transaction_id IS NULL",
        "confirmed": "d.is_fraud",
        "cleared": "NOT d.is_fraud",
        "other": "d.transaction_id IS NOT NULL AND d.is_fraud IS NULL",
    }[review]


def export_rows(con: duckdb.DuckDBPyConnection, day: date) -> list[dict[str, Any]]:
    """The alerts of ``day``, one per transaction, highest score first, with their reasons
    (a list) and review status: what a case-management system takes in."""
    cur = con.execute(
        f"""
        SELECT a.alert_day, a.transaction_id, a.event_time, a.card_id, a.merchant_id, a.amount,
               a.score, a.model_name, a.model_version, a.reasons,
               {REVIEW_STATUS} AS review, d.disposition, d.analyst, d.reviewed_at
        FROM ({_ALERTS}) a {review_join()}
        WHERE a.alert_day = ? ORDER BY a.score DESC, a.transaction_id
        """,
        [day],
    )
    cols = [c[0] for c in cur.description]
    out = []
    for r in cur.fetchall():
        row = dict(zip(cols, r, strict=True))
        try:
            reasons = json.loads(row["reasons"] or "[]")
        except json.JSONDecodeError:
            reasons = [row["reasons"]]
        row["reasons"] = [str(x) for x in reasons] if isinstance(reasons, list) else [str(reasons)]
        out.append(row)
    return out


def latest_alert_day(con: duckdb.DuckDBPyConnection) -> date | None:
    day = con.execute("SELECT max(alert_day) FROM alerts").fetchall()[0][0]
    return day if isinstance(day, date) else None
