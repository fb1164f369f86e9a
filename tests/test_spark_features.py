"""Spark's features equal the reference definition (jobs.feature_reference) on random worlds:
counts exactly, means and ratios to 1e-9."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from jobs.config import Config, load_config
from tests.conftest import BASE_CONFIG
from tests.test_spark_ingest import SPARK_CONFIG, needs_spark, spark_fixture  # noqa: F401


def random_world(root: Path, delay: int, seed: int) -> tuple[Config, duckdb.DuckDBPyConnection]:
    """Ties, rows exactly on window edges and a microsecond either side, cards with no
    history, zero and absurd amounts, labels reported before and after the transactions."""
    from jobs.warehouse import open_warehouse

    root.mkdir(parents=True, exist_ok=True)
    text = BASE_CONFIG.replace("label_delay_days = 7", f"label_delay_days = {delay}")
    (root / "config.toml").write_text(text + SPARK_CONFIG)
    cfg = load_config(root / "config.toml")
    con = open_warehouse(cfg.warehouse_path, extra_columns=cfg.extra_columns())
    rng = random.Random(seed)
    base = datetime(2026, 1, 1)
    times = [base + timedelta(seconds=rng.randrange(0, 60 * 86400)) for _ in range(250)]
    for t in rng.sample(times, 40):
        times += [t + timedelta(days=d) for d in (0, 1, 7, 8, 14, 30, 37)]
        times += [t + timedelta(days=7, microseconds=1), t + timedelta(days=1, microseconds=-1)]
    rows = []
    for i, t in enumerate(times):
        amount = rng.choice([0.0, 1e20, 12.5, round(rng.uniform(1, 500), 2)])
        card, merchant = f"c{rng.randrange(6)}", f"m{rng.randrange(5)}"
        distance = rng.choice([None, round(rng.uniform(0, 90), 3)])
        rows.append((f"t{i:04d}", t, card, merchant, amount, distance, rng.choice(["pos", None])))
    con.executemany(
        "INSERT INTO transactions (transaction_id, event_time, card_id, merchant_id, amount, "
        "source_file, source_row, ingested_at, distance_km, channel) "
        "VALUES (?, ?, ?, ?, ?, 'test', 0, now(), ?, ?)",
        rows,
    )
    for tid, t, *_ in rng.sample(rows, 50):
        hours = rng.choice([-1, 0, 5, 24 * 3, 24 * 7, 24 * 8, 24 * 40])
        con.execute(
            "INSERT INTO labels (transaction_id, is_fraud, reported_at, source_file, source_row, "
            "ingested_at) VALUES (?, ?, ?, 'test', 0, now())",
            [tid, rng.random() < 0.8, t + timedelta(hours=hours)],
        )
    return cfg, con


def _spark_tables(spark: Any, cfg: Config, con: duckdb.DuckDBPyConnection) -> tuple[Any, Any]:
    """The world's tables as Parquet files read by Spark, as the Spark engine reads its own."""
    from jobs.spark.tables import ddl

    out = {}
    for table, cols in (
        ("transactions", "transaction_id, event_time, card_id, merchant_id, amount, "
         "source_file, source_row, ingested_at, distance_km, channel"),
        ("labels", "transaction_id, is_fraud, reported_at, source_file, source_row, ingested_at"),
    ):  # fmt: skip
        path = cfg.root / f"{table}.parquet"
        con.execute(f"COPY (SELECT {cols} FROM {table}) TO '{path}' (FORMAT parquet)")
        out[table] = spark.read.schema(ddl(cfg.settings.source, table)).parquet(str(path))
    return out["transactions"], out["labels"]


def assert_same_features(got: Any, want: Any, what: str) -> None:
    """Same rows and columns; integers exactly; doubles to 1e-9 (relative); NULLs alike."""
    import polars as pl

    a = pl.from_arrow(got).sort("transaction_id")
    b = pl.from_arrow(want).sort("transaction_id")
    assert isinstance(a, pl.DataFrame) and isinstance(b, pl.DataFrame)
    assert a.columns == b.columns, what
    assert a.height == b.height and a.height > 0, what
    for col in a.columns:
        x, y = a[col].to_list(), b[col].to_list()
        if b[col].dtype.is_float():
            for i, (u, v) in enumerate(zip(x, y, strict=True)):
                same = (u is None and v is None) or (
                    u is not None
                    and v is not None
                    and math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-9)
                )
                assert same, (what, col, a["transaction_id"][i], u, v)
        else:
            assert x == y, (what, col)


@needs_spark
@pytest.mark.parametrize(("delay", "seed"), [(7, 1), (0, 2)])
def test_spark_features_equal_the_reference_on_random_worlds(
    spark: Any, tmp_path: Path, delay: int, seed: int
) -> None:
    from jobs.feature_reference import reference_features
    from jobs.spark.features import spark_features, window_ids

    cfg, con = random_world(tmp_path, delay, seed)
    transactions, labels = _spark_tables(spark, cfg, con)
    con.execute("CREATE TEMP TABLE every AS SELECT transaction_id FROM transactions")
    con.execute(
        "CREATE TEMP TABLE one_day AS SELECT transaction_id FROM transactions "
        "WHERE event_time >= TIMESTAMP '2026-02-20' AND event_time < TIMESTAMP '2026-02-21'"
    )
    con.execute(
        "CREATE TEMP TABLE scattered AS SELECT transaction_id FROM transactions "
        "WHERE hash(transaction_id) % 5 = 0"
    )
    for ids in ("every", "one_day", "scattered"):
        want = reference_features(con, cfg, ids)
        if ids == "one_day":  # a training window, as training asks for it
            targets = window_ids(transactions, datetime(2026, 2, 20), datetime(2026, 2, 21))
        else:
            rows = [(r[0],) for r in con.execute(f"SELECT * FROM {ids}").fetchall()]
            targets = spark.createDataFrame(rows, "transaction_id string")
        got = spark_features(cfg, transactions, labels, targets).toArrow()
        assert_same_features(got, want, ids)
