"""Alert reasons in an analyst's words: size and direction, not raw values."""

from __future__ import annotations

import json
import math

import duckdb
import lightgbm as lgb
import numpy as np
from conftest import World

from jobs.batch import run_batch
from jobs.features import feature_spec
from jobs.loaded_model import LoadedModel
from jobs.reasons import phrase, top_reasons

NAN = math.nan
DESC = {
    "hour": "hour of day",
    "is_night": "at night (22:00-6:00)",
    "is_weekend": "on a weekend",
    "merchant_fraud_rate_7d": "merchant's fraud rate over 7 day(s) ending 7 day(s) ago",
    "distance_km": "distance km",
    "channel": "channel",
}
ROW = {
    "amount": 1240.0,
    "card_amount_ratio_1d": 2.0,
    "card_amount_ratio_30d": 8.3,
    "card_mean_amount_30d": 149.4,
    "card_tx_count_1d": 14.0,
    "card_tx_count_30d": 44.2,
    "merchant_tx_count_1d": 300.0,
    "merchant_tx_count_30d": 900.0,
}


def test_amount_is_set_against_the_cards_own_mean() -> None:
    assert phrase("amount", 1240.0, ROW, DESC) == (
        "amount 1,240.00 is 8.3x the card's 30-day mean (149.40)"
    )
    assert phrase("card_amount_ratio_30d", 8.3, ROW, DESC) == (
        "amount 1,240.00 is 8.3x the card's 30-day mean (149.40)"
    )
    assert phrase("card_mean_amount_30d", 149.4, ROW, DESC) == (
        "the card's 30-day mean amount is 149.40 (this amount is 8.3x it)"
    )
    # no card history in the row: the training median is the reference
    assert phrase("amount", 500.0, {"amount": 500.0}, DESC, {"amount": 50.0}) == (
        "amount 500.00, 10.0x the training median (50.00)"
    )


def test_counts_are_set_against_the_longer_windows_daily_rate() -> None:
    assert phrase("card_tx_count_1d", 14.0, ROW, DESC) == (
        "14 transactions on the card in 1 day, 9.5x its daily rate over 30 days"
    )
    assert phrase("merchant_tx_count_1d", 300.0, ROW, DESC) == (
        "300 transactions on the merchant in 1 day, 10.0x its daily rate over 30 days"
    )
    assert phrase("card_tx_count_30d", 44.2, ROW, DESC) == (
        "44.20 transactions on the card in 30 days"
    )


def test_time_of_day_and_flags_read_as_words() -> None:
    assert phrase("hour", 2.0, ROW, DESC) == "made at 02:00-02:59"
    assert phrase("is_night", 1.0, ROW, DESC) == "made at night (22:00-6:00)"
    assert phrase("is_night", 0.0, ROW, DESC) == (
        "made outside the night hours (at night (22:00-6:00))"
    )
    assert phrase("is_weekend", 1.0, ROW, DESC) == "made on a weekend"
    assert phrase("card_seconds_since_prev", 42.0, ROW, DESC) == (
        "only 42 s after the card's previous transaction"
    )
    assert phrase("card_seconds_since_prev", 5400.0, ROW, DESC) == (
        "only 90 min after the card's previous transaction"
    )
    assert phrase("card_seconds_since_prev", NAN, ROW, DESC) == (
        "the card's first transaction in its history window"
    )


def test_rates_extras_and_missing_values() -> None:
    assert phrase("merchant_fraud_rate_7d", 0.125, ROW, DESC) == (
        "merchant's fraud rate over 7 day(s) ending 7 day(s) ago is 12.5%"
    )
    assert phrase("distance_km", 842.0, ROW, DESC, {"distance_km": 24.0}) == (
        "distance km 842, 35.1x the training median (24)"
    )
    assert phrase("distance_km", NAN, ROW, DESC) == "distance km missing"
    assert phrase("channel", 1.0, ROW, DESC, category="online") == "channel 'online'"


def test_top_reasons_on_a_real_model_name_the_pushing_features() -> None:
    rng = np.random.default_rng(3)
    n = 2000
    amount = rng.lognormal(3, 1, n)
    ratio = rng.lognormal(0, 0.5, n)
    hour = rng.integers(0, 24, n).astype(float)
    y = ((ratio > 2.5) | (rng.random(n) < 0.01)).astype(int)
    x = np.column_stack([amount, ratio, hour])
    params = {"objective": "binary", "verbosity": -1, "seed": 1, "num_threads": 1}
    booster = lgb.train(params, lgb.Dataset(x, y), 30)
    model = LoadedModel(
        name="fraud",
        version=1,
        role="champion",
        booster=booster,
        features=("amount", "card_amount_ratio_30d", "hour"),
        categorical=(),
        vocab={},
        medians={"amount": 20.0, "hour": 12.0},
    )
    row = np.array([[400.0, 9.0, 3.0]])
    [reasons] = top_reasons(model, row, DESC, threads=1)
    assert reasons[0] == "amount 400.00 is 9.0x the card's 30-day mean"
    assert len(reasons) == len({r.split(" is ")[0] for r in reasons})  # the amount said once
    assert all(not r.startswith("amount 400.00") for r in reasons[1:])


def test_the_alerts_of_a_run_carry_readable_reasons(world: World) -> None:
    run_batch(world.cfg, reports=False)
    with duckdb.connect(str(world.cfg.warehouse_path), read_only=True) as con:
        rows = con.execute("SELECT reasons FROM alerts WHERE channel = 'file'").fetchall()
    reasons = [r for (text,) in rows for r in json.loads(text)]
    assert reasons
    spec = feature_spec(world.cfg)
    raw = {f"{d}: " for d in spec.descriptions.values()} - {
        f"{spec.descriptions[n]}: " for n in spec.names if n.startswith("merchant_fraud_rate")
    }
    assert not [r for r in reasons if any(r.startswith(p) for p in raw)]
    assert not [r for r in reasons if r.startswith(("hour of day", "at night"))]
    for text in {t for (t,) in rows}:  # one reason per topic: the amount is said once
        said = json.loads(text)
        assert sum(r.startswith("amount ") for r in said) <= 1, said
