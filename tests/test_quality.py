"""Training-data quality checks: every check fails on the defect it names, and says so."""

from __future__ import annotations

import numpy as np
import polars as pl

from jobs.config import Quality
from jobs.quality import check_training_frame

FEATURES = ["amount", "distance_km", "channel"]


def frame(n: int = 2000, fraud_every: int = 50, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "amount": rng.gamma(2.0, 30.0, n),
            "distance_km": rng.exponential(10.0, n),
            "channel": rng.choice(["pos", "online", "atm"], n),
            "is_fraud": np.arange(n) % fraud_every == 0,
        }
    )


def test_clean_frame_passes_every_check() -> None:
    report = check_training_frame(frame(), FEATURES, label_coverage=1.0, policy=Quality())
    assert report.passed, report.reasons
    assert {c.name for c in report.checks} == {
        "min_rows",
        "min_frauds",
        "fraud_rate",
        "missing_rate",
        "constant_features",
        "label_coverage",
    }
    assert report.to_dict()["status"] == "passed"


def test_mostly_missing_feature_fails_and_is_named() -> None:
    f = frame()
    f = f.with_columns(
        pl.when(pl.int_range(pl.len()) % 10 != 0)
        .then(None)
        .otherwise(pl.col("distance_km"))
        .alias("distance_km")
    )
    report = check_training_frame(f, FEATURES, label_coverage=1.0, policy=Quality())
    assert not report.passed
    assert report.status == "failed"
    [reason] = report.reasons
    assert "distance_km 90.0%" in reason
    assert report.missing_rates["distance_km"] == 0.9


def test_nan_counts_as_missing() -> None:
    f = frame().with_columns(pl.lit(float("nan")).alias("distance_km"))
    report = check_training_frame(f, FEATURES, label_coverage=1.0, policy=Quality())
    assert report.missing_rates["distance_km"] == 1.0
    assert not report.passed


def test_constant_feature_fails() -> None:
    f = frame().with_columns(pl.lit("pos").alias("channel"))
    report = check_training_frame(f, FEATURES, label_coverage=1.0, policy=Quality())
    assert report.reasons == ["constant features: channel"]


def test_too_few_rows_and_frauds_and_implausible_rate() -> None:
    report = check_training_frame(
        frame(n=200, fraud_every=2), FEATURES, label_coverage=1.0, policy=Quality()
    )
    failed = {c.name for c in report.checks if not c.passed}
    assert failed == {"min_rows", "fraud_rate"}
    report = check_training_frame(
        frame(n=5000, fraud_every=100_000), FEATURES, label_coverage=1.0, policy=Quality()
    )
    failed = {c.name for c in report.checks if not c.passed}
    assert failed == {"min_frauds", "fraud_rate"}


def test_label_coverage() -> None:
    report = check_training_frame(frame(), FEATURES, label_coverage=0.5, policy=Quality())
    assert report.reasons == ["50.0% of rows have matured labels (minimum 90%)"]
