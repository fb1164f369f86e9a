"""Point-in-time features: hand-checked values, and no leak from the future."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import duckdb
import polars as pl
import pytest

from jobs.config import Config
from jobs.features import compute_features, feature_spec, iter_feature_batches
from jobs.warehouse import open_warehouse

T0 = datetime(2026, 3, 2, 12, 0)


def _add_tx(con: duckdb.DuckDBPyConnection, rows: list[tuple]) -> None:
    for tid, t, card, merchant, amount in rows:
        con.execute(
            "INSERT INTO transactions (transaction_id, event_time, card_id, merchant_id, amount, "
            "source_file, source_row, ingested_at, distance_km, channel) "
            "VALUES (?, ?, ?, ?, ?, 'test', 0, now(), 1.5, 'pos')",
            [tid, t, card, merchant, amount],
        )


def _add_label(con: duckdb.DuckDBPyConnection, tid: str, reported: datetime) -> None:
    con.execute(
        "INSERT INTO labels (transaction_id, is_fraud, reported_at, source_file, source_row, "
        "ingested_at) VALUES (?, true, ?, 'test', 0, now())",
        [tid, reported],
    )


@pytest.fixture
def wh(write_config: Callable[..., Config]) -> tuple[Config, duckdb.DuckDBPyConnection]:
    cfg = write_config()
    con = open_warehouse(cfg.warehouse_path, extra_columns=cfg.extra_columns())
    return cfg, con


def _row(table, tid: str) -> dict:  # type: ignore[no-untyped-def]
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame.filter(pl.col("transaction_id") == tid).row(0, named=True)


def test_hand_checked_values(wh: tuple[Config, duckdb.DuckDBPyConnection]) -> None:
    cfg, con = wh
    _add_tx(
        con,
        [
            ("a", T0 - timedelta(days=10), "c1", "m1", 10.0),  # outside 7d, inside 30d
            ("b", T0 - timedelta(hours=30), "c1", "m2", 20.0),  # inside 7d, outside 1d
            ("c", T0 - timedelta(hours=2), "c1", "m1", 30.0),
            ("d", T0, "c1", "m3", 100.0),  # the target
            ("e", T0 - timedelta(hours=1), "c2", "m1", 5.0),  # another card, same merchant
            ("f", T0 + timedelta(hours=1), "c1", "m1", 999.0),  # the future
        ],
    )
    _add_label(con, "c", T0 - timedelta(hours=1))  # known at T0
    _add_label(con, "a", T0 - timedelta(days=2))  # a's label: known, and a is old enough
    _add_label(con, "e", T0 + timedelta(minutes=5))  # reported after T0: unknown at T0
    feats = compute_features(con, cfg, start=T0, end=T0 + timedelta(seconds=1))
    assert feats.num_rows == 1
    r = _row(feats, "d")
    assert r["hour"] == 12 and r["is_night"] == 0 and r["is_weekend"] == 0  # a Monday noon
    assert r["card_tx_count_1d"] == 2  # c, d
    assert r["card_tx_count_7d"] == 3  # b, c, d
    assert r["card_tx_count_30d"] == 4
    assert r["card_mean_amount_1d"] == pytest.approx(65.0)
    assert r["card_amount_ratio_30d"] == pytest.approx(100 / 40)
    assert r["card_distinct_merchants_7d"] == 3
    assert r["card_seconds_since_prev"] == 7200
    # merchant m3 has only d; merchant features of c (m1) are checked below
    assert r["merchant_tx_count_30d"] == 1 and r["merchant_fraud_rate_30d"] == 0.0
    assert r["distance_km"] == 1.5 and r["channel"] == "pos"
    # for transaction e (m1, T0-1h): [t-30d, t] holds a, c, e (undelayed counts). The risk's
    # windows end label_delay_days (7) before t: (t-37d, t-7d] holds only a, a known fraud;
    # c's label is known too, but c is too recent for its peers' labels to have arrived
    fe = compute_features(con, cfg, start=T0 - timedelta(hours=1), end=T0 - timedelta(minutes=59))
    e = _row(fe, "e")
    assert e["merchant_tx_count_30d"] == 3
    assert e["merchant_tx_count_1d"] == 2
    assert e["merchant_fraud_rate_30d"] == pytest.approx(1.0)
    assert e["merchant_fraud_rate_7d"] == pytest.approx(1.0)  # a at t-10d: in (t-14d, t-7d]
    assert e["merchant_fraud_rate_1d"] == 0.0  # (t-8d, t-7d] is empty: no known risk


def test_merchant_risk_window_edges_and_label_knowledge(
    wh: tuple[Config, duckdb.DuckDBPyConnection],
) -> None:
    """(t - d - w, t - d]: open on the left, closed on the right; a label counts from the
    instant it is reported, never before."""
    cfg, con = wh
    d = timedelta(days=7)
    _add_tx(
        con,
        [
            ("edge_in", T0 - d, "c1", "m1", 10.0),  # exactly t - d: inside every window
            ("edge_out", T0 - d - timedelta(days=1), "c2", "m1", 10.0),  # t - d - 1d: not in 1d
            ("mid", T0 - d - timedelta(days=3), "c3", "m1", 10.0),
            ("late_label", T0 - d - timedelta(days=5), "c4", "m1", 10.0),
            ("recent", T0 - timedelta(days=2), "c5", "m1", 10.0),  # inside t - d: not counted
            ("t", T0, "c6", "m1", 10.0),
        ],
    )
    _add_label(con, "edge_in", T0)  # reported exactly at t: known
    _add_label(con, "edge_out", T0 - timedelta(days=1))
    _add_label(con, "late_label", T0 + timedelta(microseconds=1))  # reported just after t
    _add_label(con, "recent", T0 - timedelta(days=1))  # known, but outside the delayed window
    r = _row(compute_features(con, cfg, start=T0, end=T0 + timedelta(seconds=1)), "t")
    assert r["merchant_fraud_rate_1d"] == pytest.approx(1.0)  # {edge_in}: 1 of 1
    # (t-14d, t-7d]: edge_in, edge_out, mid, late_label; known frauds edge_in and edge_out
    assert r["merchant_fraud_rate_7d"] == pytest.approx(2 / 4)
    assert r["merchant_tx_count_7d"] == 3  # undelayed [t-7d, t]: edge_in, recent, t


def test_features_of_a_past_window_ignore_later_data(
    wh: tuple[Config, duckdb.DuckDBPyConnection],
) -> None:
    cfg, con = wh
    rows = [
        (f"t{i}", T0 + timedelta(hours=7 * i), f"c{i % 5}", f"m{i % 3}", float(10 + i))
        for i in range(60)
    ]
    _add_tx(con, rows[:30])
    for i in range(0, 30, 4):
        _add_label(con, f"t{i}", T0 + timedelta(hours=7 * i + 30))
    window = (T0 + timedelta(days=3), T0 + timedelta(days=8))
    before = pl.from_arrow(compute_features(con, cfg, start=window[0], end=window[1]))
    _add_tx(con, rows[30:])  # later transactions
    for i in range(1, 60, 3):  # later labels, some for transactions inside the window
        _add_label(con, f"t{i}", T0 + timedelta(days=30))
    after = pl.from_arrow(compute_features(con, cfg, start=window[0], end=window[1]))
    assert isinstance(before, pl.DataFrame) and before.height > 10
    assert before.equals(after)


def test_history_beyond_the_longest_window_does_not_matter(
    wh: tuple[Config, duckdb.DuckDBPyConnection],
) -> None:
    cfg, con = wh
    _add_tx(con, [("x", T0, "c1", "m1", 10.0), ("y", T0 - timedelta(days=3), "c1", "m1", 20.0)])
    first = pl.from_arrow(compute_features(con, cfg, start=T0, end=T0 + timedelta(seconds=1)))
    _add_tx(con, [("old", T0 - timedelta(days=31), "c1", "m1", 5000.0)])
    second = pl.from_arrow(compute_features(con, cfg, start=T0, end=T0 + timedelta(seconds=1)))
    assert isinstance(first, pl.DataFrame)
    assert first.equals(second)


def test_batches_equal_one_call_and_ids_table(wh: tuple[Config, duckdb.DuckDBPyConnection]) -> None:
    cfg, con = wh
    _add_tx(
        con,
        [
            (f"t{i}", T0 + timedelta(minutes=37 * i), f"c{i % 7}", f"m{i % 4}", float(i))
            for i in range(50)
        ],
    )
    whole = pl.from_arrow(compute_features(con, cfg))
    con.execute("CREATE TEMP TABLE ids AS SELECT transaction_id FROM transactions")
    parts = [pl.from_arrow(b) for b in iter_feature_batches(con, cfg, "ids", 7)]
    assert len(parts) == 8
    assert pl.concat(parts).equals(whole)  # type: ignore[arg-type]


def test_spec_names_order_and_no_ids(wh: tuple[Config, duckdb.DuckDBPyConnection]) -> None:
    cfg, con = wh
    spec = feature_spec(cfg)
    assert "card_id" not in spec.names and "merchant_id" not in spec.names
    assert spec.categorical == ("channel",)
    assert spec.history_days == 37  # the 30-day merchant risk ends 7 days (the delay) back
    assert spec.card_history_days == 30
    assert all(n in spec.descriptions for n in spec.names)
    _add_tx(con, [("x", T0, "c1", "m1", 10.0)])
    table = compute_features(con, cfg)
    assert table.column_names == [
        "transaction_id",
        "event_time",
        "card_id",
        "merchant_id",
        *spec.names,
    ]


@pytest.mark.parametrize("delay", [7, 0, 3])
def test_fast_query_equals_the_plain_window_reference(
    write_config: Callable[..., Config], delay: int
) -> None:
    """The production query gives, value for value, what plain RANGE windows over the whole
    history give: on ties, rows exactly on a window's edge, long gaps, days a merchant did not
    trade, repeated merchants, zero and absurd amounts, and labels reported before and after."""
    import random

    from tests.conftest import BASE_CONFIG

    text = BASE_CONFIG.replace("label_delay_days = 7", f"label_delay_days = {delay}")
    assert f"label_delay_days = {delay}" in text
    cfg = write_config(text=text)
    con = open_warehouse(cfg.warehouse_path, extra_columns=cfg.extra_columns())
    rng = random.Random(7 + delay)
    base = datetime(2026, 1, 1)
    times: list[datetime] = []
    for _ in range(400):
        times.append(base + timedelta(seconds=rng.randrange(0, 75 * 86400)))
    for t in rng.sample(times, 60):  # window edges, exact ties, and a microsecond either side
        for days in (0, 1, 7, 8, 14, 30, 37):  # windows, and windows ending the delay before
            gap = timedelta(days=days)
            times.append(t + gap)
        times.append(t + timedelta(days=7, microseconds=1))
        times.append(t + timedelta(days=1, microseconds=-1))
    rows = []
    for i, t in enumerate(times):
        amount = rng.choice([0.0, 1e20, 12.5, round(rng.uniform(1, 500), 2)])
        rows.append((f"t{i:04d}", t, f"c{rng.randrange(6)}", f"m{rng.randrange(5)}", amount))
    _add_tx(con, rows)
    for tid, t, *_ in rng.sample(rows, 60):
        delay_hours = rng.choice([-1, 0, 5, 24 * 3, 24 * 7, 24 * 8, 24 * 40])
        _add_label(con, tid, t + timedelta(hours=delay_hours))

    from jobs.feature_reference import reference_features

    con.execute("CREATE TEMP TABLE every AS SELECT transaction_id FROM transactions")
    con.execute(
        "CREATE TEMP TABLE one_day AS SELECT transaction_id FROM transactions "
        "WHERE event_time >= TIMESTAMP '2026-02-20' AND event_time < TIMESTAMP '2026-02-21'"
    )
    con.execute(
        "CREATE TEMP TABLE scattered AS SELECT transaction_id FROM transactions "
        "WHERE hash(transaction_id) % 7 = 0"
    )
    for ids in ("every", "one_day", "scattered"):
        fast = pl.from_arrow(compute_features(con, cfg, ids_table=ids))
        plain = pl.from_arrow(reference_features(con, cfg, ids))
        assert isinstance(fast, pl.DataFrame) and isinstance(plain, pl.DataFrame)
        assert fast.height > 10
        assert fast.schema == plain.schema
        for col in fast.columns:
            assert fast[col].equals(plain[col]), (ids, col)
