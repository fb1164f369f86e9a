"""Features benchmark: 1 million new transactions over 30 days of history (~30 million rows).

Prints seconds and peak memory, each in a fresh process under the deployment's
`[warehouse] memory_limit`, of:

- ``sweep``: fraudwatch's features as a run computes them (``compute_features``: the
  keyed-state sweep, jobs/sweep.py), the target ids given with their event times as scoring
  gives them; its first call in the process, so numba's start-up (loading the cached machine
  code) is included, and a second call in the same process (start-up paid: as in the
  long-lived ``fraudwatch schedule``);
- ``sql``: the SQL path (``jobs.feature_sql.sql_features``), what fraudwatch ran before;
- ``plain``: the reference (``jobs/feature_reference.py``: RANGE windows over the whole
  history, then the new rows);

and checks every value: counts exactly, means and rates to 1e-9 (and how many differ at
all: a mean is a long double division in DuckDB, a double one in the sweep).

Issue 17's targets: the sweep <= 3 s, peak <= 1.6 GB, identical to the reference.

    .venv/bin/python benchmarks/features.py [--history-rows 30000000] [--new-rows 1000000]
        [--root DIR (reuse or keep the warehouse)] [--skip-plain]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import build_warehouse, measure_fresh, memory_touch_mb_s, peak_rss_mb

NEW_START = datetime(2026, 1, 31)


def measure(root: Path, approach: str) -> dict[str, object]:
    """Run one approach in this (fresh) process; write its features to Parquet beside."""
    started = time.perf_counter()
    from jobs.config import load_config
    from jobs.feature_reference import reference_features
    from jobs.feature_sql import sql_features
    from jobs.feature_sweep import swept_with_stats
    from jobs.features import compute_features
    from jobs.warehouse import open_configured

    cfg = load_config(root / "config.toml")
    con = open_configured(cfg, read_only=True)
    imported = time.perf_counter() - started
    con.execute(
        "CREATE TEMP TABLE new_ids AS SELECT transaction_id, event_time FROM transactions "
        "WHERE event_time >= ?",
        [NEW_START],
    )
    base = peak_rss_mb()
    out: dict[str, object] = {"base_mb": base, "imports_s": imported}
    t = time.perf_counter()
    if approach == "sweep":
        done = swept_with_stats(con, cfg, ids_table="new_ids")
        assert done is not None, "the keyed state is not current: the sweep did not run"
        table, stats = done
        out["steps"] = stats.seconds
        out["seconds"] = time.perf_counter() - t
        out["peak_mb"] = peak_rss_mb()
        rows = table.num_rows
        _write(table, root / f"{approach}.parquet")
        del table, done
        t = time.perf_counter()
        again = compute_features(con, cfg, ids_table="new_ids")  # start-up paid
        out["second_call_s"] = time.perf_counter() - t
        out["second_call_peak_mb"] = peak_rss_mb()
        assert again.num_rows == rows
        out["rows"] = rows
        return out
    elif approach == "sql":
        table = sql_features(con, cfg, ids_table="new_ids")
        out["seconds"] = time.perf_counter() - t
    else:
        table = reference_features(con, cfg, "new_ids")
        out["seconds"] = time.perf_counter() - t
    out["peak_mb"] = peak_rss_mb()
    out["rows"] = table.num_rows
    _write(table, root / f"{approach}.parquet")
    return out


def _write(table: object, path: Path) -> None:
    frame = pl.from_arrow(table)  # type: ignore[arg-type]
    assert isinstance(frame, pl.DataFrame)
    frame.write_parquet(path)


def compare(a: pl.DataFrame, b: pl.DataFrame) -> tuple[bool, str]:
    """Counts and ids exactly, doubles to 1e-9 with NULLs in the same places."""
    if a.schema != b.schema or a.height != b.height:
        return False, "schema or rows differ"
    worst, differing = 0.0, 0
    for col in a.columns:
        x, y = a[col], b[col]
        if x.dtype == pl.Float64:
            if not (x.is_null() == y.is_null()).all():
                return False, f"{col}: NULLs differ"
            both = pl.DataFrame({"x": x, "y": y}).drop_nulls()
            err = ((both["x"] - both["y"]).abs() / both["y"].abs().clip(lower_bound=1.0)).max()
            worst = max(worst, float(err or 0.0))  # type: ignore[arg-type]
            differing += int((both["x"] != both["y"]).sum())
        elif not x.equals(y):
            return False, f"{col} differs"
    ok = worst <= 1e-9
    return ok, f"largest relative difference {worst:.1e}, {differing} doubles not bit-identical"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--history-rows", type=int, default=30_000_000)
    ap.add_argument("--new-rows", type=int, default=1_000_000)
    ap.add_argument("--root", type=Path, help="warehouse folder to reuse (built there if absent)")
    ap.add_argument("--skip-plain", action="store_true", help="leave out the slow reference")
    ap.add_argument(
        "--sweep-only",
        action="store_true",
        help="the sweep alone, compared with "
        "the other approaches' Parquet left in --root by an earlier run",
    )
    ap.add_argument("--measure", nargs=2, metavar=("ROOT", "APPROACH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        from jobs.process_setup import set_up_process

        set_up_process()  # as the `fraudwatch` command does before its first import of numpy
        print(json.dumps(measure(Path(args.measure[0]), args.measure[1])))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or Path(tmp)
        if not (root / "config.toml").exists():
            t = time.perf_counter()
            build_warehouse(root, history_rows=args.history_rows, new_rows=args.new_rows)
            print(
                f"built {args.history_rows:,} + {args.new_rows:,} rows in {time.perf_counter() - t:.0f} s"
            )
        keyed = ensure_keys(root)
        if keyed is not None:
            print(f"keyed every row (rebuild-keys) in {keyed:.0f} s")
        print(f"load average {os.getloadavg()[0]:.1f} (2 cores); {memory_touch_mb_s().line()}")
        approaches = ["sweep"] if args.sweep_only else ["sweep", "sql"]
        approaches += [] if args.skip_plain or args.sweep_only else ["plain"]
        got = {}
        for approach in approaches:
            r = measure_fresh([__file__, "--measure", str(root), approach])
            got[approach] = r
            extra = ""
            if approach == "sweep":
                extra = (
                    f"  second call in the process {r['second_call_s']:.1f} s "
                    f"(peak then {r['second_call_peak_mb']:,.0f} MB); steps {r['steps']}"
                )
            print(
                f"{approach:6s} {r['seconds']:7.1f} s  peak RSS {r['peak_mb']:,.0f} MB "
                f"(process before: {r['base_mb']:,.0f} MB)  rows {r['rows']:,}{extra}"
            )
        sweep = pl.read_parquet(root / "sweep.parquet")
        for other in ("sql", "plain"):
            if (root / f"{other}.parquet").exists():
                ok, how = compare(sweep, pl.read_parquet(root / f"{other}.parquet"))
                print(f"sweep vs {other}: {'same values' if ok else 'DIFFERENT'} ({how})")
        if "sql" in got:
            speed = got["sql"]["seconds"] / got["sweep"]["seconds"]
            print(f"speed-up {speed:.1f}x over the SQL path in this run")
        print(f"load average now {os.getloadavg()[0]:.1f}")


def ensure_keys(root: Path) -> float | None:
    """Key the warehouse if rows were written without keys; the seconds it took, if it did."""
    from jobs.config import load_config
    from jobs.keys import keys_current, rebuild_keys
    from jobs.warehouse import open_configured, transaction

    cfg = load_config(root / "config.toml")
    con = open_configured(cfg, read_only=True)
    current = keys_current(con)
    con.close()
    if current:
        return None
    con = open_configured(cfg)
    try:
        t = time.perf_counter()
        with transaction(con):
            rebuild_keys(con)
        con.execute("CHECKPOINT")
        return time.perf_counter() - t
    finally:
        con.close()


if __name__ == "__main__":
    main()
