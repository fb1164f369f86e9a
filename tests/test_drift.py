"""Drift that tells the truth: every kind of injected drift is flagged, nothing else is,
and the profiles a report reads give the same answers as the rows they summarise."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from jobs.config import Config
from jobs.features import feature_spec
from jobs.profiles import reference_window
from jobs.warehouse import open_warehouse
from reports.drift import DriftPolicy, compute_drift, drift_from_profiles
from reports.html import render_drift
from reports.profile import (
    merge_profiles,
    numeric_sketch,
    profile_frame,
    profile_from_json,
    profile_to_json,
)

NUMERIC = [
    "amount",
    "hour",
    "is_night",
    "card_tx_count_7d",
    "card_mean_amount_30d",
    "merchant_fraud_rate_7d",
    "distance_km",
]
CATEGORICAL = ["channel", "mcc"]
MCC = [f"m{i:02d}" for i in range(30)]


def world(n: int, seed: int) -> pl.DataFrame:
    """Feature rows shaped like fraudwatch's: skewed amounts, hours, flags, counts, rates
    that are mostly zero, a column with some missing values, two categoricals."""
    rng = np.random.default_rng(seed)
    hours = rng.choice(24, n, p=np.r_[np.full(6, 0.01), np.full(18, 0.94 / 18)])
    distance = rng.lognormal(2, 1.2, n)
    distance[rng.random(n) < 0.02] = np.nan  # a little missing is normal
    return pl.DataFrame(
        {
            "amount": rng.lognormal(3.5, 1.0, n),
            "hour": hours.astype(float),
            "is_night": (hours < 6).astype(float),
            "card_tx_count_7d": rng.poisson(6, n).astype(float),
            "card_mean_amount_30d": rng.lognormal(3.5, 0.5, n),
            "merchant_fraud_rate_7d": np.where(rng.random(n) < 0.8, 0.0, rng.beta(1, 60, n)),
            "distance_km": distance,
            "channel": rng.choice(["pos", "online", "atm"], n, p=[0.7, 0.25, 0.05]),
            "mcc": rng.choice(MCC, n),
            "score": rng.beta(1, 30, n),
        }
    )


def inject(frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = frame.height
    distance = frame["distance_km"].to_numpy().copy()
    distance[rng.random(n) < 0.9] = np.nan
    mcc = frame["mcc"].to_numpy().copy()
    mcc[rng.random(n) < 0.05] = "m-new"
    return frame.with_columns(
        (pl.col("amount") * 1.3).alias("amount"),  # shift
        pl.Series("channel", rng.choice(["pos", "online", "atm"], n, p=[0.4, 0.5, 0.1])),  # mix
        pl.Series("distance_km", distance),  # missing rate 2% -> 90%
        pl.lit(42.0).alias("card_mean_amount_30d"),  # became constant
        pl.Series("mcc", mcc),  # unseen categories
    )


INJECTED = {
    "amount": "distribution",
    "channel": "distribution",
    "distance_km": "missing",
    "card_mean_amount_30d": "constant",
    "mcc": "new values",
}


@pytest.mark.parametrize("numeric_test", ["wasserstein", "ks"])
def test_every_injected_drift_is_flagged_and_nothing_else(numeric_test: str) -> None:
    ref, cur = world(30_000, 1), inject(world(20_000, 2), 3)
    importance = {n: 1.0 for n in NUMERIC + CATEGORICAL} | {"hour": 50.0}
    result = compute_drift(
        ref,
        cur,
        numeric=NUMERIC,
        categorical=CATEGORICAL,
        policy=DriftPolicy(numeric_test=numeric_test, ks_threshold=1e-6),
        importance=importance,
    )
    by = {f.name: f for f in result.features}
    assert set(result.drifted) == set(INJECTED), {f.name: f.reasons for f in result.features}
    for name, reason in INJECTED.items():
        assert reason in by[name].reasons, (name, by[name].reasons)
    # the untouched features are stable, the hour (the champion's top feature) among them
    for name in set(NUMERIC + CATEGORICAL) - set(INJECTED):
        assert not by[name].drifted and by[name].reasons == ()
    # missing-rate, constant and unseen-value drifts come first, and raise the alarm even
    # though the drifted features carry a small share of the champion's importance
    assert [f.name for f in result.features[:3]] == sorted(
        ["distance_km", "card_mean_amount_30d", "mcc"], key=[f.name for f in result.features].index
    )
    assert {f.name for f in result.features[:3]} == {"distance_km", "card_mean_amount_30d", "mcc"}
    assert result.weighted_share < 0.5 and result.status == "alarm"
    assert any(a.startswith("distance_km: missing rate 2.0% → 90") for a in result.alarms)
    assert by["distance_km"].ref_missing_rate == pytest.approx(0.02, abs=0.005)


def test_the_demo_defect_alone_raises_the_alarm_and_is_shown_red() -> None:
    """The issue's case: one column 90% missing among many stable ones, under any share rule."""
    ref, cur = world(20_000, 4), world(20_000, 5)
    distance = cur["distance_km"].to_numpy().copy()
    distance[np.random.default_rng(6).random(cur.height) < 0.9] = np.nan
    cur = cur.with_columns(pl.Series("distance_km", distance))
    result = compute_drift(ref, cur, numeric=NUMERIC, categorical=CATEGORICAL)
    assert result.drifted == ["distance_km"]
    assert result.status == "alarm" and result.dataset_drift
    assert result.share_drifted == pytest.approx(1 / 9)
    html = render_drift(result, title="t", meta={})
    assert 'id="verdict" data-status="alarm"' in html and 'class="verdict bad"' in html
    row = html[html.index('data-feature="distance_km"') :].split("</tr>")[0]
    assert "badge bad" in row and "missing rate" in row and 'class="flag"' in row


def test_a_top_feature_drifting_alone_raises_the_alarm() -> None:
    ref, cur = world(20_000, 7), world(20_000, 8)
    cur = cur.with_columns(pl.col("amount") * 1.5)
    importance = {"amount": 10.0, **{n: 1.0 for n in NUMERIC[1:] + CATEGORICAL}}
    result = compute_drift(
        ref, cur, numeric=NUMERIC, categorical=CATEGORICAL, importance=importance
    )
    assert result.drifted == ["amount"] and result.status == "alarm"
    assert result.alarms[0] == "amount: the champion's #1 feature drifted"
    # the same drift on a feature the champion barely uses is reported, not an alarm
    low = {"amount": 0.1, **{n: 1.0 for n in NUMERIC[1:] + CATEGORICAL}}
    quiet = compute_drift(
        ref,
        cur,
        numeric=NUMERIC,
        categorical=CATEGORICAL,
        importance=low,
        policy=DriftPolicy(top_features=3),
    )
    assert quiet.drifted == ["amount"] and quiet.status == "drift" and quiet.alarms == ()


def test_score_psi_gets_its_badge() -> None:
    ref, cur = world(10_000, 9), world(10_000, 10)
    cur = cur.with_columns((pl.col("score") * 4).clip(0, 1))
    result = compute_drift(ref, cur, numeric=NUMERIC, categorical=CATEGORICAL)
    assert result.score is not None and result.score.psi > 0.2 and result.score_flag
    assert "score drift" in render_drift(result, title="t", meta={})


def test_exact_sketches_agree_with_scipy() -> None:
    rng = np.random.default_rng(11)
    a = rng.integers(0, 300, 5000).astype(float)  # at most 512 distinct: sketched exactly
    b = rng.integers(20, 320, 4000).astype(float)
    ref, cur = pl.DataFrame({"x": a}), pl.DataFrame({"x": b})
    w = compute_drift(ref, cur, numeric=["x"], categorical=[], score_column=None).features[0]
    assert w.statistic == pytest.approx(stats.wasserstein_distance(a, b) / np.std(a), rel=1e-9)
    k = compute_drift(
        ref, cur, numeric=["x"], categorical=[], policy=DriftPolicy(numeric_test="ks")
    ).features[0]
    expected = stats.ks_2samp(a, b, method="asymp")
    assert k.statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert k.p_value == pytest.approx(expected.pvalue, rel=1e-6)
    c = compute_drift(
        pl.DataFrame({"c": rng.choice(["a", "b"], 3000)}),
        pl.DataFrame({"c": rng.choice(["a", "b"], 3000, p=[0.8, 0.2])}),
        numeric=[],
        categorical=["c"],
    ).features[0]
    assert c.statistic == pytest.approx(jensenshannon(c.ref_share, c.cur_share))  # natural log


def test_merged_day_profiles_equal_the_profile_of_all_rows() -> None:
    frame = world(9_000, 12)
    days = [frame.slice(i * 3000, 3000) for i in range(3)]
    kw: dict = {"numeric": NUMERIC, "categorical": CATEGORICAL}
    whole = profile_frame(frame, **kw)
    merged = merge_profiles(profile_frame(d, **kw) for d in days)
    ref = profile_frame(world(9_000, 13), **kw)
    a = drift_from_profiles(ref, whole, features=NUMERIC + CATEGORICAL)
    b = drift_from_profiles(ref, merged, features=NUMERIC + CATEGORICAL)
    for fa, fb in zip(a.features, b.features, strict=True):
        assert fa.name == fb.name
        assert fa.psi == pytest.approx(fb.psi, abs=0.01)
        assert fa.statistic == pytest.approx(fb.statistic, rel=0.05, abs=0.01)
        assert fa.cur_missing_rate == pytest.approx(fb.cur_missing_rate)
    hour = merged.columns["hour"]
    assert hour.n == 9000 and len(hour.values) == 24  # exact: 24 distinct values


def test_profiles_round_trip_through_json_and_refuse_garbage() -> None:
    p = profile_frame(world(2000, 14), numeric=NUMERIC, categorical=CATEGORICAL)
    back = profile_from_json(json.loads(json.dumps(profile_to_json(p))))
    assert back == p
    bad = profile_to_json(p)
    bad["columns"]["amount"]["weights"] = bad["columns"]["amount"]["weights"][:-1]
    with pytest.raises(ValueError, match="'values' and 'weights' differ"):
        profile_from_json(bad)
    with pytest.raises(ValueError, match="not a fraudwatch profile"):
        profile_from_json({"format": "pickle"})
    for garbage in (True, "1.5", [1.5], {"v": 1}):  # JSON's true is not the number 1
        bad = profile_to_json(p)
        bad["columns"]["amount"]["values"][3] = garbage
        with pytest.raises(ValueError, match="'values' must be a number"):
            profile_from_json(bad)
    nulls = profile_to_json(p)
    nulls["columns"]["amount"]["weights"][0] = None  # a null is NaN, as in the sketch's own
    assert math.isnan(profile_from_json(nulls).columns["amount"].weights[0])
    empty = numeric_sketch(np.array([np.nan, np.inf]))
    assert empty.n == 2 and empty.missing == 2 and empty.values == ()


def test_reference_window_leaves_out_the_warm_up(
    write_config: Callable[..., Config], tmp_path
) -> None:
    cfg = write_config()
    con = open_warehouse(tmp_path / "w.duckdb", extra_columns=cfg.extra_columns())
    first = datetime(2026, 1, 1, 8)
    con.execute(
        "INSERT INTO transactions (transaction_id, event_time, card_id, merchant_id, amount, "
        "source_file, source_row, ingested_at) SELECT 't' || i, ?::TIMESTAMP + to_days(i::INT), "
        "'c', 'm', 1.0, 'f', i, now() FROM range(60) r(i)",
        [first],
    )
    history = feature_spec(cfg).history_days  # the longest window (labels' delay included)
    warm = datetime(2026, 1, 1) + timedelta(days=history)
    training = (datetime(2026, 1, 10), warm + timedelta(days=10))
    w = reference_window(con, cfg, training, warm + timedelta(days=20))
    assert w is not None and (w.start, w.end) == (warm, training[1])
    assert f"first {history} days" in w.note
    # a training window inside the warm-up: the full-window days before the current window
    now = warm + timedelta(days=20)
    w = reference_window(con, cfg, (first, datetime(2026, 1, 20)), now)
    assert w is not None and (w.start, w.end) == (warm, now)
    # nothing after the warm-up but the current window: the training window, said plainly
    w = reference_window(con, cfg, (first, datetime(2026, 1, 20)), warm)
    assert w is not None and w.start == first and "WARM-UP INCLUDED" in w.note
    configured = write_config(
        extra="[reports.drift]\nreference_start = 2026-01-02\nreference_end = 2026-01-09\n",
        name="configured.toml",
    )
    w = reference_window(con, configured, training, now)
    assert w is not None and w.start.date() == date(2026, 1, 2) and "configured" in w.note
    assert w.end - w.start == timedelta(days=7)
    con.close()
