"""Training sets built by Spark, for months of history; training on the driver from them.

The window and its label cutoff are :func:`jobs.training.resolve_window`'s (run through
DuckDB views over the Parquet tables), the features :func:`jobs.spark.features.spark_features`
over the window, and a transaction's label the latest reported by the cutoff (none: legit),
as :func:`jobs.training.load_training_data` builds them: on the same data the frame is the
same, row for row.

The frame is trained on by the driver (:func:`jobs.training.fit` with the weights), so it
must fit the driver's memory: ``[spark] max_training_rows`` caps it. Past the cap every
fraud is kept and legitimate rows are sampled at the rate that fits (a seeded Bernoulli
sample, ``[training] seed``); each kept legitimate row carries ``weight`` = 1 / rate (frauds
1), so the weights add up to the full set, and :class:`Sampling` says what was done for the
lineage. How big: about 540 bytes of Python driver memory per training row (frame, sorted
copy, LightGBM's matrix and bins; ``benchmarks/engines.py --driver-rows``), and the rows pass
through the JVM driver when collected (about 255 bytes a row as Arrow).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import polars as pl

from jobs.config import Config
from jobs.features import feature_spec
from jobs.spark.features import spark_features, window_ids
from jobs.training import TrainingData, TrainingWindow, fingerprint

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@dataclass(frozen=True)
class Sampling:
    """What the driver trains on, against the whole window: the lineage records it."""

    rows_in_window: int
    frauds_in_window: int
    legit_rate: float  # 1.0: nothing sampled
    rows_kept: int
    seed: int

    @property
    def sampled(self) -> bool:
        return self.legit_rate < 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": "spark",
            "rows_in_window": self.rows_in_window,
            "frauds_in_window": self.frauds_in_window,
            "legit_rate": self.legit_rate,
            "rows_kept": self.rows_kept,
            "seed": self.seed,
            "weights": "legit rows weigh 1/legit_rate, frauds 1" if self.sampled else "none",
        }


def labelled(feats: DataFrame, labels: DataFrame, window: TrainingWindow) -> Any:
    """Features with ``is_fraud``: the latest label reported by the cutoff, else legit."""
    from pyspark.sql import functions as F

    cutoff = F.lit(window.label_cutoff.isoformat(sep=" ")).cast("timestamp_ntz")
    latest = (
        labels.filter(F.col("reported_at") <= cutoff)
        .groupBy("transaction_id")
        .agg(F.max_by("is_fraud", "reported_at").alias("is_fraud"))
    )
    return feats.join(latest, "transaction_id", "left").fillna(False, subset=["is_fraud"])


def spark_training_set(
    spark: SparkSession,
    cfg: Config,
    window: TrainingWindow,
    transactions: DataFrame,
    labels: DataFrame,
) -> tuple[TrainingData, Sampling]:
    """The window's training frame on the driver (sampled past ``max_training_rows``)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    s = cfg.settings
    spec = feature_spec(cfg)
    feats = spark_features(
        cfg, transactions, labels, window_ids(transactions, window.start, window.end)
    )
    full = labelled(feats, labels, window).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts = full.agg(F.count("*"), F.count(F.when(F.col("is_fraud"), 1))).first()
        n, frauds = (int(counts[0]), int(counts[1])) if counts else (0, 0)
        cap = s.spark.max_training_rows
        rate = 1.0 if n <= cap or n == frauds else max(0.0, (cap - frauds) / (n - frauds))
        kept = full
        if rate < 1.0:
            keep = F.col("is_fraud") | (F.rand(s.training.seed) < rate)
            kept = full.filter(keep)
        kept = kept.withColumn(
            "weight", F.when(F.col("is_fraud"), F.lit(1.0)).otherwise(F.lit(1.0 / rate))
        )
        table = kept.toArrow()
    finally:
        full.unpersist()
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    frame = frame.sort(["event_time", "transaction_id"])
    matured = window.data_clock - timedelta(days=s.source.label_delay_days)
    coverage = float(frame.select((pl.col("event_time") <= matured).mean()).item() or 0.0)
    first = transactions.agg(F.min("event_time")).first()
    start = first[0] if first else None
    warm_up = (
        float(
            frame.select(
                (pl.col("event_time") < start + timedelta(days=spec.history_days)).mean()
            ).item()
            or 0.0
        )
        if frame.height and start is not None
        else 0.0
    )
    data = TrainingData(
        window=window,
        frame=frame.drop("weight"),
        features=spec.names,
        categorical=spec.categorical,
        label_coverage=coverage if frame.height else 0.0,
        fingerprint=fingerprint(frame, spec.names),
        warm_up_share=warm_up,
    )
    sampling = Sampling(n, frauds, rate, frame.height, s.training.seed)
    return data, sampling


def weights(data: TrainingData, sampling: Sampling) -> pl.Series:
    """Each row's weight in ``data.frame``'s order (1 everywhere when nothing was sampled)."""
    rate = sampling.legit_rate
    return data.frame.select(
        pl.when(pl.col("is_fraud")).then(1.0).otherwise(1.0 / rate if rate > 0 else 0.0)
    ).to_series()
