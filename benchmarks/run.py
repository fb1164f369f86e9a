"""Run benchmark: `fraudwatch run` on 1 million new transactions with 30 days of history.

Prints the time of each stage, the total and the peak memory, and in the same
run the time of a bare ``booster.predict`` (2 threads) of the same model on the
same feature matrix; then the same run for a 5-million-row backlog in a fresh
process, to show memory stays flat (scoring works in bounded batches).

Issue 4's targets: whole-run throughput at least half the bare predict's
(ratio >= 0.5), peak memory under 2 GB, and the same peak for a 5M backlog.

    .venv/bin/python benchmarks/run.py [--history-rows 30000000] [--new-rows 1000000]
        [--backlog 5000000] [--memory-limit 1.2GB]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

import lightgbm as lgb
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import build_warehouse, measure_fresh, peak_rss_mb, run_measured


def measure(history: int, new: int, memory_limit: str | None) -> dict[str, float]:
    from jobs.features import compute_features
    from jobs.model_inputs import encode
    from jobs.registry_access import open_registry
    from jobs.training import train_version
    from jobs.warehouse import open_configured

    with tempfile.TemporaryDirectory() as tmp:
        cfg = build_warehouse(
            Path(tmp), history_rows=history, new_rows=new, memory_limit=memory_limit
        )
        t = time.perf_counter()
        model = train_version(cfg, start=date(2026, 1, 29), end=date(2026, 1, 30))  # type: ignore[arg-type]
        train_s = time.perf_counter() - t
        reg = open_registry(cfg)  # type: ignore[arg-type]
        # The benchmark's labels are noise, so early stopping keeps a tree or two. Register a
        # production-sized model instead (300 trees x 63 leaves) on the same features.
        lineage = reg.get_version("fraud", model.version).lineage
        con = open_configured(cfg)  # type: ignore[arg-type]
        day = compute_features(con, cfg, start=datetime(2026, 1, 29), end=datetime(2026, 1, 30))  # type: ignore[arg-type]
        con.close()
        x_day = encode(
            day, lineage.feature_names, lineage.categorical_features, lineage.categorical_vocab
        )
        y_day = np.random.default_rng(1).random(len(x_day)) < 0.01
        big = lgb.train(
            {"objective": "binary", "num_leaves": 63, "min_data_in_leaf": 20, "verbose": -1},
            lgb.Dataset(x_day, y_day, feature_name=list(lineage.feature_names)),
            num_boost_round=300,
        )
        model = reg.register_version("fraud", big.model_to_string(), lineage)
        reg.set_alias("fraud", "champion", model.version, kind="force", reason="benchmark")
        reg.clear_alias("fraud", "challenger")
        con = open_configured(cfg)  # type: ignore[arg-type]
        con.execute(
            "INSERT INTO scores SELECT transaction_id, 'fraud', ?, 'champion', 0, now(), 'history' "
            "FROM transactions WHERE event_time < '2026-01-31'",
            [model.version],
        )
        # as yesterday's run would have left it: the history is scored
        con.execute(
            "INSERT INTO scoring_state SELECT 'fraud', max(ingested_at), now(), 'history' "
            "FROM transactions WHERE event_time < '2026-01-31'"
        )
        con.close()
        base = peak_rss_mb()
        run_s, summary, run_peak = run_once(cfg, Path(tmp))
        # the same command again with nothing left to score: what every run costs before
        # its first row (starting Python, importing LightGBM, opening the stores)
        empty_s, empty, _ = run_once(cfg, Path(tmp))
        assert empty["counts"]["score"]["scored"] == 0
        # the bare model on the same feature matrix
        con = open_configured(cfg)  # type: ignore[arg-type]
        feats = compute_features(con, cfg, start=datetime(2026, 1, 31))  # type: ignore[arg-type]
        info = reg.get_version("fraud", model.version)
        x = encode(
            feats,
            info.lineage.feature_names,
            info.lineage.categorical_features,
            info.lineage.categorical_vocab,
        )
        booster = reg.load_booster("fraud", model.version)
        t = time.perf_counter()
        booster.predict(x, num_threads=2)
        bare_s = time.perf_counter() - t
        con.close()
        return {
            "new_rows": summary["counts"]["score"]["scored"],
            "train_s": train_s,
            "run_s": run_s,
            "stages": summary["counts"]["seconds"],
            "scoring_steps": summary["counts"]["score"]["seconds"],
            "empty_run_s": empty_s,
            "bare_predict_s": bare_s,
            "trees": booster.num_trees(),
            "memory_limit": cfg.settings.warehouse.memory_limit,  # type: ignore[attr-defined]
            "peak_rss_mb": run_peak,
            "rss_before_run_mb": base,
        }  # type: ignore[return-value]


def run_once(cfg: object, tmp: Path) -> tuple[float, dict, float]:
    """`fraudwatch run` in a fresh process: seconds, its summary, its own peak RSS in MB."""
    command = [sys.executable, "-m", "jobs.cli_main", "run", "--no-reports", "--json"]
    command += ["--config", str(cfg.path)]  # type: ignore[attr-defined]
    out, err = tmp / "run.out", tmp / "run.err"
    seconds, code, peak = run_measured(command, out, err)
    if code != 0:
        raise RuntimeError(err.read_text()[-3000:])
    return seconds, json.loads(out.read_text()), peak


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--history-rows", type=int, default=30_000_000)
    ap.add_argument("--new-rows", type=int, default=1_000_000)
    ap.add_argument("--backlog", type=int, default=5_000_000)
    ap.add_argument(
        "--memory-limit", help="[warehouse] memory_limit for the run (default: the config's)"
    )
    ap.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.history_rows, args.new_rows, args.memory_limit)))
        return
    results = []
    for new in (args.new_rows, args.backlog):
        r = measure_fresh(
            [
                __file__,
                "--measure",
                "--history-rows",
                str(args.history_rows),
                "--new-rows",
                str(new),
                *(["--memory-limit", args.memory_limit] if args.memory_limit else []),
            ]
        )
        results.append(r)
        ratio = (r["new_rows"] / r["run_s"]) / (r["new_rows"] / r["bare_predict_s"])
        print(
            f"{r['new_rows']:,} new rows ({args.history_rows:,} history), model {r['trees']} trees, "
            f"DuckDB memory_limit {r['memory_limit']}"
        )
        print(f"  run total      {r['run_s']:.1f} s  stages {r['stages']}")
        print(f"  scoring steps  {r['scoring_steps']}")
        print(f"  empty run      {r['empty_run_s']:.1f} s (nothing to score: start-up and stores)")
        print(
            f"  bare predict   {r['bare_predict_s']:.1f} s ({r['new_rows'] / r['bare_predict_s']:,.0f} rows/s)"
        )
        print(
            f"  run throughput {r['new_rows'] / r['run_s']:,.0f} rows/s, ratio to bare predict {ratio:.2f} (target >= 0.5)"
        )
        print(f"  peak RSS       {r['peak_rss_mb']:,.0f} MB (target < 2,048 MB)")
        # with free features and writes, a run still starts up and predicts
        ceiling = r["bare_predict_s"] / (r["empty_run_s"] + r["bare_predict_s"])
        print(
            f"  ceiling        ratio {ceiling:.2f} if features and writes took no time "
            "(bare predict / (empty run + bare predict))"
        )
    print(
        f"peak RSS {results[0]['peak_rss_mb']:,.0f} MB for {results[0]['new_rows']:,} vs {results[1]['peak_rss_mb']:,.0f} MB for {results[1]['new_rows']:,}"
    )


if __name__ == "__main__":
    main()
