"""Features benchmark: 1 million new transactions with 30 days of history (~30 million rows).

Prints seconds and peak memory of fraudwatch's feature computation for the
new rows, and in the same run the plain approach (``jobs/feature_reference.py``:
one DuckDB query with RANGE window functions over the whole history, then
keeping the new rows); and checks the feature values are identical.

Issue 3's targets: at least 3x faster than the plain query and under 2 GB.

    .venv/bin/python benchmarks/features.py [--history-rows 30000000] [--new-rows 1000000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import build_warehouse, peak_rss_mb

from jobs.feature_reference import reference_features
from jobs.features import compute_features
from jobs.warehouse import open_configured


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--history-rows", type=int, default=30_000_000)
    ap.add_argument("--new-rows", type=int, default=1_000_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        cfg = build_warehouse(Path(tmp), history_rows=args.history_rows, new_rows=args.new_rows)
        print(
            f"built {args.history_rows:,} + {args.new_rows:,} rows in {time.perf_counter() - t:.0f} s"
        )
        con = open_configured(cfg)  # type: ignore[arg-type]
        new_start = datetime(2026, 1, 31)
        base = peak_rss_mb()
        t = time.perf_counter()
        ours = pl.from_arrow(compute_features(con, cfg, start=new_start))  # type: ignore[arg-type]
        ours_s = time.perf_counter() - t
        ours_mb = peak_rss_mb()
        print(
            f"fraudwatch  {ours_s:7.1f} s  peak RSS {ours_mb:,.0f} MB (before {base:,.0f} MB)  rows {ours.height:,}"
        )
        # the plain approach: RANGE windows over the whole history, then keep the new rows
        con.execute(
            "CREATE TEMP TABLE new_ids AS SELECT transaction_id FROM transactions "
            "WHERE event_time >= ?",
            [new_start],
        )
        t = time.perf_counter()
        plain = pl.from_arrow(reference_features(con, cfg, "new_ids"))  # type: ignore[arg-type]
        plain_s = time.perf_counter() - t
        print(
            f"plain       {plain_s:7.1f} s  peak RSS {peak_rss_mb():,.0f} MB  rows {plain.height:,}"
        )
        assert isinstance(ours, pl.DataFrame) and isinstance(plain, pl.DataFrame)
        same = ours.sort("transaction_id").equals(plain.sort("transaction_id"))
        print(f"identical   {same}")
        print(
            f"speed-up    {plain_s / ours_s:.2f}x (target >= 3x); peak {ours_mb:,.0f} MB (target < 2,048 MB)"
        )


if __name__ == "__main__":
    main()
