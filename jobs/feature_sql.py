"""The features' definition in DuckDB SQL (see :mod:`jobs.features` for what they mean):
the query :func:`feature_sql` and its parts, which the reference (:mod:`jobs.feature_reference`)
and the keyed state (:mod:`jobs.keys`) share, and :func:`sql_features`, the path
:func:`jobs.features.compute_features` takes when the warehouse has no current keyed state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb
import pyarrow as pa

from jobs.config import Config, Features
from jobs.features import feature_spec, quote_ident


def amount_exact() -> str:
    """The amount as an exact decimal, so means do not depend on summation order.

    Window and GROUP BY sums of DOUBLEs add in different orders (and parallel
    aggregation in a different order each run); exact decimal sums make every
    mean bit-identical however it is computed. Amounts above 10^14 (no real
    card payment) are left out of means rather than overflow.
    """
    return "try_cast(amount AS DECIMAL(18, 4))"


def time_of_day_columns(f: Features) -> str:
    """hour, is_night and is_weekend of the target rows ``x``."""
    return (
        "hour(x.event_time)::DOUBLE AS hour, "
        f"{night_expr(f)}::INT::DOUBLE AS is_night, "
        "(dayofweek(x.event_time) IN (0, 6))::INT::DOUBLE AS is_weekend"
    )


def night_expr(f: Features) -> str:
    start, end = int(f.night_start_hour), int(f.night_end_hour)
    if start > end:
        return f"(hour(x.event_time) >= {start} OR hour(x.event_time) < {end})"
    return f"(hour(x.event_time) >= {start} AND hour(x.event_time) < {end})"


def _ts(value: datetime | None) -> str:
    return "NULL::TIMESTAMP" if value is None else f"TIMESTAMP '{value.isoformat(sep=' ')}'"


def _since(w: int) -> str:
    return f"h.event_time >= x.since_{int(w)}d"


def fraud_intervals_sql(labels: str = "labels") -> str:
    """When each transaction is a known fraud, from the label rows ``labels`` (a table or a
    subquery): rows ``(transaction_id, reported_at, revoked_at)``, each saying "a known fraud
    from ``reported_at`` until ``revoked_at``" (NULL: still); several rows of one transaction
    never overlap.

    This is THE label semantics of every feature (the fast query, the reference and the
    sweep's ``known_frauds`` table, :mod:`jobs.keys`): at time ``t`` a transaction's label is
    its latest label reported by ``t``, as training and the performance report read it. So
    a transaction is a known fraud from the first fraud label on, until a later label says
    otherwise (an analyst's "fraud" that a chargeback then contradicts, see
    :mod:`jobs.dispositions`), and again from a later fraud label. Labels reported at the same
    instant: the fraud one is taken as the later. A change of semantics is a change of this
    statement alone; then refresh ``known_frauds`` whole (``UPDATE key_state SET labels =
    -1``, and the next :func:`jobs.keys.assign_keys` does).
    """
    return f"""SELECT transaction_id, reported_at, revoked_at FROM (
    SELECT transaction_id, is_fraud, reported_at,
           lead(reported_at) OVER (PARTITION BY transaction_id ORDER BY reported_at, is_fraud)
           AS revoked_at
    FROM (
        SELECT transaction_id, is_fraud, reported_at,
               lag(is_fraud) OVER (PARTITION BY transaction_id ORDER BY reported_at, is_fraud)
               AS was_fraud
        FROM {labels}
    )
    WHERE was_fraud IS DISTINCT FROM is_fraud  -- the label changes here
) WHERE is_fraud"""


def merchant_fraud_ctes(f: Features, delay: int, hist: str) -> str:
    """CTEs ``fraud_reports`` and ``merchant_frauds``: per target row, its merchant's frauds
    among its transactions in ``(t - d - w, t - d]`` for each window ``w``, counting only
    labels reported by ``t`` (``hist`` holds the history rows)."""
    longest = max(f.merchant_windows_days) + delay
    fraud_counts = [
        f"count(r.reported_at) FILTER (WHERE r.tx_time > x.event_time - INTERVAL {int(w) + delay} DAY) "
        f"AS frauds_{w}d"
        for w in f.merchant_windows_days
    ]
    return f"""fraud_reports AS (
    -- every fraud label as an event: which merchant, when the transaction happened, when reported
    SELECT h.merchant_id, h.event_time AS tx_time, l.reported_at, l.revoked_at
    FROM {hist} h
    JOIN ({fraud_intervals_sql()}) l USING (transaction_id)
),
merchant_frauds AS (
    SELECT x.transaction_id, {", ".join(fraud_counts)}
    FROM target x JOIN fraud_reports r
      ON r.merchant_id = x.merchant_id
     AND r.tx_time <= x.event_time - INTERVAL {int(delay)} DAY
     AND r.tx_time > x.event_time - INTERVAL {int(longest)} DAY
     AND r.reported_at <= x.event_time
     AND (r.revoked_at IS NULL OR r.revoked_at > x.event_time)
    GROUP BY x.transaction_id
),"""


def extra_feature_columns(extra: Mapping[str, str]) -> list[str]:
    """The config's extra columns from the target rows ``x``, typed as the model takes them."""
    return [
        f"x.{quote_ident(n)}::{'DOUBLE' if k == 'numeric' else 'VARCHAR'} AS {quote_ident(n)}"
        for n, k in extra.items()
    ]


def merchant_fraud_rates(f: Features, counts: str = "m") -> list[str]:
    """The risk columns from ``merchant_frauds fr`` and the delayed window counts
    ``{counts}.mdc_{w}`` (the merchant's transactions in ``(t - d - w, t - d]``)."""
    return [
        f"coalesce(coalesce(fr.frauds_{w}d, 0)::DOUBLE / nullif({counts}.mdc_{w}, 0), 0) "
        f"AS merchant_fraud_rate_{w}d"
        for w in f.merchant_windows_days
    ]


@dataclass(frozen=True)
class CountPoint:
    """A merchant count ``C`` taken ``offset`` days before each target's time: ``C(< t - off)``
    (``ord`` 0, before the transactions at that instant) or ``C(<= t - off)`` (``ord`` 2)."""

    pid: int
    offset: int
    ord: int


def merchant_count_points(f: Features, delay: int) -> dict[str, CountPoint]:
    """The counts each target needs: ``[t - w, t]`` and the delayed ``(t - d - w, t - d]``."""
    points = {"now": CountPoint(0, 0, 2), "delay": CountPoint(1, delay, 2)}
    for i, w in enumerate(f.merchant_windows_days):
        points[f"since_{w}"] = CountPoint(10 + i, int(w), 0)
        points[f"delayed_since_{w}"] = CountPoint(100 + i, int(w) + delay, 2)
    return points


def merchant_query_days(
    f: Features, first: datetime, last: datetime, delay: int = 0
) -> list[tuple[datetime, datetime]]:
    """The whole days holding a target's ``t - off`` for every count point (targets from
    ``first`` to ``last``), as disjoint ``[start, end)`` ranges: the only days whose
    merchant transactions are read row by row."""
    spans = []
    for point in merchant_count_points(f, delay).values():
        start = datetime.combine((first - timedelta(days=point.offset)).date(), datetime.min.time())
        end = datetime.combine((last - timedelta(days=point.offset)).date(), datetime.min.time())
        spans.append((start, end + timedelta(days=1)))
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def feature_sql(
    cfg: Config,
    first: datetime | None,
    last: datetime | None,
    days: list[tuple[datetime, datetime]] | None = None,
) -> str:
    """The feature query for the rows whose ids are in the temp table ``fw_target``.

    ``first``..``last`` are the targets' earliest and latest event times: the
    history read runs from the longest look-back before ``first`` (card windows
    for cards, merchant windows plus the label delay for merchants) to
    ``last``; ``days`` are :func:`merchant_query_days` (literals, so DuckDB
    skips the row groups outside them).

    It computes features for the target rows only, never for the history:

    - card windows: each target row joined to its card's transactions of the
      longest window before it (a card makes a few a day), aggregated with one
      ``FILTER`` per window. Distinct merchants are counted without DISTINCT:
      a history row counts when it is its merchant's latest one at or before
      ``t`` (the card's next transaction at that merchant, ``next_same``, is
      later than ``t``) and lies inside the window;
    - merchant windows (a merchant makes thousands a day): ``count in
      [t - w, t] = C(<= t) - C(< t - w)`` and, for the risk's delayed window,
      ``count in (t - d - w, t - d] = C(<= t - d) - C(<= t - d - w)``, where ``C(x)`` is the merchant's
      daily counts summed up to the day before ``x`` plus its rank within
      ``x``'s day. Only the days holding a ``t`` or a ``t - w`` are read row by
      row (four days of thirty for a one-day batch; whole days by timestamp
      range, so DuckDB skips the other row groups); the others only counted;
    - fraud rates: the target joined to the few fraud labels of its merchant,
      over the delayed count.

    :mod:`jobs.feature_reference` states the same features as plain ``RANGE``
    window functions over the whole history; the tests and
    ``benchmarks/features.py`` check both give identical values.
    """
    f = cfg.settings.features
    spec = feature_spec(cfg)
    delay = spec.label_delay_days
    card_history = spec.card_history_days
    card_lo = None if first is None else first - timedelta(days=card_history)
    lo = None if first is None else first - timedelta(days=spec.history_days)
    hi = last
    card_cols = []
    for w in f.card_windows_days:
        card_cols += [
            f"count(*) FILTER (WHERE {_since(w)}) AS card_tx_count_{w}d",
            f"avg(h.amount_d) FILTER (WHERE {_since(w)}) AS card_mean_amount_{w}d",
            f"count(*) FILTER (WHERE {_since(w)} "
            "AND (h.next_same IS NULL OR h.next_same > x.event_time)) "
            f"AS card_distinct_merchants_{w}d",
        ]
    # another transaction of the card at the very same instant: 0 s since the previous one
    card_cols += [
        "count(*) FILTER (WHERE h.event_time = x.event_time) AS same_instant",
        "max(h.event_time) FILTER (WHERE h.event_time < x.event_time) AS prev_time",
    ]
    card_out = []
    for w in f.card_windows_days:
        card_out += [
            f"c.card_tx_count_{w}d",
            f"c.card_mean_amount_{w}d",
            f"x.amount / nullif(c.card_mean_amount_{w}d, 0) AS card_amount_ratio_{w}d",
            f"c.card_distinct_merchants_{w}d",
        ]
    card_out.append(
        # exact: integer microseconds apart (two epoch doubles would be up to 1e-6 s off)
        "CASE WHEN c.same_instant > 1 THEN 0 "
        "ELSE (epoch_us(x.event_time) - epoch_us(c.prev_time)) / 1e6 END "
        "AS card_seconds_since_prev"
    )
    points = merchant_count_points(f, delay)

    def count_between(upto: str, before: str) -> str:
        a, b = points[upto].pid, points[before].pid
        return f"(max(c) FILTER (WHERE pid = {a}) - max(c) FILTER (WHERE pid = {b}))::BIGINT"

    merchant_out = []
    for w in f.merchant_windows_days:
        merchant_out += [
            f"{count_between('now', f'since_{w}')} AS merchant_tx_count_{w}d",
            f"{count_between('delay', f'delayed_since_{w}')} AS mdc_{w}",
        ]
    point_rows = ", ".join(f"({p.pid}, {p.offset}, {p.ord})" for p in points.values())
    since = ", ".join(
        f"event_time - INTERVAL {int(w)} DAY AS since_{int(w)}d" for w in f.card_windows_days
    )
    if days is None:
        days = [] if lo is None or hi is None else [(lo, hi + timedelta(microseconds=1))]
    day_rows = (
        " UNION ALL ".join(
            "SELECT merchant_id, event_time FROM transactions "
            f"WHERE event_time >= {_ts(max(start, lo) if lo else start)} AND event_time < {_ts(end)} "
            f"AND event_time <= {_ts(hi)}"
            for start, end in days
        )
        or "SELECT NULL::VARCHAR AS merchant_id, NULL::TIMESTAMP AS event_time WHERE false"
    )
    extra = cfg.extra_columns()
    extra_cols = extra_feature_columns(cfg.extra_columns())
    ordered = ", ".join(quote_ident(n) for n in spec.names if n != "amount")
    extra_select = "".join(f", t.{quote_ident(n)}" for n in extra)
    return f"""
WITH target AS (
    SELECT t.transaction_id, t.event_time, t.card_id, t.merchant_id, t.amount{extra_select}
    FROM transactions t SEMI JOIN fw_target USING (transaction_id)
),
card_hist AS (
    SELECT t.event_time, t.card_id, {amount_exact()} AS amount_d,
           lead(t.event_time) OVER (PARTITION BY t.card_id, t.merchant_id
                                    ORDER BY t.event_time) AS next_same
    FROM transactions t
    WHERE t.event_time BETWEEN {_ts(card_lo)} AND {_ts(hi)}
      AND t.card_id IN (SELECT DISTINCT card_id FROM target)
),
card_target AS (
    -- each window's start, computed once per target rather than once per history row
    SELECT transaction_id, card_id, event_time, {since}
    FROM target
),
card_feats AS (
    SELECT x.transaction_id, {", ".join(card_cols)}
    FROM card_target x JOIN card_hist h
      ON h.card_id = x.card_id
     AND h.event_time BETWEEN x.event_time - INTERVAL {int(card_history)} DAY AND x.event_time
    GROUP BY x.transaction_id
),
merchant_hist AS NOT MATERIALIZED (
    -- every merchant's: the few a batch does not touch cost less than filtering them out
    SELECT t.transaction_id, t.event_time, t.merchant_id
    FROM transactions t
    WHERE t.event_time BETWEEN {_ts(lo)} AND {_ts(hi)}
),
merchant_days AS (
    SELECT merchant_id, event_time::DATE AS day, count(*) AS n FROM merchant_hist GROUP BY ALL
),
merchant_day_rows AS (
    -- the transactions of the query days (whole days, so ranks within a day are right)
    {day_rows}
),
merchant_upto_day AS (
    -- the merchant's transactions in the history up to and including each day it traded on
    SELECT merchant_id, day,
           sum(n) OVER (PARTITION BY merchant_id ORDER BY day ROWS UNBOUNDED PRECEDING) AS upto
    FROM merchant_days
),
merchant_queries AS (
    -- C(<= x) sorts after the transactions at x (ord 2), C(< x) before them (ord 0)
    SELECT x.transaction_id AS tid, x.merchant_id, x.event_time - to_days(p.off) AS ts, p.pid, p.ord
    FROM target x, (VALUES {point_rows}) p(pid, off, ord)
),
merchant_stream AS (
    SELECT merchant_id, event_time AS ts, 1 AS ord, NULL AS tid, NULL AS pid, 1 AS one
    FROM merchant_day_rows
    UNION ALL
    SELECT merchant_id, ts, ord, tid, pid, 0 FROM merchant_queries
),
merchant_ranked AS (
    SELECT tid, pid, merchant_id, ts::DATE AS day,
           sum(one) OVER (PARTITION BY merchant_id, ts::DATE ORDER BY ts, ord
                          ROWS UNBOUNDED PRECEDING) AS in_day
    FROM merchant_stream
),
merchant_c AS (
    -- C = the transactions of the days before (the latest traded day earlier) + rank in day
    SELECT r.tid, r.pid, r.in_day + coalesce(b.upto, 0) AS c
    FROM (SELECT * FROM merchant_ranked WHERE tid IS NOT NULL) r
    ASOF LEFT JOIN merchant_upto_day b ON r.merchant_id = b.merchant_id AND r.day > b.day
),
merchant_feats AS (
    SELECT tid AS transaction_id, {", ".join(merchant_out)}
    FROM merchant_c GROUP BY tid
),
{merchant_fraud_ctes(f, delay, "merchant_hist")}
features AS (
    SELECT x.transaction_id, x.event_time, x.card_id, x.merchant_id, x.amount,
           {time_of_day_columns(f)},
           {", ".join(card_out)},
           m.* EXCLUDE (transaction_id),
           {", ".join([*merchant_fraud_rates(f), *extra_cols])}
    FROM target x
    JOIN card_feats c USING (transaction_id)
    JOIN merchant_feats m USING (transaction_id)
    LEFT JOIN merchant_frauds fr USING (transaction_id)
)
SELECT transaction_id, event_time, card_id, merchant_id, amount, {ordered}
FROM features
ORDER BY event_time, transaction_id
"""


def sql_features(
    con: duckdb.DuckDBPyConnection,
    cfg: Config,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    ids_table: str | None = None,
) -> pa.Table:
    """:func:`jobs.features.compute_features` by :func:`feature_sql` alone (the path without
    keyed state)."""
    con.execute("DROP TABLE IF EXISTS temp.fw_target")
    if ids_table is not None:
        con.execute(
            f"CREATE TEMP TABLE fw_target AS SELECT DISTINCT transaction_id FROM {quote_ident(ids_table)}"
        )
    else:
        con.execute(
            "CREATE TEMP TABLE fw_target AS SELECT transaction_id FROM transactions "
            "WHERE (?::TIMESTAMP IS NULL OR event_time >= ?) "
            "AND (?::TIMESTAMP IS NULL OR event_time < ?)",
            [start, start, end, end],
        )
    try:
        first, last = con.execute(
            "SELECT min(event_time), max(event_time) FROM transactions "
            "SEMI JOIN fw_target USING (transaction_id)"
        ).fetchall()[0]
        if first is None:
            return con.sql(feature_sql(cfg, None, None)).to_arrow_table()
        delay = cfg.settings.source.label_delay_days
        days = merchant_query_days(cfg.settings.features, first, last, delay)
        return con.sql(feature_sql(cfg, first, last, days)).to_arrow_table()
    finally:
        con.execute("DROP TABLE IF EXISTS temp.fw_target")
