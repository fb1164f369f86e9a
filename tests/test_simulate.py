"""The simulator: deterministic, realistic enough, with working knobs."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import numpy as np
import polars as pl
from click.testing import CliRunner

from jobs.cli import cli
from jobs.simulate import SimulationOptions, simulate

START = date(2026, 3, 2)
SMALL = SimulationOptions(n_cards=400, n_merchants=80)


def _tx(folder: Path) -> pl.DataFrame:
    return pl.read_parquet(sorted((folder / "transactions").glob("*.parquet")))


def _labels(folder: Path) -> pl.DataFrame:
    return pl.read_parquet(sorted((folder / "labels").glob("*.parquet")))


def test_deterministic_and_day_by_day_equals_whole_range(tmp_path: Path) -> None:
    a = simulate(tmp_path / "a", start=START, days=6, seed=3, options=SMALL)
    simulate(tmp_path / "b", start=START, days=6, seed=3, options=SMALL)
    for day in range(6):
        simulate(
            tmp_path / "c",
            start=date.fromordinal(START.toordinal() + day),
            days=1,
            seed=3,
            options=SMALL,
        )
    names = sorted(p.relative_to(tmp_path / "a") for p in a.files)
    for name in names:
        data = (tmp_path / "a" / name).read_bytes()
        assert data == (tmp_path / "b" / name).read_bytes()
        assert pl.read_parquet(tmp_path / "a" / name).equals(pl.read_parquet(tmp_path / "c" / name))
    other = simulate(tmp_path / "d", start=START, days=1, seed=4, options=SMALL)
    assert other.rows != a.rows or not _tx(tmp_path / "d").equals(
        pl.read_parquet(tmp_path / "a" / "transactions" / f"{START}.parquet")
    )


def test_schema_rates_rhythm_and_chargeback_delays(tmp_path: Path) -> None:
    summary = simulate(tmp_path, start=START, days=14, options=SMALL)
    tx = _tx(tmp_path)
    assert tx.schema == pl.Schema(
        {
            "transaction_id": pl.String,
            "event_time": pl.Datetime("us"),
            "card_id": pl.String,
            "merchant_id": pl.String,
            "amount": pl.Float64,
            "channel": pl.String,
            "distance_km": pl.Float64,
        }
    )
    assert tx["transaction_id"].n_unique() == tx.height == summary.rows
    assert 0.003 < summary.fraud_rate < 0.03
    hours = tx["event_time"].dt.hour()
    assert (hours.is_between(12, 20)).mean() > 2 * (hours.is_between(1, 5)).mean()  # daily rhythm
    per_day = tx.group_by(tx["event_time"].dt.weekday().alias("wd")).len()
    weekend = per_day.filter(pl.col("wd") >= 6)["len"].mean()
    weekday = per_day.filter(pl.col("wd") < 6)["len"].mean()
    assert weekend > weekday  # weekly rhythm
    labels = _labels(tmp_path)
    joined = labels.join(tx, on="transaction_id")
    delay = (joined["reported_at"] - joined["event_time"]).dt.total_seconds() / 86400
    assert (delay > 0).all()
    assert (delay <= 7).mean() > 0.8 and delay.max() <= 14
    for pattern in ("large_amount", "compromised_card", "compromised_merchant"):
        assert summary.by_pattern[pattern] > 0, pattern
    assert summary.by_pattern["card_testing"] == 0


def test_drift_and_defect_knobs(tmp_path: Path) -> None:
    new = date(2026, 3, 5)
    options = SimulationOptions(
        n_cards=400,
        n_merchants=80,
        amount_inflation=0.05,
        drift_start=new,
        new_pattern_start=new,
        missing={"distance_km": 0.9},
        defect_start=new,
        defect_end=date(2026, 3, 6),
    )
    summary = simulate(tmp_path, start=START, days=6, options=options)
    tx = _tx(tmp_path)
    day = tx["event_time"].dt.date()
    before = tx.filter(day < new)
    during = tx.filter(day.is_between(new, date(2026, 3, 6)))
    after = tx.filter(day > date(2026, 3, 6))
    assert before["distance_km"].null_count() == 0 and after["distance_km"].null_count() == 0
    assert 0.85 < during["distance_km"].null_count() / during.height < 0.95
    assert after["amount"].median() > before["amount"].median()
    assert summary.by_pattern["card_testing"] > 0
    testing_days = pl.read_parquet(tmp_path / "transactions" / "2026-03-03.parquet")
    assert testing_days.height > 0


def test_malformed_rows_of_each_kind(tmp_path: Path) -> None:
    summary = simulate(
        tmp_path,
        start=START,
        days=2,
        options=SimulationOptions(n_cards=400, n_merchants=80, malformed_rate=0.05),
        fmt="csv",
    )
    assert summary.malformed > 0
    text = "".join(p.read_text() for p in (tmp_path / "transactions").glob("*.csv"))
    for marker in ("yesterday-ish", "12,50 EUR", "-12.5", "NaN", "2099-01-01"):
        assert marker in text, marker


def test_a_model_is_useful_but_not_perfect(tmp_path: Path) -> None:
    import lightgbm as lgb
    from sklearn.metrics import average_precision_score, roc_auc_score

    simulate(
        tmp_path, start=START, days=24, options=SimulationOptions(n_cards=800, n_merchants=160)
    )
    tx = _tx(tmp_path).sort("event_time")
    truth = set(_labels(tmp_path)["transaction_id"].to_list())
    f = tx.with_columns(
        pl.col("transaction_id").is_in(list(truth)).alias("y"),
        pl.col("event_time").dt.hour().alias("hour"),
        (pl.col("channel") == "online").cast(pl.Int8).alias("online"),
        pl.col("amount").log1p().alias("log_amount"),
    ).with_columns(
        pl.len().over([pl.col("card_id"), pl.col("event_time").dt.date()]).alias("card_day_count"),
        (pl.col("amount") / pl.col("amount").mean().over("card_id")).alias("ratio"),
    )
    cols = ["log_amount", "hour", "online", "distance_km", "card_day_count", "ratio"]
    split = datetime(2026, 3, 19)
    train, test = f.filter(pl.col("event_time") < split), f.filter(pl.col("event_time") >= split)
    model = lgb.train(
        {"objective": "binary", "verbosity": -1, "seed": 1, "num_threads": 2},
        lgb.Dataset(train.select(cols).to_numpy(), train["y"].to_numpy()),
        100,
    )
    pred = model.predict(test.select(cols).to_numpy())
    y = test["y"].to_numpy()
    auc, ap = roc_auc_score(y, pred), average_precision_score(y, pred)
    assert 0.8 < auc < 0.995, auc
    assert 0.15 < ap < 0.9, ap
    assert np.isfinite(pred).all()


def test_cli(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "simulate",
            "--days",
            "2",
            "--start",
            "2026-03-02",
            "--out",
            str(tmp_path / "l"),
            "--cards",
            "200",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "transactions over 2 day(s)" in result.output
    assert len(list((tmp_path / "l" / "transactions").glob("*.parquet"))) == 2
    bad = CliRunner().invoke(cli, ["simulate", "--start", "March"])
    assert bad.exit_code == 2 and "is not a date" in bad.output


def test_label_delay_and_compromised_terminals(tmp_path: Path) -> None:
    """Chargebacks arrive as late as the configured delay says; compromised terminals turn
    a share of a merchant's own ordinary transactions into fraud."""
    options = SimulationOptions(
        n_cards=500, n_merchants=100, label_delay_days=3, terminal_compromise_rate=0.003
    )
    summary = simulate(tmp_path, start=date(2026, 2, 2), days=20, seed=4, options=options)
    assert summary.by_pattern["compromised_terminal"] > 20
    tx = pl.read_parquet(tmp_path / "transactions" / "*.parquet")
    labels = pl.read_parquet(tmp_path / "labels" / "*.parquet").join(
        tx.select("transaction_id", "event_time"), on="transaction_id"
    )
    delay = (labels["reported_at"] - labels["event_time"]).dt.total_seconds() / 86400
    assert 0.85 < float((delay <= 3).mean()) < 0.97  # type: ignore[arg-type]
    assert float(delay.max()) < 6  # type: ignore[arg-type]


def test_camouflage_shift_makes_frauds_look_like_their_cards_habits(tmp_path: Path) -> None:
    """Issue 18's fraud-pattern shift: from camouflage_start, most frauds are daytime, at
    about the card's usual amount and near home; days before it are unchanged."""
    shift = date(2026, 3, 9)
    plain = simulate(tmp_path / "plain", start=START, days=14, seed=5, options=SMALL)
    moved = simulate(
        tmp_path / "moved",
        start=START,
        days=14,
        seed=5,
        options=SimulationOptions(n_cards=400, n_merchants=80, camouflage_start=shift),
    )
    assert plain.frauds == moved.frauds  # the same frauds, differently done
    before = [f for f in plain.files if "transactions" in str(f) and f.stem < f"{shift}"]
    for f in before:
        assert (
            f.read_bytes() == (tmp_path / "moved" / f.relative_to(tmp_path / "plain")).read_bytes()
        )

    def frauds_after(folder: Path) -> pl.DataFrame:
        tx = _tx(folder).filter(
            pl.col("event_time") >= datetime.combine(shift, datetime.min.time())
        )
        return tx.join(_labels(folder).select("transaction_id"), on="transaction_id", how="semi")

    a, b = frauds_after(tmp_path / "plain"), frauds_after(tmp_path / "moved")
    assert a.height > 30 and abs(a.height - b.height) <= 3  # chargebacks within the 14 days
    day = pl.col("event_time").dt.hour().is_between(9, 18)
    assert b.filter(day).height / b.height > 0.7 > a.filter(day).height / a.height
    assert b["amount"].median() < 0.6 * a["amount"].median()  # type: ignore[operator]
