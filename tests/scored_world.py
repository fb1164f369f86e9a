"""A warehouse of scored transactions whose true fraud probabilities are known, for the
performance report and its estimate (issue 15's shared window, issue 18's calibration):
real DuckDB file, real SQLite registry with a real (tiny) LightGBM champion whose
training-time calibrator is fitted on its validation days, like training's. The scores are
drawn, not predicted, so a test can shift the world's fraud rate after training at will."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import lightgbm as lgb
import numpy as np
import polars as pl

from jobs.calibration import store_calibrator
from jobs.config import Config, load_config
from jobs.registry_access import open_registry
from jobs.warehouse import warehouse
from registry import Lineage
from reports.calibration import fit_calibrator

START = date(2026, 1, 5)

CONFIG = """
data_dir = "var"

[source]
transactions = "landing/transactions/*.parquet"
label_delay_days = 7

[alerts]
channels = ["file"]
threshold = 0.5
daily_budget = {budget}

[reports]
performance_days = 14

[estimation]
simulations = 300
recalibration_days = {recalibration_days}
"""


@dataclass(frozen=True)
class ScoredWorld:
    cfg: Config
    train_end: date  # the champion's training window ends here; its validation: the week before
    shift_day: date  # the fraud odds are multiplied from this day on


def _odds(p: np.ndarray, factor: float) -> np.ndarray:
    odds = p / (1 - p) * factor
    return odds / (1 + odds)


def build(
    root: Path,
    *,
    days: int = 70,
    rows: int = 3000,
    cards: int = 900,
    train_days: int = 35,
    odds_factor: float = 1.0,
    recalibration_days: int = 28,
    budget: int = 20,
    decimals: int = 6,
    burst: int = 0,
    seed: int = 1,
) -> ScoredWorld:
    """``days`` days of ``rows`` transactions from ``START``; a transaction with score ``s``
    is a fraud with probability ``s ** 2``, its odds multiplied by ``odds_factor`` from the
    day training ends (a prior shift the champion's calibration cannot know); every fraud
    reported two days after it; the champion (version 1, trained on the first
    ``train_days`` days) scored every day. Scores rounded to ``decimals`` (ties); ``burst``
    transactions a day of one card at the day's top score (a card-testing burst)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.toml").write_text(
        CONFIG.format(budget=budget, recalibration_days=recalibration_days)
    )
    cfg = load_config(root / "config.toml")
    rng = np.random.default_rng(seed)
    n = days * rows
    day = np.repeat(np.arange(days), rows)
    score = np.round(rng.beta(0.7, 4.0, n), decimals)
    card = rng.integers(0, cards, n)
    if burst:
        first = (np.arange(n) % rows) < burst
        score, card = np.where(first, 0.999, score), np.where(first, cards, card)
    p = score**2
    p = np.where(day >= train_days, _odds(p, odds_factor), p)
    fraud = rng.random(n) < p
    event = (
        np.datetime64(START)
        + day.astype("timedelta64[D]")
        + rng.integers(0, 86_400, n).astype("timedelta64[s]")
    )
    frame = pl.DataFrame(
        {
            "transaction_id": [f"tx{i:07d}" for i in range(n)],
            "event_time": event.astype("datetime64[us]"),
            "card_id": [f"card{c:05d}" for c in card],
            # integer keys as ingest assigns them (in order of arrival, not of the ids)
            "card_key": (cards - card).astype(np.int32),
            "amount": np.round(rng.lognormal(3, 1, n), 2),
            "score": score,
            "is_fraud": fraud,
        }
    )
    with warehouse(cfg.warehouse_path) as con:
        con.register("f", frame.to_arrow())
        con.execute(
            "INSERT INTO transactions (transaction_id, event_time, card_id, merchant_id, amount, "
            "source_file, source_row, ingested_at, card_key) SELECT transaction_id, event_time, "
            "card_id, 'm1', amount, 'synthetic', 0, event_time, card_key FROM f"
        )
        con.execute("INSERT INTO card_keys SELECT DISTINCT card_id, card_key FROM f")
        con.execute(
            "INSERT INTO scores SELECT transaction_id, 'fraud', 1, 'champion', score, "
            "event_time, 'run', event_time, card_key, amount FROM f"
        )
        con.execute(
            "INSERT INTO labels (transaction_id, is_fraud, reported_at, source_file, source_row, "
            "ingested_at) SELECT transaction_id, true, event_time + INTERVAL 2 DAY, 'synthetic', "
            "0, event_time + INTERVAL 2 DAY FROM f WHERE is_fraud"
        )
    valid = (day >= train_days - 7) & (day < train_days)
    calibrator = fit_calibrator(score[valid], fraud[valid])
    x = rng.random((200, 2))
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 4},
        lgb.Dataset(x, (x[:, 0] > 0.5).astype(int)),
        num_boost_round=2,
    )
    reg = open_registry(cfg)
    train_end = START + timedelta(days=train_days)
    lineage = Lineage(
        training_start=datetime.combine(START, datetime.min.time()),
        training_end=datetime.combine(train_end, datetime.min.time()),
        rows=int((day < train_days).sum()),
        fraud_rate=float(fraud[day < train_days].mean()),
        fingerprint="synthetic",
        feature_names=["f0", "f1"],
        extra={"calibration": store_calibrator(reg, calibrator, "isotonic")},
    )
    info = reg.register_version("fraud", booster.model_to_string(), lineage, actor="tests")
    reg.set_alias("fraud", "champion", info.version, actor="tests", reason="synthetic")
    return ScoredWorld(cfg, train_end, train_end)


def tied(root: Path, burst: int = 0) -> ScoredWorld:
    """30 days of 1,500 transactions over 500 cards, scores with two decimals (ties
    everywhere), a budget of 5 a day; with ``burst``, one card holds each day's top ``burst``
    transactions (more than the first cut of top transactions looks at)."""
    return build(
        root, days=30, rows=1500, cards=500, train_days=10, budget=5, decimals=2, burst=burst
    )
