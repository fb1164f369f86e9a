"""Training-set build benchmark: the features of a long window, a run of days at a time.

Training builds its features with ``jobs.features.iter_feature_days`` (what
``load_training_data`` does): each run of days is one sweep over its own look-back, so the
working memory is that of one run, whatever the window's length. This script streams the
runs of ``--days`` days to Parquet (the features of 120 days of 1M rows are ~120M rows: far
more than any process should hold) and prints the seconds per day, the peak memory of the
process and the projection to ``--project-days`` days (the per-day cost does not depend on
the window's length: every day reads the same 37 days of look-back).

Issue 17's target: 120 days of 1M rows a day in < 2 GB, time reported.

    .venv/bin/python benchmarks/training_set.py --root DIR [--days 7] [--project-days 120]
    .venv/bin/python benchmarks/training_set.py --root /tmp/w120 --days 120   # the target

``DIR`` is a warehouse of 1M rows a day (``benchmarks/features.py --root DIR`` builds one of
31 days); when it does not exist, it is built there with ``--days`` days of history and a
new day (120 days: 120M rows, about 4 minutes), then kept.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import measure_fresh, peak_rss_mb


def measure(root: Path, days: int) -> dict[str, object]:
    import pyarrow.parquet as pq

    from jobs.config import load_config
    from jobs.features import iter_feature_days
    from jobs.warehouse import open_configured

    cfg = load_config(root / "config.toml")
    con = open_configured(cfg, read_only=True)
    last = con.execute("SELECT max(event_time) FROM transactions").fetchall()[0][0]
    end = datetime.combine(last.date(), datetime.min.time()) + timedelta(days=1)
    start = end - timedelta(days=days)
    chunk = cfg.settings.scoring.feature_chunk_size
    rows = 0
    per_part: list[float] = []
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        writer = None
        for part in iter_feature_days(con, cfg, start, end, chunk):
            if writer is None:
                writer = pq.ParquetWriter(Path(tmp) / "training.parquet", part.schema)
            writer.write_table(part)
            rows += part.num_rows
            per_part.append(round(time.perf_counter() - t - sum(per_part), 2))
            del part
        if writer is not None:
            writer.close()
        size = (Path(tmp) / "training.parquet").stat().st_size if writer else 0
    return {
        "seconds": time.perf_counter() - t,
        "rows": rows,
        "parts": per_part,
        "peak_mb": peak_rss_mb(),
        "parquet_mb": size / 2**20,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--project-days", type=int, default=120)
    ap.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.root, args.days)))
        return
    if not (args.root / "config.toml").exists():  # as many days of history as measured
        from common import build_warehouse
        from features import ensure_keys

        t = time.perf_counter()
        build_warehouse(
            args.root, history_rows=args.days * 1_000_000, new_rows=1_000_000, days=args.days
        )
        ensure_keys(args.root)
        print(f"built {args.days} days of 1M rows in {time.perf_counter() - t:.0f} s")
    print(f"load average {os.getloadavg()[0]:.1f} (2 cores)")
    r = measure_fresh([__file__, "--root", str(args.root), "--days", str(args.days), "--measure"])
    per_day = r["seconds"] / args.days
    print(
        f"{args.days} days, {r['rows']:,} rows: {r['seconds']:.0f} s ({per_day:.1f} s a day; "
        f"each run of days {r['parts']}), peak RSS {r['peak_mb']:,.0f} MB, "
        f"Parquet {r['parquet_mb']:,.0f} MB"
    )
    print(
        f"projected {args.project_days} days: {per_day * args.project_days / 60:.0f} min, "
        f"the same peak (one run of days at a time); load average now {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
