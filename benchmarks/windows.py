"""Write-windows benchmark (issue 14, point 5): what short windows on the warehouse cost.

Ingest and scoring open the warehouse read-write only for each write
(jobs/warehouse_windows.py), so analysts read during a run. This measures, on two copies of
the same deployment (history never scored, a champion, a new day landed as a Parquet file:
scoring's backlog is the whole warehouse), the ingest and scoring stages run in-process both
ways: through windows, as a run does, and with one
read-write connection held throughout (how they ran before). It prints each stage's seconds
both ways, the windows (count, total and longest seconds the file was held read-write),
and the load average.

    .venv/bin/python benchmarks/windows.py [--history-rows 2000000] [--new-rows 200000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_new_rows, build_warehouse


def _stages(cfg: Any, windows: bool) -> dict[str, Any]:
    from jobs.ingest import ingest
    from jobs.registry_access import open_registry
    from jobs.runs import recorded_run
    from jobs.scoring import score_pending
    from jobs.warehouse import configured_warehouse
    from jobs.warehouse_windows import Windows

    out: dict[str, Any] = {}
    reg = open_registry(cfg)
    with recorded_run(cfg, "bench") as rec:
        for stage in ("ingest", "score"):
            t = time.perf_counter()
            if windows:
                with Windows(cfg) as access:
                    if stage == "ingest":
                        ingest(access, cfg)
                    else:
                        score_pending(access, cfg, reg, rec.run_id)
                out[f"{stage}_windows"] = access.stats.to_dict()
            else:
                with configured_warehouse(cfg) as con:
                    if stage == "ingest":
                        ingest(con, cfg)
                    else:
                        score_pending(con, cfg, reg, rec.run_id)
            out[f"{stage}_s"] = time.perf_counter() - t
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--history-rows", type=int, default=2_000_000)
    ap.add_argument("--history-days", type=int, default=10)
    ap.add_argument("--new-rows", type=int, default=200_000)
    args = ap.parse_args()
    from jobs.config import load_config
    from jobs.promotion import promote
    from jobs.training import train_version

    shape = {"history_rows": args.history_rows, "new_rows": args.new_rows}
    shape["days"] = args.history_days
    last = date(2026, 1, 1) + timedelta(days=args.history_days)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "a"
        cfg: Any = build_warehouse(root, defer_new=True, **shape)
        model = train_version(cfg, start=last - timedelta(days=1), end=last)
        promote(cfg, model.version, reason="benchmark", actor="benchmark", force=True)
        add_new_rows(cfg, **shape, land=True)
        shutil.copytree(root, Path(tmp) / "b")
        held = _stages(cfg, windows=False)
        through = _stages(load_config(Path(tmp) / "b" / "config.toml"), windows=True)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{args.new_rows:,} new rows over {args.history_rows:,} history (load average {load})")
    for stage in ("ingest", "score"):
        w = through[f"{stage}_windows"]
        mean = w["write_seconds"] / w["writes"] if w["writes"] else 0.0
        print(
            f"  {stage:6s} held throughout {held[f'{stage}_s']:.1f} s; through windows "
            f"{through[f'{stage}_s']:.1f} s ({through[f'{stage}_s'] / held[f'{stage}_s']:.2f}x); "
            f"{w['writes']} write window(s), {w['write_seconds']:.2f} s in all, mean "
            f"{mean:.3f} s, longest {w['longest_write']:.3f} s"
        )


if __name__ == "__main__":
    main()
