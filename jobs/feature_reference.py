"""The features stated the plain way: ``RANGE`` window functions over the whole history.

This is the specification :func:`jobs.feature_sql.feature_sql` must match value
for value. The merchant risk's delayed window ``(t - d - w, t - d]`` is a plain
join of each target with its merchant's transactions (a ``RANGE`` frame is
closed at both ends). It is obviously correct and slow (it computes every window for
every transaction in the warehouse, then keeps the target rows), so nothing
in the product runs it: the tests compare the fast query with it, and
``benchmarks/features.py`` times both and checks they are identical.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from jobs.config import Config
from jobs.feature_sql import (
    amount_exact,
    extra_feature_columns,
    merchant_fraud_ctes,
    merchant_fraud_rates,
    time_of_day_columns,
)
from jobs.features import feature_spec, quote_ident


def _window(partition: str, days: int) -> str:
    return (
        f"(PARTITION BY {partition} ORDER BY event_time "
        f"RANGE BETWEEN INTERVAL {int(days)} DAY PRECEDING AND CURRENT ROW)"
    )


def reference_feature_sql(cfg: Config) -> str:
    """The feature query for the ids in the temp table ``fw_target``, over every transaction."""
    f = cfg.settings.features
    spec = feature_spec(cfg)
    windows = []
    for w in f.card_windows_days:
        win = _window("card_id", w)
        windows += [
            f"count(*) OVER {win} AS card_tx_count_{w}d",
            f"avg(amount_d) OVER {win} AS card_mean_amount_{w}d",
            f"amount / nullif(avg(amount_d) OVER {win}, 0) AS card_amount_ratio_{w}d",
            f"count(DISTINCT merchant_id) OVER {win} AS card_distinct_merchants_{w}d",
        ]
    windows.append(
        "CASE WHEN count(*) OVER (PARTITION BY card_id, event_time) > 1 THEN event_time "
        "ELSE lag(event_time) OVER (PARTITION BY card_id ORDER BY event_time) END AS prev_time"
    )
    windows += [
        f"count(*) OVER {_window('merchant_id', w)} AS merchant_tx_count_{w}d"
        for w in f.merchant_windows_days
    ]
    delay = spec.label_delay_days
    longest = max(f.merchant_windows_days) + delay
    delayed_counts = ", ".join(
        f"count(h.transaction_id) FILTER (WHERE h.event_time > x.event_time - INTERVAL {int(w) + delay} DAY) "
        f"AS mdc_{w}"
        for w in f.merchant_windows_days
    )
    extra_cols = extra_feature_columns(cfg.extra_columns())
    ordered = ", ".join(quote_ident(n) for n in spec.names if n != "amount")
    return f"""
WITH everything AS (
    SELECT *, {amount_exact()} AS amount_d FROM transactions
),
windowed AS (
    SELECT transaction_id, {", ".join(windows)} FROM everything
),
target AS (
    SELECT t.* FROM transactions t SEMI JOIN fw_target USING (transaction_id)
),
merchant_delayed AS (
    -- the merchant's transactions in (t - d - w, t - d], whose labels have had time to arrive
    SELECT x.transaction_id, {delayed_counts}
    FROM target x LEFT JOIN transactions h
      ON h.merchant_id = x.merchant_id
     AND h.event_time <= x.event_time - INTERVAL {int(delay)} DAY
     AND h.event_time > x.event_time - INTERVAL {int(longest)} DAY
    GROUP BY x.transaction_id
),
{merchant_fraud_ctes(f, delay, "transactions")}
features AS (
    SELECT x.transaction_id, x.event_time, x.card_id, x.merchant_id, x.amount,
           {time_of_day_columns(f)},
           m.* EXCLUDE (transaction_id, prev_time),
           CASE WHEN m.prev_time >= x.event_time - INTERVAL {spec.card_history_days} DAY
                THEN (epoch_us(x.event_time) - epoch_us(m.prev_time)) / 1e6 END
           AS card_seconds_since_prev,
           {", ".join([*merchant_fraud_rates(f, "md"), *extra_cols])}
    FROM target x
    JOIN windowed m USING (transaction_id)
    JOIN merchant_delayed md USING (transaction_id)
    LEFT JOIN merchant_frauds fr USING (transaction_id)
)
SELECT transaction_id, event_time, card_id, merchant_id, amount, {ordered}
FROM features
ORDER BY event_time, transaction_id
"""


def reference_features(con: duckdb.DuckDBPyConnection, cfg: Config, ids_table: str) -> pa.Table:
    """The features of the ids in ``ids_table``, computed the plain way."""
    con.execute("DROP TABLE IF EXISTS temp.fw_target")
    con.execute(
        f"CREATE TEMP TABLE fw_target AS SELECT DISTINCT transaction_id FROM {quote_ident(ids_table)}"
    )
    try:
        return con.sql(reference_feature_sql(cfg)).to_arrow_table()
    finally:
        con.execute("DROP TABLE IF EXISTS temp.fw_target")
