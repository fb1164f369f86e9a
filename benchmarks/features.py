"""Features benchmark: 1 million new transactions with 30 days of history (~30 million rows).

Prints seconds and peak memory (each approach in a fresh process, under the
same `[warehouse] memory_limit`) of fraudwatch's feature computation for the
new rows, and in the same run the plain approach (``jobs/feature_reference.py``:
one DuckDB query with RANGE window functions over the whole history, then
keeping the new rows), and the plain query once more under DuckDB's default
limit (80% of RAM); and checks the feature values are identical.

Issue 3's targets: at least 3x faster than the plain query and under 2 GB.

    .venv/bin/python benchmarks/features.py [--history-rows 30000000] [--new-rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import build_warehouse, measure_fresh, peak_rss_mb

NEW_START = datetime(2026, 1, 31)


def measure(root: Path, approach: str) -> dict[str, float]:
    """Run one approach in this (fresh) process; write its features to Parquet beside."""
    from jobs.config import load_config
    from jobs.feature_reference import reference_features
    from jobs.features import compute_features
    from jobs.warehouse import open_configured

    cfg = load_config(root / "config.toml")
    con = open_configured(cfg, read_only=True)
    con.execute(
        "CREATE TEMP TABLE new_ids AS SELECT transaction_id FROM transactions WHERE event_time >= ?",
        [NEW_START],
    )
    if approach == "plain-uncapped":  # DuckDB's own default: 80% of the machine's memory
        con.execute("RESET memory_limit")
    base = peak_rss_mb()
    t = time.perf_counter()
    if approach == "fraudwatch":
        table = compute_features(con, cfg, ids_table="new_ids")
    else:  # RANGE windows over the whole history, then keep the new rows
        table = reference_features(con, cfg, "new_ids")
    seconds = time.perf_counter() - t
    peak = peak_rss_mb()
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    frame.write_parquet(root / f"{approach}.parquet")
    return {"seconds": seconds, "peak_mb": peak, "base_mb": base, "rows": frame.height}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--history-rows", type=int, default=30_000_000)
    ap.add_argument("--new-rows", type=int, default=1_000_000)
    ap.add_argument("--measure", nargs=2, metavar=("ROOT", "APPROACH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure[0]), args.measure[1])))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        cfg = build_warehouse(root, history_rows=args.history_rows, new_rows=args.new_rows)
        limit = cfg.settings.warehouse.memory_limit  # type: ignore[attr-defined]
        print(
            f"built {args.history_rows:,} + {args.new_rows:,} rows in "
            f"{time.perf_counter() - t:.0f} s; DuckDB memory_limit {limit}"
        )
        got = {}
        for approach in ("fraudwatch", "plain", "plain-uncapped"):
            r = measure_fresh([__file__, "--measure", str(root), approach])
            got[approach] = r
            print(
                f"{approach:15s} {r['seconds']:7.1f} s  peak RSS {r['peak_mb']:,.0f} MB "
                f"(process before: {r['base_mb']:,.0f} MB)  rows {r['rows']:,}"
            )
        ours = pl.read_parquet(root / "fraudwatch.parquet").sort("transaction_id")
        plain = pl.read_parquet(root / "plain.parquet").sort("transaction_id")
        print(f"identical   {ours.equals(plain)}")
        ours_s = got["fraudwatch"]["seconds"]
        print(
            f"speed-up    {got['plain']['seconds'] / ours_s:.2f}x under the same memory limit, "
            f"{got['plain-uncapped']['seconds'] / ours_s:.2f}x against plain with no limit "
            f"(target >= 3x); peak {got['fraudwatch']['peak_mb']:,.0f} MB (target < 2,048 MB)"
        )


if __name__ == "__main__":
    main()
