"""Point-in-time features: one definition, for training and scoring alike (stated in SQL by
:mod:`jobs.feature_sql`, computed fast by the sweep, :mod:`jobs.sweep`).

A transaction's features at its time ``t`` use only what was known at ``t``:

- the transactions of the same card (or merchant) with ``event_time`` in
  ``[t - w, t]`` for a window of ``w`` days, the current one included. Other
  transactions at exactly the same instant ``t`` count too (they happened "at
  t"); nothing later ever does;
- fraud labels whose ``reported_at`` is at or before ``t``.

A merchant's risk allows for the label delay ``d`` (``[source]
label_delay_days``): labels arrive days after the transaction, so a window
ending at ``t`` would count last week's transactions as legitimate. The risk
over ``w`` days is the merchant's frauds (reported by ``t``) among its
transactions in ``(t - d - w, t - d]``, over the number of those transactions
(0 when there were none): a window that has had time to fill. The merchant's
current transaction counts stay undelayed, ``[t - w, t]``.

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

# the feature definitions' version, recorded with every model: 2 = merchant risk over
# windows that end the label delay before t (1: windows that ended at t)
FEATURE_VERSION = 2


@dataclass(frozen=True)
class FeatureSpec:
    names: tuple[str, ...]  # model input columns, in order
    categorical: tuple[str, ...]  # subset of names that are categorical (VARCHAR)
    history_days: int  # longest look-back: a card window, or a merchant window plus the delay
    card_history_days: int  # longest card window
    label_delay_days: int  # d: merchant risk windows end d days before the transaction
    descriptions: dict[str, str]  # name -> words an analyst understands


def quote_ident(name: str) -> str:
    """Quote an identifier (config names are validated, but never trust them in SQL)."""
    return '"' + name.replace('"', '""') + '"'


def feature_spec(cfg: Config) -> FeatureSpec:
    f = cfg.settings.features
    delay = int(cfg.settings.source.label_delay_days)
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
        desc[f"merchant_fraud_rate_{w}d"] = (
            f"merchant's fraud rate over {w} day(s) ending {delay} day(s) ago"
            if delay
            else f"merchant's known fraud rate over {w} day(s)"
        )
    extra = cfg.extra_columns()
    for name in extra:
        names.append(name)
        desc[name] = name.replace("_", " ")
    categorical = tuple(n for n, k in extra.items() if k == "categorical")
    card_history = max(f.card_windows_days)
    history = max(card_history, max(f.merchant_windows_days) + delay)
    return FeatureSpec(tuple(names), categorical, history, card_history, delay, desc)


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

    When the warehouse's keyed state is current (:func:`jobs.keys.keys_current`), the
    features come from the sweep (:mod:`jobs.sweep`: integer columns, a linear pass), else
    from :func:`jobs.feature_sql.feature_sql`; both give the same values. ``ids_table`` may carry the rows'
    ``event_time`` too: then only the transactions of that time range are searched for them.
    """
    from jobs.feature_sql import sql_features
    from jobs.feature_sweep import swept_features
    from jobs.keys import keys_current

    if keys_current(con):
        swept = swept_features(con, cfg, start=start, end=end, ids_table=ids_table)
        if swept is not None:
            return swept
    return sql_features(con, cfg, start=start, end=end, ids_table=ids_table)


def iter_feature_days(
    con: duckdb.DuckDBPyConnection, cfg: Config, start: datetime, end: datetime, max_rows: int
) -> Iterator[pa.Table]:
    """Features of the rows with ``start <= event_time < end``, in time order, a run of whole
    days at a time holding at most ``max_rows`` rows (one day more if a single day holds
    more): what one sweep holds in memory stays bounded however long the range."""
    days = con.execute(
        "SELECT event_time::DATE AS day, count(*) FROM transactions "
        "WHERE event_time >= ? AND event_time < ? GROUP BY ALL ORDER BY day",
        [start, end],
    ).fetchall()
    lo, rows = start, 0
    for day, n in days:
        day_start = max(start, datetime.combine(day, datetime.min.time()))
        if rows and rows + n > max_rows:
            yield compute_features(con, cfg, start=lo, end=day_start)
            lo, rows = day_start, 0
        rows += n
    if rows:
        yield compute_features(con, cfg, start=lo, end=end)


def iter_feature_batches(
    con: duckdb.DuckDBPyConnection, cfg: Config, ids_table: str, batch_size: int
) -> Iterator[pa.Table]:
    """Features of the ids in ``ids_table`` in time-ordered batches of at most ``batch_size``."""
    n = int(con.execute(f"SELECT count(*) FROM {quote_ident(ids_table)}").fetchall()[0][0])
    for offset in range(0, n, batch_size):
        con.execute("DROP TABLE IF EXISTS temp.fw_feature_batch")
        con.execute(
            "CREATE TEMP TABLE fw_feature_batch AS SELECT i.transaction_id, t.event_time FROM "
            f"{quote_ident(ids_table)} i JOIN transactions t USING (transaction_id) "
            "ORDER BY t.event_time, t.transaction_id LIMIT ? OFFSET ?",
            [batch_size, offset],
        )
        yield compute_features(con, cfg, ids_table="fw_feature_batch")
    con.execute("DROP TABLE IF EXISTS temp.fw_feature_batch")
