"""Ingest benchmark: 5 million simulated rows from Parquet into the warehouse.

Prints rows/s and peak memory (RSS high-water mark) next to the data's size.
Target (issue 2): at least 1 million rows/s, and peak memory far below the
data's size: rows never become Python objects one by one.

    .venv/bin/python benchmarks/ingest.py [--rows 5000000] [--days 30]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import duckdb
from common import peak_rss_mb, write_transactions

from jobs.config import load_config
from jobs.ingest import ingest
from jobs.warehouse import configured_warehouse


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--days", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = write_transactions(
            root / "landing", args.rows, args.days, cards=200_000, merchants=20_000
        )
        parquet_mb = sum(f.stat().st_size for f in files) / 2**20
        # the data's size once decoded: Parquet's own record of its uncompressed column chunks
        data_mb = (
            duckdb.connect()
            .execute(
                "SELECT sum(total_uncompressed_size) / 2^20 FROM parquet_metadata(?)",
                [[str(f) for f in files]],
            )
            .fetchall()[0][0]
        )
        (root / "config.toml").write_text(
            'data_dir = "var"\n[source]\ntransactions = "landing/*.parquet"\n'
            '[source.numeric_columns]\ndistance_km = "distance_km"\n'
            '[source.categorical_columns]\nchannel = "channel"\n'
        )
        cfg = load_config(root / "config.toml")
        base = peak_rss_mb()
        t = time.perf_counter()
        with configured_warehouse(cfg) as con:
            result = ingest(cfg, con)
        seconds = time.perf_counter() - t
        rows = result.rows_loaded
        print(f"rows ingested        {rows:,} in {len(files)} files ({parquet_mb:,.0f} MB Parquet)")
        print(f"time                 {seconds:.1f} s")
        print(f"throughput           {rows / seconds:,.0f} rows/s   (target >= 1,000,000)")
        print(f"peak RSS             {peak_rss_mb():,.0f} MB (before ingest {base:,.0f} MB)")
        print(f"data decoded         {data_mb:,.0f} MB (Parquet's uncompressed size)")
        print(f"quarantined          {result.rows_quarantined}")


if __name__ == "__main__":
    main()
