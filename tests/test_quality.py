"""Training-data quality checks: every check fails on the defect it names, and says so."""

from __future__ import annotations

import numpy as np
import polars as pl

from jobs.config import Quality
from jobs.quality import FeatureProfile, check_training_frame, reference_profile

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
        "structural_missing",
        "structural_constant",
        "warm_up",
    }
    assert report.to_dict()["status"] == "passed"
    assert report.warnings == []


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


def test_constant_feature_without_reference_is_a_warning_not_a_refusal() -> None:
    f = frame().with_columns(pl.lit("pos").alias("channel"))
    report = check_training_frame(f, FEATURES, label_coverage=1.0, policy=Quality())
    assert report.passed, report.reasons
    assert report.warnings == ["constant features, a model learns nothing from them: channel"]


def test_constant_in_the_reference_too_is_structural() -> None:
    f = frame().with_columns(pl.lit("pos").alias("channel"))
    base = check_training_frame(f, FEATURES, label_coverage=1.0, policy=Quality())
    reference = reference_profile(base.to_dict())  # as recorded with the champion
    assert reference["channel"] == FeatureProfile(0.0, True)
    report = check_training_frame(
        f, FEATURES, label_coverage=1.0, policy=Quality(), reference=reference
    )
    assert report.passed and report.warnings


def test_feature_that_became_constant_fails() -> None:
    healthy = check_training_frame(frame(), FEATURES, label_coverage=1.0, policy=Quality())
    broken = frame().with_columns(pl.lit(0.0).alias("distance_km"))
    report = check_training_frame(
        broken,
        FEATURES,
        label_coverage=1.0,
        policy=Quality(),
        reference=reference_profile(healthy.to_dict()),
    )
    assert not report.passed
    assert report.reasons == [
        "became constant (they varied in the champion's training data): distance_km"
    ]


def test_missing_as_in_the_reference_warns_and_newly_missing_fails() -> None:
    sparse = frame().with_columns(
        pl.when(pl.int_range(pl.len()) % 2 == 0)
        .then(None)
        .otherwise(pl.col("distance_km"))
        .alias("distance_km")
    )
    ref_sparse = reference_profile(
        check_training_frame(sparse, FEATURES, label_coverage=1.0, policy=Quality()).to_dict()
    )
    again = check_training_frame(
        sparse, FEATURES, label_coverage=1.0, policy=Quality(), reference=ref_sparse
    )
    assert again.passed
    assert again.warnings == [
        "mostly missing, as in the champion's training data: distance_km 50.0% (was 50.0%)"
    ]
    ref_healthy = reference_profile(
        check_training_frame(frame(), FEATURES, label_coverage=1.0, policy=Quality()).to_dict()
    )
    broken = check_training_frame(
        sparse, FEATURES, label_coverage=1.0, policy=Quality(), reference=ref_healthy
    )
    assert not broken.passed
    assert broken.reasons == [
        "features missing more than 20% of the time (the champion's training data): "
        "distance_km 50.0% (was 0.0%)"
    ]


def test_old_versions_without_a_profile_still_give_missing_rates() -> None:
    ref = reference_profile({"status": "passed", "missing_rates": {"distance_km": 0.0}})
    assert ref == {"distance_km": FeatureProfile(0.0, None)}
    f = frame().with_columns(pl.lit(0.0).alias("distance_km"))
    report = check_training_frame(f, FEATURES, label_coverage=1.0, policy=Quality(), reference=ref)
    assert report.passed  # constancy unknown in the reference: a warning
    assert report.warnings


def test_warm_up_rows_warn() -> None:
    report = check_training_frame(
        frame(), FEATURES, label_coverage=1.0, policy=Quality(), warm_up_share=0.25
    )
    assert report.passed
    assert report.warnings == [
        "25.0% of rows are from the data's first days, when their look-back windows are not "
        "yet full"
    ]


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
