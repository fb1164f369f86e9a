"""Report metrics agree with scikit-learn and scipy; the gate decides on hand-made inputs."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from reports.compare import Comparison, MetricComparison, compare_models
from reports.drift import DriftPolicy, compute_drift
from reports.gate import GatePolicy, decide
from reports.performance import compute_performance


def scored(n: int = 5000, days: int = 6, seed: int = 0, signal: float = 0.4) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.03
    t0 = datetime(2026, 3, 2)
    return pl.DataFrame(
        {
            "transaction_id": [f"t{i}" for i in range(n)],
            "event_time": [
                t0 + timedelta(seconds=int(s)) for s in rng.integers(0, days * 86400, n)
            ],
            "card_id": [f"c{c}" for c in rng.integers(0, 400, n)],
            "amount": rng.gamma(2, 40, n),
            "is_fraud": y,
            "score": np.clip(y * signal + rng.random(n) * 0.7, 0, 1),
        }
    )


def test_performance_agrees_with_scikit_learn() -> None:
    f = scored()
    r = compute_performance(f, threshold=0.5, k=20)
    y, s = f["is_fraud"].to_numpy(), f["score"].to_numpy()
    assert r.average_precision == pytest.approx(average_precision_score(y, s))
    assert r.roc_auc == pytest.approx(roc_auc_score(y, s))
    assert r.precision_at_threshold == pytest.approx(precision_score(y, s >= 0.5))
    assert r.recall_at_threshold == pytest.approx(recall_score(y, s >= 0.5))
    assert r.f1_at_threshold == pytest.approx(f1_score(y, s >= 0.5))
    fraud_amount = f.filter(pl.col("is_fraud"))
    assert r.amount_caught == pytest.approx(
        fraud_amount.filter(pl.col("score") >= 0.5)["amount"].sum()
    )
    assert r.amount_caught + r.amount_missed == pytest.approx(fraud_amount["amount"].sum())
    assert len(r.daily) == 6 and 0 < len(r.pr_curve) <= 200


def test_precision_at_k_and_card_precision_at_k_by_hand() -> None:
    t1, t2 = datetime(2026, 3, 2, 10), datetime(2026, 3, 3, 10)
    f = pl.DataFrame(
        {
            "transaction_id": ["a", "b", "c", "d", "e", "f", "g"],
            "event_time": [t1, t1, t1, t1, t2, t2, t2],
            "card_id": ["c1", "c1", "c2", "c3", "c1", "c4", "c5"],
            "amount": [1.0] * 7,
            "is_fraud": [True, False, False, True, True, True, False],
            "score": [0.9, 0.8, 0.7, 0.1, 0.95, 0.6, 0.5],
        }
    )
    r = compute_performance(f, threshold=0.5, k=2)
    day1, day2 = r.daily
    assert day1.precision_at_k == 0.5  # a (fraud), b (legit)
    assert day1.card_precision_at_k == 0.5  # cards c1 (0.9, fraud), c2 (0.7, legit)
    assert day2.precision_at_k == 1.0  # e, f
    # day 2: c1 was caught on day 1 and is left out: top cards c4 (fraud), c5 (legit)
    assert day2.card_precision_at_k == 0.5
    assert r.card_precision_at_k == 0.5


def test_degenerate_window_has_undefined_auc() -> None:
    f = scored().with_columns(pl.lit(False).alias("is_fraud"))
    r = compute_performance(f, threshold=0.5, k=10)
    assert r.average_precision is None and r.roc_auc is None and r.pr_curve == ()


def test_drift_tests_agree_with_scipy_and_detect_shift() -> None:
    rng = np.random.default_rng(1)
    ref = pl.DataFrame(
        {
            "x": rng.normal(0, 1, 4000),
            "same": rng.normal(0, 1, 4000),
            "cat": rng.choice(["a", "b", "c"], 4000, p=[0.6, 0.3, 0.1]),
        }
    )
    cur = pl.DataFrame(
        {
            "x": rng.normal(0.5, 1, 3000),
            "same": rng.normal(0, 1, 3000),
            "cat": rng.choice(["a", "b", "c", "new"], 3000, p=[0.3, 0.3, 0.2, 0.2]),
        }
    )
    for test in ("ks", "wasserstein"):
        res = compute_drift(
            ref,
            cur,
            numeric=["x", "same"],
            categorical=["cat"],
            policy=DriftPolicy(numeric_test=test),
            score_column=None,
        )
        by = {f.name: f for f in res.features}
        assert by["x"].drifted and not by["same"].drifted
        if test == "ks":
            assert by["x"].p_value == pytest.approx(
                stats.ks_2samp(ref["x"], cur["x"], method="asymp").pvalue
            )
        else:
            expected = stats.wasserstein_distance(ref["x"], cur["x"]) / np.std(ref["x"].to_numpy())
            # 4,000 distinct values are sketched in 512 slices: within 1%
            assert by["x"].statistic == pytest.approx(expected, rel=0.01)
    cat = {f.name: f for f in res.features}["cat"]
    assert cat.drifted and cat.test == "jensenshannon"
    assert cat.statistic == pytest.approx(jensenshannon(cat.ref_share, cat.cur_share))
    assert "other" in cat.bin_labels  # the unseen category is grouped
    assert cat.psi > 0.2 and cat.psi_flag
    chi = compute_drift(
        ref,
        cur,
        numeric=[],
        categorical=["cat"],
        policy=DriftPolicy(categorical_test="chi2"),
        score_column=None,
    )
    assert chi.features[0].p_value is not None and chi.features[0].p_value < 0.05
    assert res.share_drifted == pytest.approx(2 / 3) and res.dataset_drift


def test_psi_and_missing_rates_by_hand() -> None:
    ref = pl.DataFrame({"x": [1.0, 2.0, 3.0, 4.0] * 25})
    cur = pl.DataFrame({"x": [1.0, 1.0, None, 4.0] * 25})
    res = compute_drift(
        ref, cur, numeric=["x"], categorical=[], policy=DriftPolicy(bins=4), score_column=None
    )
    f = res.features[0]
    assert f.ref_missing_rate == 0 and f.cur_missing_rate == 0.25
    ref_share = np.array(f.ref_share)
    cur_share = np.array(f.cur_share)
    eps = 1e-4
    expected = np.sum(
        (np.maximum(cur_share, eps) - np.maximum(ref_share, eps))
        * np.log(np.maximum(cur_share, eps) / np.maximum(ref_share, eps))
    )
    assert f.psi == pytest.approx(expected)
    assert f.bin_labels[-1] == "missing" and f.cur_share[-1] == 0.25


def test_no_drift_on_the_same_distribution_and_score_reported_apart() -> None:
    rng = np.random.default_rng(2)
    a = pl.DataFrame({"x": rng.normal(size=3000), "score": rng.random(3000)})
    b = pl.DataFrame({"x": rng.normal(size=3000), "score": rng.random(3000) ** 3})
    res = compute_drift(a, b, numeric=["x"], categorical=[], policy=DriftPolicy())
    assert not res.dataset_drift and res.score is not None and res.score.drifted
    assert [f.name for f in res.features] == ["x"]


def test_bootstrap_comparison_matches_point_metrics() -> None:
    base = scored(n=8000, days=10, seed=3)
    rng = np.random.default_rng(4)
    y = base["is_fraud"].to_numpy()
    frame = base.with_columns(
        pl.Series("score_candidate", np.clip(y * 0.6 + rng.random(len(y)) * 0.7, 0, 1)),
        pl.Series("score_champion", np.clip(y * 0.2 + rng.random(len(y)) * 0.7, 0, 1)),
    )
    c = compare_models(frame, threshold=0.5, k=30, bootstrap_samples=200, seed=1)
    ap = c.get("average_precision")
    assert ap is not None
    assert ap.candidate == pytest.approx(average_precision_score(y, frame["score_candidate"]))
    assert ap.difference is not None and ap.ci_low is not None and ap.ci_high is not None
    assert ap.ci_low < ap.difference < ap.ci_high and ap.ci_low > 0
    assert c.days == 10 and c.bootstrap_samples == 200


def _comparison(diff: float, low: float, high: float, secondary: float = 0.0) -> Comparison:
    return Comparison(
        metrics=(
            MetricComparison("average_precision", 0.5 + diff, 0.5, diff, low, high),
            MetricComparison("card_precision_at_k", 0.3 + secondary, 0.3, secondary, None, None),
            MetricComparison("recall_at_threshold", 0.6, 0.6, 0.0, None, None),
        ),
        n=1000,
        n_frauds=50,
        days=14,
        threshold=0.5,
        k=100,
        bootstrap_samples=100,
        confidence=0.95,
    )


GOOD = {
    "candidate_quality_passed": True,
    "quality_reasons": [],
    "labelled_days": 14,
    "n_frauds": 50,
}


def test_gate_passes_a_clear_win() -> None:
    v = decide(_comparison(0.05, 0.02, 0.08), policy=GatePolicy(), **GOOD)  # type: ignore[arg-type]
    assert v.passed
    assert any("beats the champion" in r for r in v.reasons)


@pytest.mark.parametrize(
    ("comparison", "kwargs", "expected"),
    [
        (_comparison(-0.01, -0.03, 0.01), {}, "does not beat the champion"),
        (_comparison(0.01, -0.01, 0.03), {}, "within noise"),
        (
            _comparison(0.05, 0.02, 0.08, secondary=-0.05),
            {},
            "worse than the allowed regression 0.020",
        ),
        (
            _comparison(0.05, 0.02, 0.08),
            {"candidate_quality_passed": False, "quality_reasons": ["distance_km 90% missing"]},
            "training data quality failed: distance_km 90% missing",
        ),
        (_comparison(0.05, 0.02, 0.08), {"labelled_days": 3}, "3 labelled day(s)"),
        (_comparison(0.05, 0.02, 0.08), {"n_frauds": 5}, "5 fraud(s) in the window"),
        (None, {}, "no labelled out-of-time window"),
    ],
)
def test_gate_refuses_with_the_reason(
    comparison: Comparison | None, kwargs: dict, expected: str
) -> None:
    args = {**GOOD, **kwargs}
    v = decide(comparison, policy=GatePolicy(), **args)
    assert not v.passed
    assert expected in v.reasons[0], v.reasons


def test_gate_margin_and_first_model() -> None:
    policy = GatePolicy(min_improvement=0.1)
    v = decide(_comparison(0.05, 0.02, 0.08), policy=policy, **GOOD)  # type: ignore[arg-type]
    assert not v.passed and "required margin 0.100" in v.reasons[0]
    first = decide(
        None,
        policy=GatePolicy(),
        candidate_quality_passed=True,
        quality_reasons=[],
        candidate_validation={"average_precision": 0.4, "roc_auc": 0.9},
        first_model=True,
    )
    assert first.passed and "no champion yet" in first.reasons[-1]
    weak = decide(
        None,
        policy=GatePolicy(),
        candidate_quality_passed=True,
        quality_reasons=[],
        candidate_validation={"average_precision": 0.01, "roc_auc": 0.9},
        first_model=True,
    )
    assert not weak.passed and "below the floor" in weak.reasons[0]


def test_performance_from_warehouse_aggregates_matches_the_rows() -> None:
    """The report's path (DuckDB reduces the window, reports.aggregated computes) gives the
    row-by-row figures: exact per day, AP and ROC AUC within the 1/1000 score bins."""
    import duckdb

    from jobs.performance_data import aggregates
    from reports.aggregated import performance_from_aggregates

    f = scored(n=20_000, days=8, seed=5)
    con = duckdb.connect()
    con.register("f", f.to_arrow())
    con.execute(
        "CREATE TABLE transactions AS SELECT transaction_id, event_time, card_id, amount FROM f"
    )
    con.execute(
        "CREATE TABLE scores AS SELECT transaction_id, 'fraud' AS model_name, 1 AS model_version, "
        "'champion' AS role, score FROM f"
    )
    con.execute(
        "CREATE TABLE labels AS SELECT transaction_id, is_fraud, event_time AS reported_at "
        "FROM f WHERE is_fraud"
    )
    agg = aggregates(
        con,
        model_name="fraud",
        where="s.role = 'champion'",
        params=[],
        start=datetime(2026, 3, 1),
        end=datetime(2026, 4, 1),
        threshold=0.5,
        k=25,
    )
    assert agg is not None and agg.version == 1
    fast = performance_from_aggregates(
        agg.day_stats, agg.bins, agg.cards, agg.top, threshold=0.5, k=25
    )
    slow = compute_performance(f, threshold=0.5, k=25)
    assert fast.average_precision == pytest.approx(slow.average_precision, abs=2e-3)
    assert fast.roc_auc == pytest.approx(slow.roc_auc, abs=1e-3)
    for name in (
        "n",
        "n_frauds",
        "precision_at_threshold",
        "recall_at_threshold",
        "f1_at_threshold",
        "precision_at_k",
        "card_precision_at_k",
        "amount_caught",
        "amount_missed",
        "alerts_per_day",
    ):
        assert getattr(fast, name) == pytest.approx(getattr(slow, name)), name
    for a, b in zip(fast.daily, slow.daily, strict=True):
        assert (a.day, a.n, a.frauds, a.alerts) == (b.day, b.n, b.frauds, b.alerts)
        assert a.card_precision_at_k == pytest.approx(b.card_precision_at_k)
    current = [s for s in fast.sweep if s.current]
    assert len(current) == 1 and current[0].threshold == 0.5 and current[0].budget == 25
    assert [w.start.weekday() for w in fast.weekly] == [0] * len(fast.weekly)
    assert sum(w.n for w in fast.weekly) == fast.n
