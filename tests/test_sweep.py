"""The feature sweep (jobs/sweep.py) equals the plain SQL reference, value for value, on random
worlds: late and out-of-order rows, same-instant transactions, sub-second gaps, cards and
merchants with no history, labels arriving late, repeated and revised (fraud, then legit)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.config import Config, load_config
from jobs.feature_reference import reference_features
from jobs.feature_sweep import swept_features
from jobs.features import compute_features, iter_feature_batches
from jobs.keys import assign_keys, keys_current, rebuild_keys
from jobs.sweep_scan import each_batch
from jobs.warehouse import open_warehouse, transaction
from tests.conftest import BASE_CONFIG

BASE = datetime(2026, 1, 1)
# gaps that sit on window edges (1, 7, 8, 14, 30, 37 days), a microsecond either side, and
# sub-second ones
GAPS = [timedelta(days=d, microseconds=u) for d in (0, 1, 7, 8, 14, 30, 37) for u in (-1, 0, 1)] + [
    timedelta(microseconds=u) for u in (1, 999, 300_001)
]


def _config(folder: Path, delay: int) -> Config:
    (folder / "config.toml").write_text(
        BASE_CONFIG.replace("label_delay_days = 7", f"label_delay_days = {delay}")
    )
    return load_config(folder / "config.toml")


def _insert(con: duckdb.DuckDBPyConnection, rows: list[tuple]) -> None:
    con.executemany(
        "INSERT INTO transactions (transaction_id, event_time, card_id, merchant_id, amount, "
        "source_file, source_row, ingested_at, distance_km, channel) "
        "VALUES (?, ?, ?, ?, ?, 'test', 0, now(), 1.5, 'pos')",
        rows,
    )


def _label(con: duckdb.DuckDBPyConnection, tid: str, fraud: bool, reported: datetime) -> None:
    con.execute(
        "INSERT INTO labels (transaction_id, is_fraud, reported_at, source_file, source_row, "
        "ingested_at) VALUES (?, ?, ?, 'test', 0, now())",
        [tid, fraud, reported],
    )


def assert_same(fast: pl.DataFrame, plain: pl.DataFrame) -> None:
    """Counts and keys exactly, means and rates to 1e-9, NULLs in the same places."""
    assert fast.schema == plain.schema
    assert fast.height == plain.height
    for col in fast.columns:
        a, b = fast[col], plain[col]
        if a.dtype == pl.Float64:
            assert (a.is_null() == b.is_null()).all(), col
            both = pl.DataFrame({"a": a, "b": b}).drop_nulls()
            err = (both["a"] - both["b"]).abs() / both["b"].abs().clip(lower_bound=1.0)
            assert both.height == 0 or float(err.max()) <= 1e-9, (col, float(err.max()))  # type: ignore[arg-type]
        else:
            assert a.equals(b), col


def _swept_as_the_reference(
    con: duckdb.DuckDBPyConnection, cfg: Config, *, since: str, at_least: int
) -> pl.DataFrame:
    """The sweep's features of the rows from ``since`` (more than ``at_least`` of them),
    asserted equal to the reference's."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE from_since AS SELECT transaction_id, event_time "
        "FROM transactions WHERE event_time >= CAST(? AS TIMESTAMP)",
        [since],
    )
    swept = swept_features(con, cfg, ids_table="from_since")
    assert swept is not None and swept.num_rows > at_least
    fast = pl.from_arrow(swept)
    assert isinstance(fast, pl.DataFrame)
    assert_same(fast, pl.from_arrow(reference_features(con, cfg, "from_since")))  # type: ignore[arg-type]
    return fast


@st.composite
def worlds(draw: st.DrawFn) -> dict:
    n = draw(st.integers(5, 70))
    times: list[datetime] = []
    for _ in range(n):
        if times and draw(st.booleans()):  # relative to an earlier row: edges, ties, sub-second
            times.append(draw(st.sampled_from(times)) + draw(st.sampled_from(GAPS)))
        else:
            times.append(BASE + timedelta(seconds=draw(st.integers(0, 60 * 86400))))
    rows = []
    for i, t in enumerate(times):
        amount = draw(st.sampled_from([0.0, 12.5, 1e20, 0.12345, 3.3333, 499.99]))
        card = f"c{draw(st.integers(0, 4))}"
        merchant = f"m{draw(st.integers(0, 3))}"
        rows.append((f"t{i:03d}", t, card, merchant, amount))
    labels = []
    for tid, t, *_ in draw(st.lists(st.sampled_from(rows), max_size=n)):
        hours = draw(st.sampled_from([-1, 0, 5, 24 * 3, 24 * 7, 24 * 8, 24 * 40]))
        fraud = draw(st.booleans()) or draw(st.booleans())
        labels.append((tid, fraud, t + timedelta(hours=hours)))
    if draw(st.booleans()):  # a chargeback for a transaction not (yet) in the warehouse
        labels.append(("t999", True, BASE + timedelta(days=3)))
    # ingested in 1-3 runs, in any order: late rows are rows older than some stored before
    order = draw(st.permutations(range(n)))
    cuts = sorted(draw(st.lists(st.integers(1, n), max_size=2)))
    return {
        "rows": rows,
        "labels": labels,
        "runs": [
            [rows[i] for i in order[a:b]] for a, b in zip([0, *cuts], [*cuts, n], strict=True)
        ],
        "delay": draw(st.sampled_from([7, 0, 3])),
    }


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(worlds())
def test_the_sweep_equals_the_reference_on_random_worlds(world: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = _config(Path(tmp), world["delay"])
        con = open_warehouse(cfg.warehouse_path, extra_columns=cfg.extra_columns())
        runs = [*world["runs"], []]  # the last run brings labels alone
        for i, run in enumerate(runs):
            if run:
                _insert(con, run)
            for tid, fraud, reported in world["labels"][i :: len(runs)]:
                _label(con, tid, fraud, reported)  # labels arrive over the runs, some late
            with transaction(con):
                assign_keys(con)
        assert keys_current(con)
        last_run = [r[0] for r in world["runs"][-1]] or ["none"]
        con.execute(
            "CREATE TEMP TABLE latest AS SELECT unnest(?::VARCHAR[]) AS transaction_id", [last_run]
        )
        con.execute(
            "CREATE TEMP TABLE every AS SELECT transaction_id, event_time FROM transactions"
        )
        for ids in ("every", "latest"):
            swept = swept_features(con, cfg, ids_table=ids)
            plain = pl.from_arrow(reference_features(con, cfg, ids))
            assert isinstance(plain, pl.DataFrame)
            if plain.height == 0:
                continue
            assert swept is not None  # the sweep ran (no fallback on these worlds)
            fast = pl.from_arrow(swept)
            assert isinstance(fast, pl.DataFrame)
            assert_same(fast, plain)
        con.close()


@pytest.fixture
def world(write_config: Callable[..., Config]) -> tuple[Config, duckdb.DuckDBPyConnection]:
    cfg = write_config()
    con = open_warehouse(cfg.warehouse_path, extra_columns=cfg.extra_columns())
    rows = [
        (f"t{i:03d}", BASE + timedelta(hours=5 * i + (i % 3)), f"c{i % 4}", f"m{i % 3}", 10.0 + i)
        for i in range(300)
    ]
    _insert(con, rows)
    for i in range(0, 300, 7):
        _label(con, f"t{i:03d}", True, BASE + timedelta(hours=5 * i + 24 * (i % 9)))
    with transaction(con):
        assign_keys(con)
    return cfg, con


def test_seconds_since_previous_are_exact_for_sub_second_gaps(
    world: tuple[Config, duckdb.DuckDBPyConnection],
) -> None:
    """Integer microseconds apart / 10^6: not a difference of two epoch doubles."""
    cfg, con = world
    t = datetime(2026, 3, 1, 12, 0, 0, 1)
    _insert(
        con,
        [("p", t, "sub", "m1", 1.0), ("q", t + timedelta(microseconds=299_999), "sub", "m1", 1.0)],
    )
    with transaction(con):
        assign_keys(con)
    con.execute("CREATE TEMP TABLE q AS SELECT 'q' AS transaction_id")
    swept = swept_features(con, cfg, ids_table="q")
    assert swept is not None
    assert swept["card_seconds_since_prev"].to_pylist() == [299_999 / 1e6]
    plain = reference_features(con, cfg, "q")
    assert plain["card_seconds_since_prev"].to_pylist() == [299_999 / 1e6]
    # the SQL path too (a row written without keys makes the state stale)
    _insert(con, [("r", t + timedelta(days=1), "other", "m1", 1.0)])
    assert not keys_current(con)
    assert compute_features(con, cfg, ids_table="q")["card_seconds_since_prev"].to_pylist() == [
        299_999 / 1e6
    ]


@pytest.mark.parametrize(
    ("ids_sql", "expect"),
    [
        # ids with their times, every row of their id and time ranges: fetched by the ranges
        (
            "SELECT transaction_id, event_time FROM transactions "
            "WHERE transaction_id BETWEEN 't100' AND 't119'",
            [f"t{i}" for i in range(100, 120)],
        ),
        # t102 given t101's time: the ranges hold t100 and t101, as many rows as the ids
        (
            "SELECT * FROM (VALUES ('t100', TIMESTAMP '2026-01-21 21:00:00'), "
            "('t102', TIMESTAMP '2026-01-22 03:00:00')) v(transaction_id, event_time)",
            ["t100", "t102"],
        ),
        # an id twice: t103..t105's ranges hold three rows, as many as the ids' rows
        (
            "SELECT transaction_id, event_time FROM transactions "
            "WHERE transaction_id IN ('t103', 't105') UNION ALL SELECT 't105', "
            "TIMESTAMP '2026-01-22 21:00:00'",
            ["t103", "t105"],
        ),
        # fewer rows in the ranges than ids (a wrong time, an id without a transaction)
        (
            "SELECT transaction_id, TIMESTAMP '2026-01-22 12:00:00' AS event_time "
            "FROM transactions WHERE transaction_id IN ('t103', 't110') "
            "UNION ALL SELECT 't1045', NULL",
            ["t103", "t110"],
        ),
    ],
)
def test_ids_with_their_times_find_exactly_their_rows(
    world: tuple[Config, duckdb.DuckDBPyConnection], ids_sql: str, expect: list[str]
) -> None:
    """The ids table's times narrow the search (and, when the ids are every row of their id
    and time ranges, replace the join on ids), but never change which rows are found."""
    cfg, con = world
    con.execute(f"CREATE OR REPLACE TEMP TABLE probe AS {ids_sql}")
    swept = swept_features(con, cfg, ids_table="probe")
    assert swept is not None
    assert sorted(swept["transaction_id"].to_pylist()) == expect
    assert_same(pl.from_arrow(swept), pl.from_arrow(reference_features(con, cfg, "probe")))


def test_compute_features_takes_the_sweep_only_while_the_keys_are_current(
    world: tuple[Config, duckdb.DuckDBPyConnection],
) -> None:
    cfg, con = world
    start, end = BASE + timedelta(days=30), BASE + timedelta(days=45)
    swept = swept_features(con, cfg, start=start, end=end)
    assert swept is not None and swept.num_rows > 50
    assert compute_features(con, cfg, start=start, end=end).equals(swept)
    # a late row written by hand, without keys: the state is stale, the SQL path answers and
    # counts it; once keyed, the sweep does too, with the same values
    _insert(con, [("late", start + timedelta(hours=1), "c1", "m1", 77.0)])
    assert not keys_current(con)
    by_sql = pl.from_arrow(compute_features(con, cfg, start=start, end=end))
    assert isinstance(by_sql, pl.DataFrame) and "late" in by_sql["transaction_id"].to_list()
    with transaction(con):
        assign_keys(con)
    again = swept_features(con, cfg, start=start, end=end)
    assert again is not None
    assert_same(pl.from_arrow(again), by_sql)  # type: ignore[arg-type]


def test_rebuilt_keys_give_the_same_features(
    world: tuple[Config, duckdb.DuckDBPyConnection],
) -> None:
    cfg, con = world
    # a card first keyed late gets a different key when rebuilt (keys renumber in id order)
    _insert(con, [("z1", BASE + timedelta(days=20), "a-new-card", "a-new-merchant", 5.0)])
    with transaction(con):
        assign_keys(con)
    before = swept_features(
        con, cfg, start=BASE + timedelta(days=15), end=BASE + timedelta(days=40)
    )
    with transaction(con):
        rebuild_keys(con)
    after = swept_features(con, cfg, start=BASE + timedelta(days=15), end=BASE + timedelta(days=40))
    assert before is not None and after is not None and after.equals(before)


def test_a_day_of_targets_counts_most_merchant_days_whole(
    world: tuple[Config, duckdb.DuckDBPyConnection],
) -> None:
    """As a daily run asks: one day of targets over two months of history. Of the merchants'
    rows the sweep keeps one by one only those of the days a window edge falls on; the
    others it counts per day, and the values stay the reference's."""
    from jobs.feature_sweep import swept_with_stats

    cfg, con = world
    con.execute(
        "CREATE TEMP TABLE last_day AS SELECT transaction_id, event_time FROM transactions "
        "WHERE event_time >= (SELECT max(event_time) FROM transactions) - INTERVAL 1 DAY"
    )
    got = swept_with_stats(con, cfg, ids_table="last_day")
    assert got is not None
    swept, stats = got
    assert stats.history_rows > 150 and stats.merchant_rows < stats.history_rows / 3
    assert_same(
        pl.from_arrow(swept),  # type: ignore[arg-type]
        pl.from_arrow(reference_features(con, cfg, "last_day")),  # type: ignore[arg-type]
    )


def test_a_sum_beyond_64_bits_takes_the_sql_path(
    world: tuple[Config, duckdb.DuckDBPyConnection],
) -> None:
    cfg, con = world
    t = BASE + timedelta(days=50)
    huge = 99_999_999_999_999.0  # just under 10^14: counted in means, 10^18 ten-thousandths
    _insert(con, [(f"h{i}", t + timedelta(minutes=i), "rich", "m1", huge) for i in range(12)])
    with transaction(con):
        assign_keys(con)
    con.execute("CREATE TEMP TABLE rich AS SELECT 'h11' AS transaction_id")
    assert swept_features(con, cfg, ids_table="rich") is None
    fast = pl.from_arrow(compute_features(con, cfg, ids_table="rich"))
    plain = pl.from_arrow(reference_features(con, cfg, "rich"))
    assert isinstance(fast, pl.DataFrame) and isinstance(plain, pl.DataFrame)
    assert fast.equals(plain)
    assert fast["card_mean_amount_1d"][0] == pytest.approx(huge)


def test_batches_by_the_sweep_equal_one_call(
    world: tuple[Config, duckdb.DuckDBPyConnection],
) -> None:
    cfg, con = world
    whole = compute_features(con, cfg)
    con.execute("CREATE TEMP TABLE ids AS SELECT transaction_id FROM transactions")
    parts = list(iter_feature_batches(con, cfg, "ids", 70))
    assert len(parts) == 5
    joined = pl.concat([pl.from_arrow(p) for p in parts])  # type: ignore[misc]
    assert joined.equals(pl.from_arrow(whole))
    assert_same(joined, pl.from_arrow(reference_features(con, cfg, "ids")))  # type: ignore[arg-type]


def test_feature_days_bound_each_sweep_and_equal_one_call(
    world: tuple[Config, duckdb.DuckDBPyConnection],
) -> None:
    """Training builds its features a run of whole days at a time: the same rows and values
    as one call over the window, in the same order."""
    from jobs.features import iter_feature_days

    cfg, con = world
    start, end = BASE + timedelta(days=3, hours=7), BASE + timedelta(days=55)
    parts = list(iter_feature_days(con, cfg, start, end, 40))
    assert len(parts) > 5 and all(p.num_rows <= 40 for p in parts)
    whole = compute_features(con, cfg, start=start, end=end)
    joined = pl.concat([pl.from_arrow(p) for p in parts])  # type: ignore[misc]
    assert joined.equals(pl.from_arrow(whole))
    assert joined["event_time"].min() >= start and joined["event_time"].max() < end  # type: ignore[operator]


def test_after_a_real_ingest_the_sweep_answers_and_equals_the_reference(
    tmp_path: Path, write_config: Callable[..., Config]
) -> None:
    """Ingest keys what it loads (transactions and the chargebacks feed, in the same
    transaction): the features then come from the sweep, equal to the reference."""
    from datetime import date

    from jobs.ingest import ingest
    from jobs.simulate import SimulationOptions, simulate

    simulate(
        tmp_path / "landing",
        start=date(2026, 1, 5),
        days=20,
        seed=3,
        options=SimulationOptions(n_cards=150, n_merchants=40),
    )
    cfg = write_config()
    con = open_warehouse(cfg.warehouse_path, extra_columns=cfg.extra_columns())
    ingest(con, cfg)
    assert keys_current(con)
    assert con.execute("SELECT count(*) FROM known_frauds").fetchall()[0][0] > 0
    fast = _swept_as_the_reference(con, cfg, since="2026-01-20", at_least=100)
    assert fast["merchant_fraud_rate_7d"].max() > 0  # type: ignore[operator]


def test_a_later_label_that_contradicts_a_fraud_ends_it_in_every_path(
    write_config: Callable[..., Config],
) -> None:
    """An analyst confirms fraud, then a chargeback says legitimate: the merchant's risk counts
    the fraud from the review until the chargeback, not after (the latest label by t wins, as
    training and the performance report read labels); a third label saying fraud again
    counts from its own time on. The sweep, the SQL path and the reference agree."""
    cfg = write_config()  # label_delay_days = 7, merchant windows 1, 7, 30 days
    con = open_warehouse(cfg.warehouse_path, extra_columns=cfg.extra_columns())
    fraud_at = BASE + timedelta(hours=12)
    _insert(con, [("f", fraud_at, "c-f", "m", 10.0), ("g", fraud_at, "c-g", "m", 10.0)])
    review, chargeback, again = (BASE + timedelta(days=d) for d in (9, 11, 13))
    _label(con, "f", True, review)  # the analyst's decision
    _label(con, "f", False, chargeback)  # the chargeback disagrees: it wins from then on
    _label(con, "f", True, again)  # and a later fraud label counts again
    # later transactions at the same merchant, each on its own card
    probes = {"before": 8.5, "reviewed": 10, "overturned": 12, "again": 14}
    _insert(
        con,
        [(p, BASE + timedelta(days=d), f"c-{p}", "m", 1.0) for p, d in probes.items()],
    )
    with transaction(con):
        assign_keys(con)
    con.execute(
        "CREATE TEMP TABLE probes AS SELECT unnest(?::VARCHAR[]) AS transaction_id", [list(probes)]
    )
    swept = swept_features(con, cfg, ids_table="probes")
    assert swept is not None
    plain = pl.from_arrow(reference_features(con, cfg, "probes"))
    assert isinstance(plain, pl.DataFrame)
    fast = pl.from_arrow(swept)
    assert isinstance(fast, pl.DataFrame)
    assert_same(fast, plain)
    _insert(con, [("elsewhere", BASE, "c-z", "m-z", 1.0)])  # written without keys
    assert not keys_current(con)  # so the SQL path answers now
    by_sql = pl.from_arrow(compute_features(con, cfg, ids_table="probes"))
    assert isinstance(by_sql, pl.DataFrame)
    assert_same(by_sql, plain)
    rate = dict(zip(plain["transaction_id"], plain["merchant_fraud_rate_30d"], strict=True))
    # two transactions of the merchant 7+ days before each probe; "f" is one of them
    assert rate == {"before": 0.0, "reviewed": 0.5, "overturned": 0.0, "again": 0.5}
    con.close()


def test_an_error_while_scanning_is_raised_as_itself_and_frees_the_connection(
    world: tuple[Config, duckdb.DuckDBPyConnection],
) -> None:
    """A scan's reader is closed however the scan ends: left open, the connection refused
    the sweep's next statement ('connection has an open result'), and that error replaced
    the one that stopped the scan."""
    _, con = world
    reader = con.sql("SELECT card_key, merchant_key FROM transactions").to_arrow_reader(10)

    def fails(batch: object) -> bool:
        raise ValueError("the kernel's own error")

    with pytest.raises(ValueError, match="the kernel's own error"):
        each_batch(reader, fails)
    assert con.execute("SELECT count(*) FROM transactions").fetchall() == [(300,)]


def test_cards_sharing_buckets_on_two_threads_equal_the_reference(
    tmp_path: Path, write_config: Callable[..., Config]
) -> None:
    """Thousands of cards: the scan groups them in buckets of several cards each (the
    worlds above have a bucket per card) and settles the buckets on two threads; each card's
    rows must still come out whole and in time order. The last days land before earlier
    ones: late rows inside shared buckets."""
    from datetime import date

    from jobs.ingest import ingest
    from jobs.simulate import SimulationOptions, simulate

    options = SimulationOptions(n_cards=3000, n_merchants=300, mean_daily_tx_per_card=0.7)
    simulate(tmp_path / "landing", start=date(2026, 1, 8), days=4, seed=5, options=options)
    cfg = write_config()
    con = open_warehouse(cfg.warehouse_path, extra_columns=cfg.extra_columns())
    ingest(con, cfg)  # the last four days first
    simulate(tmp_path / "landing", start=date(2026, 1, 1), days=7, seed=6, options=options)
    ingest(con, cfg)
    assert keys_current(con)
    cards = con.execute("SELECT count(*) FROM card_keys").fetchall()[0][0]
    assert cards > 2048  # buckets of at least 8 cards (at most 512 buckets)
    con.execute("SET threads = 2")
    fast = _swept_as_the_reference(con, cfg, since="2026-01-09", at_least=3000)
    assert fast["card_tx_count_7d"].max() > 3  # type: ignore[operator]
