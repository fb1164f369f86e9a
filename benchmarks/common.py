"""Helpers shared by the benchmarks: peak memory and synthetic data at scale."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def timed(label: str, out: dict[str, float]) -> Iterator[None]:
    t = time.perf_counter()
    yield
    out[label] = time.perf_counter() - t
    print(f"  {label}: {out[label]:.2f} s", file=sys.stderr)


def write_transactions(
    folder: Path,
    rows: int,
    days: int,
    *,
    cards: int,
    merchants: int,
    start: str = "2026-01-01",
    seed: int = 1,
) -> list[Path]:
    """``rows`` synthetic transactions over ``days`` days as one Parquet file per day (DuckDB)."""
    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SELECT setseed({seed / 100})")
    per_day = rows // days
    paths = []
    for d in range(days):
        path = folder / f"day-{d:03d}.parquet"
        con.execute(
            f"""
            COPY (
              SELECT 'tx' || lpad(({d} * {per_day} + i)::VARCHAR, 10, '0') AS transaction_id,
                     TIMESTAMP '{start}' + INTERVAL {d} DAY + to_seconds((i * 86400 // {per_day})::BIGINT) AS event_time,
                     'c' || (hash(i * 7 + {d}) % {cards})::VARCHAR AS card_id,
                     'm' || (hash(i * 13 + {d}) % {merchants})::VARCHAR AS merchant_id,
                     round(exp(random() * 3 + 2), 2) AS amount,
                     CASE WHEN random() < 0.2 THEN 'online' WHEN random() < 0.05 THEN 'atm' ELSE 'pos' END AS channel,
                     round(random() * 50, 1) AS distance_km
              FROM range({per_day}) t(i)
            ) TO '{path}' (FORMAT parquet)
            """
        )
        paths.append(path)
    con.close()
    return paths
