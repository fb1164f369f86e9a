"""Point-in-time features: one definition in DuckDB SQL, for training and scoring alike.

A transaction's features at its time ``t`` use only what was known at ``t``:

- the transactions of the same card (or merchant) with ``event_time`` in
  ``[t - w, t]`` for a window of ``w`` days, the current one included. Other
  transactions at exactly the same instant ``t`` count too (they happened "at
  t"); nothing later ever does;
- fraud labels whose ``reported_at`` is at or before ``t``.

Because every window ends at the row's own time, the features of a past
window are identical whether or not later transactions and labels exist; the
tests prove it. Scoring a batch reads only the history it needs: the
transactions of the batch's cards and merchants in the longest window before
the batch's first event.

Card and merchant ids are keys, never model inputs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pyarrow as pa

from jobs.config import Config

KEYS = ("transaction_id", "event_time", "card_id", "merchant_id", "amount")


@dataclass(frozen=True)
class FeatureSpec:
    names: tuple[str, ...]  # model input columns, in order
    categorical: tuple[str, ...]  # subset of names that are categorical (VARCHAR)
    history_days: int  # longest window
    descriptions: dict[str, str]  # name -> words an analyst understands


def _q(name: str) -> str:
    """Quote an identifier (config names are validated, but never trust them in SQL)."""
    return '"' + name.replace('"', '""') + '"'


def feature_spec(cfg: Config) -> FeatureSpec:
    f = cfg.settings.features
    names: list[str] = ["amount", "hour", "is_night", "is_weekend"]
    desc = {
        "amount": "amount",
        "hour": "hour of day",
        "is_night": f"at night ({f.night_start_hour}:00-{f.night_end_hour}:00)",
        "is_weekend": "on a weekend",
        "card_seconds_since_prev": "seconds since the card's previous transaction",
    }
    for w in f.card_windows_days:
        names += [
            f"card_tx_count_{w}d",
            f"card_mean_amount_{w}d",
            f"card_amount_ratio_{w}d",
            f"card_distinct_merchants_{w}d",
        ]
        desc[f"card_tx_count_{w}d"] = f"card's transactions in {w} day(s)"
        desc[f"card_mean_amount_{w}d"] = f"card's mean amount over {w} day(s)"
        desc[f"card_amount_ratio_{w}d"] = f"amount vs the card's {w}-day average"
        desc[f"card_distinct_merchants_{w}d"] = f"distinct merchants the card used in {w} day(s)"
    names.append("card_seconds_since_prev")
    for w in f.merchant_windows_days:
        names += [f"merchant_tx_count_{w}d", f"merchant_fraud_rate_{w}d"]
        desc[f"merchant_tx_count_{w}d"] = f"merchant's transactions in {w} day(s)"
        desc[f"merchant_fraud_rate_{w}d"] = f"merchant's known fraud rate over {w} day(s)"
    extra = cfg.extra_columns()
    for name in extra:
        names.append(name)
        desc[name] = name.replace("_", " ")
    categorical = tuple(n for n, k in extra.items() if k == "categorical")
    history = max([*f.card_windows_days, *f.merchant_windows_days])
    return FeatureSpec(tuple(names), categorical, history, desc)


def _window(partition: str, days: int) -> str:
    return (
        f"(PARTITION BY {partition} ORDER BY event_time "
        f"RANGE BETWEEN INTERVAL {int(days)} DAY PRECEDING AND CURRENT ROW)"
    )


def feature_sql(cfg: Config) -> str:
    """The feature query over the temp tables ``fw_target`` (ids) and the history they imply."""
    f = cfg.settings.features
    history = max([*f.card_windows_days, *f.merchant_windows_days])
    card_cols = []
    for w in f.card_windows_days:
        win = _window("card_id", w)
        card_cols += [
            f"count(*) OVER {win} AS card_tx_count_{w}d",
            f"avg(amount) OVER {win} AS card_mean_amount_{w}d",
            f"amount / nullif(avg(amount) OVER {win}, 0) AS card_amount_ratio_{w}d",
            f"count(DISTINCT merchant_id) OVER {win} AS card_distinct_merchants_{w}d",
        ]
    card_cols.append(
        "epoch(event_time) - epoch(lag(event_time) OVER "
        "(PARTITION BY card_id ORDER BY event_time, transaction_id)) AS card_seconds_since_prev"
    )
    merchant_counts = [
        f"count(*) OVER {_window('merchant_id', w)} AS merchant_tx_count_{w}d"
        for w in f.merchant_windows_days
    ]
    fraud_counts = [
        f"count(r.reported_at) FILTER (WHERE r.tx_time >= x.event_time - INTERVAL {int(w)} DAY) "
        f"AS frauds_{w}d"
        for w in f.merchant_windows_days
    ]
    fraud_rates = [
        f"coalesce(fr.frauds_{w}d, 0)::DOUBLE / m.merchant_tx_count_{w}d AS merchant_fraud_rate_{w}d"
        for w in f.merchant_windows_days
    ]
    extra = cfg.extra_columns()
    extra_cols = [
        f"t.{_q(n)}::{'DOUBLE' if k == 'numeric' else 'VARCHAR'} AS {_q(n)}"
        for n, k in extra.items()
    ]
    spec = feature_spec(cfg)
    ordered = ", ".join(_q(n) for n in spec.names if n != "amount")
    night = (
        f"(hour(x.event_time) >= {int(f.night_start_hour)} "
        f"OR hour(x.event_time) < {int(f.night_end_hour)})"
        if f.night_start_hour > f.night_end_hour
        else f"(hour(x.event_time) >= {int(f.night_start_hour)} "
        f"AND hour(x.event_time) < {int(f.night_end_hour)})"
    )
    return f"""
WITH target AS (
    SELECT t.transaction_id, t.event_time, t.card_id, t.merchant_id, t.amount
    FROM transactions t SEMI JOIN fw_target USING (transaction_id)
),
bounds AS (
    SELECT min(event_time) - INTERVAL {int(history)} DAY AS lo, max(event_time) AS hi FROM target
),
card_hist AS (
    SELECT t.transaction_id, t.event_time, t.card_id, t.merchant_id, t.amount
    FROM transactions t, bounds b
    WHERE t.event_time BETWEEN b.lo AND b.hi
      AND t.card_id IN (SELECT DISTINCT card_id FROM target)
),
card_feats AS (
    SELECT transaction_id, {", ".join(card_cols)} FROM card_hist
),
merchant_hist AS (
    SELECT t.transaction_id, t.event_time, t.merchant_id
    FROM transactions t, bounds b
    WHERE t.event_time BETWEEN b.lo AND b.hi
      AND t.merchant_id IN (SELECT DISTINCT merchant_id FROM target)
),
merchant_feats AS (
    SELECT transaction_id, {", ".join(merchant_counts)} FROM merchant_hist
),
fraud_reports AS (
    -- every fraud label as an event: which merchant, when the transaction happened, when reported
    SELECT h.merchant_id, h.event_time AS tx_time, l.reported_at
    FROM merchant_hist h
    JOIN (SELECT transaction_id, min(reported_at) AS reported_at FROM labels
          WHERE is_fraud GROUP BY transaction_id) l USING (transaction_id)
),
merchant_frauds AS (
    SELECT x.transaction_id, {", ".join(fraud_counts)}
    FROM target x JOIN fraud_reports r
      ON r.merchant_id = x.merchant_id
     AND r.tx_time <= x.event_time
     AND r.tx_time >= x.event_time - INTERVAL {int(history)} DAY
     AND r.reported_at <= x.event_time
    GROUP BY x.transaction_id
),
features AS (
    SELECT x.transaction_id, x.event_time, x.card_id, x.merchant_id, x.amount,
           hour(x.event_time)::DOUBLE AS hour,
           {night}::INT::DOUBLE AS is_night,
           (dayofweek(x.event_time) IN (0, 6))::INT::DOUBLE AS is_weekend,
           c.* EXCLUDE (transaction_id),
           m.* EXCLUDE (transaction_id),
           {", ".join([*fraud_rates, *extra_cols]) or "NULL AS _none"}
    FROM target x
    JOIN card_feats c USING (transaction_id)
    JOIN merchant_feats m USING (transaction_id)
    LEFT JOIN merchant_frauds fr USING (transaction_id)
    JOIN transactions t USING (transaction_id)
)
SELECT transaction_id, event_time, card_id, merchant_id, amount, {ordered}
FROM features
ORDER BY event_time, transaction_id
"""


def compute_features(
    con: duckdb.DuckDBPyConnection,
    cfg: Config,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    ids_table: str | None = None,
) -> pa.Table:
    """Features of the target rows: ``start <= event_time < end``, or the ids in ``ids_table``.

    Columns: the keys (transaction_id, event_time, card_id, merchant_id, amount),
    then every feature of :func:`feature_spec` in order; rows ordered by
    (event_time, transaction_id).
    """
    con.execute("DROP TABLE IF EXISTS temp.fw_target")
    if ids_table is not None:
        con.execute(
            f"CREATE TEMP TABLE fw_target AS SELECT DISTINCT transaction_id FROM {_q(ids_table)}"
        )
    else:
        con.execute(
            "CREATE TEMP TABLE fw_target AS SELECT transaction_id FROM transactions "
            "WHERE (?::TIMESTAMP IS NULL OR event_time >= ?) "
            "AND (?::TIMESTAMP IS NULL OR event_time < ?)",
            [start, start, end, end],
        )
    try:
        return con.sql(feature_sql(cfg)).to_arrow_table()
    finally:
        con.execute("DROP TABLE IF EXISTS temp.fw_target")


def iter_feature_batches(
    con: duckdb.DuckDBPyConnection, cfg: Config, ids_table: str, batch_size: int
) -> Iterator[pa.Table]:
    """Features of the ids in ``ids_table`` in time-ordered batches of at most ``batch_size``."""
    n = int(con.execute(f"SELECT count(*) FROM {_q(ids_table)}").fetchall()[0][0])
    for offset in range(0, n, batch_size):
        con.execute("DROP TABLE IF EXISTS temp.fw_feature_batch")
        con.execute(
            "CREATE TEMP TABLE fw_feature_batch AS SELECT i.transaction_id FROM "
            f"{_q(ids_table)} i JOIN transactions t USING (transaction_id) "
            "ORDER BY t.event_time, t.transaction_id LIMIT ? OFFSET ?",
            [batch_size, offset],
        )
        yield compute_features(con, cfg, ids_table="fw_feature_batch")
    con.execute("DROP TABLE IF EXISTS temp.fw_feature_batch")
