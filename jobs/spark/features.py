"""The point-in-time features, computed by Spark: :mod:`jobs.feature_reference` as Spark
window functions, for the new rows of a run and for training windows alike.

The definitions are the reference's (names, order, types and descriptions come from
:func:`jobs.features.feature_spec`); only the execution differs:

- a card's windows ``[t - w, t]`` are ``RANGE`` frames over its history, ordered by the
  event time in microseconds (peers at the same instant included, as in DuckDB); its
  distinct merchants are the size of the frame's set of merchants (Spark has no
  ``count(DISTINCT) OVER``);
- means are exact: amounts as ``DECIMAL(18, 4)`` summed exactly, then divided (amounts above
  10^14 left out, as :func:`jobs.feature_sql.amount_exact` leaves them);
- a merchant's delayed window ``(t - d - w, t - d]`` is the frame from ``(d + w)`` days
  less one microsecond before ``t`` to ``d`` days before it (timestamps are whole
  microseconds, so the open end is exact);
- the fraud counts join each target with its merchant's fraud reports (few), counting only
  labels reported by ``t``.

Only the history the targets need is read: the transactions of their cards (merchants) in
the longest card (merchant + delay) window before the first target, up to the last. Spark
shuffles by card and by merchant; a card's or a merchant's history must fit one task's
memory (a merchant with millions of transactions a month is one large partition: see the
README's plan).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from jobs.config import Config, Features
from jobs.features import feature_spec

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

DAY_US = 86_400_000_000


def _us(col: str) -> Column:
    from pyspark.sql import functions as F

    return F.unix_micros(F.col(col).cast("timestamp"))


def _time_of_day(f: Features) -> list[Column]:
    from pyspark.sql import functions as F

    hour = F.hour("event_time")
    start, end = int(f.night_start_hour), int(f.night_end_hour)
    night = (hour >= start) | (hour < end) if start > end else (hour >= start) & (hour < end)
    return [
        hour.cast("double").alias("hour"),
        night.cast("int").cast("double").alias("is_night"),
        F.dayofweek("event_time").isin(1, 7).cast("int").cast("double").alias("is_weekend"),
    ]


def _card_features(cfg: Config, hist: DataFrame) -> DataFrame:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spec = feature_spec(cfg)
    by_card = Window.partitionBy("card_id").orderBy("us")
    cols: list[Column] = []
    for w in cfg.settings.features.card_windows_days:
        win = by_card.rangeBetween(-int(w) * DAY_US, 0)
        total, n = F.sum("amount_d").over(win), F.count("amount_d").over(win)
        mean = F.when(n > 0, total.cast("double") / n)
        cols += [
            F.count(F.lit(1)).over(win).alias(f"card_tx_count_{w}d"),
            mean.alias(f"card_mean_amount_{w}d"),
            (F.col("amount") / F.when(mean != 0, mean)).alias(f"card_amount_ratio_{w}d"),
            F.size(F.collect_set("merchant_id").over(win))
            .cast("bigint")
            .alias(f"card_distinct_merchants_{w}d"),
        ]
    same = F.count(F.lit(1)).over(Window.partitionBy("card_id", "us"))
    prev = F.when(same > 1, F.col("us")).otherwise(F.lag("us").over(by_card))
    cols.append(prev.alias("prev_us"))
    out = hist.select("transaction_id", "us", *cols)
    seconds = F.when(
        F.col("prev_us") >= F.col("us") - spec.card_history_days * DAY_US,
        (F.col("us") - F.col("prev_us")) / 1e6,
    )
    return out.withColumn("card_seconds_since_prev", seconds).drop("prev_us", "us")


def _merchant_features(cfg: Config, hist: DataFrame) -> DataFrame:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    delay = int(cfg.settings.source.label_delay_days)
    by_merchant = Window.partitionBy("merchant_id").orderBy("us")
    cols = []
    for w in cfg.settings.features.merchant_windows_days:
        now = by_merchant.rangeBetween(-int(w) * DAY_US, 0)
        delayed = by_merchant.rangeBetween(-(int(w) + delay) * DAY_US + 1, -delay * DAY_US)
        cols += [
            F.count(F.lit(1)).over(now).alias(f"merchant_tx_count_{w}d"),
            F.count(F.lit(1)).over(delayed).alias(f"mdc_{w}"),
        ]
    return hist.select("transaction_id", *cols)


def _merchant_frauds(cfg: Config, target: DataFrame, hist: DataFrame, labels: DataFrame) -> Any:
    """Per target, its merchant's frauds (reported by ``t``) among its transactions in
    ``(t - d - w, t - d]``, one column per window."""
    from pyspark.sql import functions as F

    f = cfg.settings.features
    delay = int(cfg.settings.source.label_delay_days)
    longest = max(f.merchant_windows_days) + delay
    reports = (
        labels.filter(F.col("is_fraud"))
        .groupBy("transaction_id")
        .agg(F.min("reported_at").alias("reported_at"))
        .join(hist.select("transaction_id", "merchant_id", "us"), "transaction_id")
        .select(
            F.col("merchant_id").alias("r_merchant"),
            F.col("us").alias("tx_us"),
            _us("reported_at").alias("rep_us"),
        )
    )
    x = target.select("transaction_id", "merchant_id", "us")
    joined = x.join(
        F.broadcast(reports),
        (F.col("r_merchant") == F.col("merchant_id"))
        & (F.col("tx_us") <= F.col("us") - delay * DAY_US)
        & (F.col("tx_us") > F.col("us") - longest * DAY_US)
        & (F.col("rep_us") <= F.col("us")),
    )
    counts = [
        F.count(F.when(F.col("tx_us") > F.col("us") - (int(w) + delay) * DAY_US, 1)).alias(
            f"frauds_{w}d"
        )
        for w in f.merchant_windows_days
    ]
    return joined.groupBy("transaction_id").agg(*counts)


def spark_features(
    cfg: Config, transactions: DataFrame, labels: DataFrame, target_ids: DataFrame
) -> DataFrame:
    """The features of the transactions whose ids are in ``target_ids`` (a frame with a
    ``transaction_id`` column), over the history in ``transactions`` and ``labels``.

    Columns: the keys (transaction_id, event_time, card_id, merchant_id, amount), then every
    feature of :func:`~jobs.features.feature_spec` in order; no particular row order."""
    from pyspark.sql import functions as F

    spec = feature_spec(cfg)
    f = cfg.settings.features
    delay = int(spec.label_delay_days)
    extras = cfg.extra_columns()
    keys = ["transaction_id", "event_time", "card_id", "merchant_id", "amount"]
    tx = transactions.select(*keys, *extras).withColumn("us", _us("event_time"))
    target = tx.join(target_ids.select("transaction_id").distinct(), "transaction_id", "left_semi")
    bounds = target.agg(F.min("us"), F.max("us")).first()
    first, last = (
        (0, 0) if bounds is None or bounds[0] is None else (int(bounds[0]), int(bounds[1]))
    )
    amount_d = F.expr("try_cast(amount AS DECIMAL(18, 4))")

    def history(by: str, days: int) -> DataFrame:
        lo = first - days * DAY_US
        rows = tx.filter((F.col("us") >= lo) & (F.col("us") <= last))
        return rows.join(target.select(by).distinct(), by, "left_semi")

    card_hist = history("card_id", spec.card_history_days).withColumn("amount_d", amount_d)
    merchant_hist = history("merchant_id", max(f.merchant_windows_days) + delay)
    card = _card_features(cfg, card_hist)
    merchant = _merchant_features(cfg, merchant_hist)
    frauds = _merchant_frauds(cfg, target, merchant_hist, labels)
    rates = [
        F.coalesce(
            F.coalesce(F.col(f"frauds_{w}d"), F.lit(0)).cast("double")
            / F.when(F.col(f"mdc_{w}") != 0, F.col(f"mdc_{w}")),
            F.lit(0.0),
        ).alias(f"merchant_fraud_rate_{w}d")
        for w in f.merchant_windows_days
    ]
    typed_extras = [
        F.col(n).cast("double" if kind == "numeric" else "string").alias(n)
        for n, kind in extras.items()
    ]
    out = (
        target.join(card, "transaction_id")
        .join(merchant, "transaction_id")
        .join(frauds, "transaction_id", "left")
        .select("*", *_time_of_day(cfg.settings.features), *rates)
    )
    out = out.select(*[c for c in out.columns if c not in extras], *typed_extras)
    return out.select(*keys, *[n for n in spec.names if n != "amount"])


def window_ids(transactions: DataFrame, start: datetime, end: datetime) -> DataFrame:
    """The ids of the transactions with ``start <= event_time < end`` (a training window)."""
    from pyspark.sql import functions as F

    t = F.col("event_time")
    lo = F.lit(start.isoformat(sep=" ")).cast("timestamp_ntz")
    hi = F.lit(end.isoformat(sep=" ")).cast("timestamp_ntz")
    return transactions.filter((t >= lo) & (t < hi)).select("transaction_id")
