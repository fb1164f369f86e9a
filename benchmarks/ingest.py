"""Ingest benchmark: 5 million simulated rows from Parquet into the warehouse.

Prints rows/s and the peak memory (RSS high-water mark) of a fresh process that
only ingests, next to the data's size decoded. Target (issue 2): at least 1
million rows/s, and peak memory far below the data's size: rows never become
Python objects one by one, and DuckDB streams under
``[warehouse] ingest_memory_limit``.

    .venv/bin/python benchmarks/ingest.py [--rows 5000000] [--days 30]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import duckdb
from common import measure_fresh, peak_rss_mb, write_transactions

CONFIG = (
    'data_dir = "var"\n[source]\ntransactions = "landing/*.parquet"\n'
    '[source.numeric_columns]\ndistance_km = "distance_km"\n'
    '[source.categorical_columns]\nchannel = "channel"\n'
)


def measure(root: Path) -> dict[str, float]:
    """Ingest the deployment at ``root`` in this (fresh) process."""
    from jobs.config import load_config
    from jobs.ingest import ingest
    from jobs.warehouse import configured_warehouse

    cfg = load_config(root / "config.toml")
    base = peak_rss_mb()
    t = time.perf_counter()
    with configured_warehouse(cfg) as con:
        result = ingest(con, cfg)
    seconds = time.perf_counter() - t
    return {
        "rows": result.rows_loaded,
        "quarantined": result.rows_quarantined,
        "seconds": seconds,
        "peak_mb": peak_rss_mb(),
        "base_mb": base,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--measure", metavar="ROOT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = write_transactions(
            root / "landing", args.rows, args.days, cards=200_000, merchants=20_000
        )
        parquet_mb = sum(f.stat().st_size for f in files) / 2**20
        with duckdb.connect() as con:  # the data's size decoded, and as Arrow in memory
            data_mb = con.execute(
                "SELECT sum(total_uncompressed_size) / 2^20 FROM parquet_metadata(?)",
                [[str(f) for f in files]],
            ).fetchall()[0][0]
            arrow_mb = con.sql(f"SELECT * FROM read_parquet({[str(f) for f in files[:1]]})")
            arrow_mb = arrow_mb.to_arrow_table().nbytes / 2**20 * len(files)
        (root / "config.toml").write_text(CONFIG)
        r = measure_fresh([__file__, "--measure", str(root)])
        print(
            f"rows ingested        {r['rows']:,} in {len(files)} files ({parquet_mb:,.0f} MB Parquet)"
        )
        print(f"time                 {r['seconds']:.1f} s")
        print(
            f"throughput           {r['rows'] / r['seconds']:,.0f} rows/s   (target >= 1,000,000)"
        )
        print(
            f"peak RSS             {r['peak_mb']:,.0f} MB, of which {r['base_mb']:,.0f} MB "
            f"before ingest (Python and the libraries)"
        )
        print(
            f"data                 {data_mb:,.0f} MB decoded (Parquet's uncompressed size), "
            f"~{arrow_mb:,.0f} MB as Arrow in memory"
        )
        print(f"quarantined          {r['quarantined']}")


if __name__ == "__main__":
    main()
