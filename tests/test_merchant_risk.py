"""A compromised merchant is caught by the merchant risk that allows for the label delay.

The simulator compromises merchants for one to four weeks (a large share of their own
transactions fraudulent, at ordinary amounts and hours) and reports chargebacks days
later. The risk over ``(t - d - w, t - d]`` ranks such a merchant's later transactions
above the rest; the same rate over ``[t - w, t]`` (what fraudwatch computed before) sees
too few of the labels, which have not arrived yet.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

from jobs.cli import cli
from jobs.config import Config
from jobs.features import compute_features
from jobs.fraud_patterns import compromised_terminals, make_profiles
from jobs.simulate import SimulationOptions, simulate
from jobs.warehouse import warehouse

START = date(2026, 1, 5)
DAYS = 45
SEED = 5
# a world with more compromises than the default, so that one seed surely holds a few
OPTIONS = SimulationOptions(n_cards=700, n_merchants=120, terminal_compromise_rate=0.003)


def _undelayed_rate(con, days: int) -> pl.DataFrame:  # type: ignore[no-untyped-def]
    """The old definition: frauds reported by t among the merchant's transactions in
    [t - w, t], over their number."""
    table = con.sql(
        f"""
        SELECT x.transaction_id,
               count(l.transaction_id)::DOUBLE / count(*) AS undelayed
        FROM fw_eval x
        JOIN transactions h ON h.merchant_id = x.merchant_id
         AND h.event_time BETWEEN x.event_time - INTERVAL {days} DAY AND x.event_time
        LEFT JOIN labels l ON l.transaction_id = h.transaction_id AND l.is_fraud
         AND l.reported_at <= x.event_time
        GROUP BY x.transaction_id
        """
    ).to_arrow_table()
    out = pl.from_arrow(table)
    assert isinstance(out, pl.DataFrame)
    return out


def test_delayed_merchant_risk_finds_a_compromised_merchant(
    tmp_path: Path, write_config: Callable[..., Config]
) -> None:
    simulate(tmp_path / "landing", start=START, days=DAYS, seed=SEED, options=OPTIONS)
    cfg = write_config()
    done = CliRunner().invoke(cli, ["ingest", "--config", str(cfg.path)])
    assert done.exit_code == 0, done.output

    # the truth: transactions at a merchant that has been compromised for over a week
    profiles = make_profiles(SEED, OPTIONS.n_cards, OPTIONS.n_merchants)
    late: list[tuple[str, date]] = []
    for offset in range(20, DAYS):
        day = START + timedelta(days=offset)
        rate = OPTIONS.terminal_compromise_rate
        now = compromised_terminals(profiles, day, SEED, rate)
        before = compromised_terminals(profiles, day - timedelta(days=8), SEED, rate)
        late += [(f"m{m:05d}", day) for m in now if m in before]
    assert late, "the simulated world should hold a long compromise"

    start = datetime.combine(START + timedelta(days=20), datetime.min.time())
    end = datetime.combine(START + timedelta(days=DAYS), datetime.min.time())
    with warehouse(cfg.warehouse_path) as con:
        feats = pl.from_arrow(compute_features(con, cfg, start=start, end=end))
        assert isinstance(feats, pl.DataFrame)
        con.register("fw_eval_arrow", feats.select("transaction_id", "event_time", "merchant_id"))
        con.execute("CREATE TEMP TABLE fw_eval AS SELECT * FROM fw_eval_arrow")
        old = _undelayed_rate(con, 7)
        old_1d = _undelayed_rate(con, 1).rename({"undelayed": "undelayed_1d"})
    truth = pl.DataFrame(
        {"merchant_id": [m for m, _ in late], "day": [d for _, d in late]},
        schema={"merchant_id": pl.Utf8, "day": pl.Date},
    ).with_columns(pl.lit(True).alias("late_compromise"))
    frame = (
        feats.with_columns(pl.col("event_time").dt.date().alias("day"))
        .join(truth, on=["merchant_id", "day"], how="left")
        .join(old, on="transaction_id")
        .with_columns(pl.col("late_compromise").fill_null(False))
    )
    frame = frame.join(old_1d, on="transaction_id")
    y = frame["late_compromise"].to_numpy()
    assert 50 < y.sum() < len(y) / 2

    def auc(column: str) -> float:
        return float(roc_auc_score(y, frame[column].to_numpy()))

    late = frame.filter(pl.col("late_compromise"))
    rest = frame.filter(~pl.col("late_compromise"))
    # the 1-day risk: the delayed window ranks them near the top, the undelayed one can't
    # (the day's labels have not arrived: its rate is 0 for most of them)
    assert auc("merchant_fraud_rate_1d") > 0.9
    assert auc("undelayed_1d") < 0.7
    assert (late["undelayed_1d"] > 0).mean() < 0.3  # type: ignore[operator]
    assert (late["merchant_fraud_rate_1d"] > 0).mean() > 0.6  # type: ignore[operator]
    # over 7 days both rank, but the undelayed rate counts unlabelled transactions as
    # legitimate: it reads the merchant's fraud rate far too low
    assert auc("merchant_fraud_rate_7d") > 0.9
    delayed, undelayed = late["merchant_fraud_rate_7d"].mean(), late["undelayed"].mean()
    assert delayed > 1.3 * undelayed  # type: ignore[operator]
    assert delayed > 8 * rest["merchant_fraud_rate_7d"].mean()  # type: ignore[operator]
