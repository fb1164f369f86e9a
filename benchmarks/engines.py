"""The same day of transactions through both engines: DuckDB vs Spark local[1] and local[2].

A simulated deployment (``--cards`` cards, ``--history-days`` days of history, a champion
trained on them) is built once. Then, for each engine, a fresh process copies it, ingests
the history with that engine (not timed), lands the next day's files and times what a run
does with them: ingest, then features and scores (alerts included). It prints throughput
and the peak memory of the whole process tree during the timed part (for Spark: the
Python driver, the JVM and its Python workers, summed), and the machine's load average.

    .venv/bin/python benchmarks/engines.py                 # 20,000 cards: ~44k rows a day
    .venv/bin/python benchmarks/engines.py --cards 100000  # ~220k rows a day
    .venv/bin/python benchmarks/engines.py --driver-rows 250000,1000000

``--driver-rows``: how much driver memory Spark training needs per training row. For each
size, a fresh process receives a sampled training set as Spark hands it over (an Arrow
table of keys, the 25 features and the label), turns it into the sorted frame, and fits
with weights (:func:`jobs.training.fit`); it prints its peak resident memory above what it
held before, and the bytes per row between two sizes.

The machine is shared: read the figures next to the load average printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

START = date(2026, 3, 2)
CONFIG = """
data_dir = "var"

[source]
transactions = "landing/transactions/*.parquet"
labels = "landing/labels/*.parquet"
label_delay_days = 7

[source.numeric_columns]
distance_km = "distance_km"

[source.categorical_columns]
channel = "channel"

[training.quality]
min_rows = 500
min_frauds = 20

[model]
num_boost_round = 100

[alerts]
channels = ["file"]

[reports]
cadence = "never"

[spark]
master = "{master}"
warehouse = "var/spark-warehouse"

[spark.conf]
"spark.ui.enabled" = false
"spark.sql.shuffle.partitions" = {partitions}
"spark.driver.memory" = "2g"
"""


def _tree_rss_mb(root: int) -> float:
    """Resident memory of ``root`` and all its descendants, in MB (from /proc)."""
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
                parents[int(name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == pid and p not in tree]
        tree.update(kids)
        frontier += kids
    total = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


class TreePeak:
    """The peak of :func:`_tree_rss_mb` for this process, sampled every 0.2 s."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _tree_rss_mb(os.getpid()))
            self._stop.wait(0.2)

    def __enter__(self) -> TreePeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def build(base: Path, cards: int, history_days: int) -> None:
    """Landing files for history + 1 days (the last held aside) and a champion."""
    from jobs.config import load_config
    from jobs.ingest import ingest
    from jobs.promotion import promote
    from jobs.simulate import SimulationOptions, simulate
    from jobs.training import train_version
    from jobs.warehouse import warehouse

    base.mkdir(parents=True)
    (base / "config.toml").write_text(CONFIG.format(master="local[2]", partitions=4))
    options = SimulationOptions(n_cards=cards, n_merchants=max(50, cards // 20))
    simulate(base / "landing", start=START, days=history_days + 1, seed=3, options=options)
    day = START + timedelta(days=history_days)
    for feed in ("transactions", "labels"):
        held = base / "newday" / feed
        held.mkdir(parents=True)
        for f in (base / "landing" / feed).glob(f"{day:%Y-%m-%d}*"):
            f.rename(held / f.name)
    cfg = load_config(base / "config.toml")
    with warehouse(cfg.warehouse_path, extra_columns=cfg.extra_columns()) as con:
        ingest(con, cfg)
    version = train_version(cfg, start=START, end=day)
    promote(cfg, version.version, force=True, reason="benchmark champion", actor="bench")
    cfg.warehouse_path.unlink()  # each engine ingests the history itself


def measure(base: Path, engine: str) -> dict[str, object]:
    """In this (fresh) process: the engine's history ingest, then the timed new day."""
    from jobs.config import load_config

    work = Path(tempfile.mkdtemp(prefix=f"fw-engines-{engine}-"))
    shutil.copytree(base, work / "d")
    root = work / "d"
    master = {"spark1": "local[1]", "spark2": "local[2]"}.get(engine, "local[2]")
    partitions = 2 if engine == "spark1" else 4
    (root / "config.toml").write_text(CONFIG.format(master=master, partitions=partitions))
    cfg = load_config(root / "config.toml")
    out: dict[str, object] = {"engine": engine}
    run_id = "bench"
    try:
        if engine == "duckdb":
            from jobs.ingest import ingest
            from jobs.registry_access import open_registry
            from jobs.scoring import score_pending
            from jobs.warehouse import warehouse

            with warehouse(cfg.warehouse_path, extra_columns=cfg.extra_columns()) as con:
                ingest(con, cfg)
            _land_new_day(root)
            with TreePeak() as peak:
                t = time.perf_counter()
                with warehouse(cfg.warehouse_path, extra_columns=cfg.extra_columns()) as con:
                    got = ingest(con, cfg)
                    out["ingest_s"] = time.perf_counter() - t
                    score_pending(con, cfg, open_registry(cfg), run_id)
                out["total_s"] = time.perf_counter() - t
        else:
            from jobs.registry_access import open_registry
            from jobs.spark.ingest import spark_ingest
            from jobs.spark.scoring import spark_score
            from jobs.spark.session import spark_session

            t = time.perf_counter()
            spark = spark_session(cfg)
            spark.sparkContext.setLogLevel("ERROR")
            out["session_s"] = time.perf_counter() - t
            spark_ingest(spark, cfg)
            _land_new_day(root)
            with TreePeak() as peak:
                t = time.perf_counter()
                got = spark_ingest(spark, cfg)
                out["ingest_s"] = time.perf_counter() - t
                spark_score(spark, cfg, open_registry(cfg), run_id)
                out["total_s"] = time.perf_counter() - t
            spark.stop()
        rows = got.rows_loaded
        total = float(out["total_s"])  # type: ignore[arg-type]
        out.update(rows=rows, rows_per_s=rows / total, peak_tree_mb=peak.peak)
        out["load_average"] = os.getloadavg()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def driver_memory(rows: int) -> dict[str, object]:
    """Peak resident memory of a driver training on ``rows`` sampled rows (one process)."""
    import resource

    import numpy as np
    import polars as pl
    import pyarrow as pa

    from jobs.config import load_config
    from jobs.features import feature_spec
    from jobs.training import TrainingData, TrainingWindow, fingerprint, fit

    folder = Path(tempfile.mkdtemp(prefix="fw-driver-"))
    try:
        # memory is the data's, not the trees': a few rounds are enough to measure it
        text = CONFIG.format(master="local[1]", partitions=1)
        (folder / "config.toml").write_text(
            text.replace("num_boost_round = 100", "num_boost_round = 5")
        )
        cfg = load_config(folder / "config.toml")
        spec = feature_spec(cfg)
        rng = np.random.default_rng(1)
        t0 = np.datetime64("2026-01-01T00:00:00", "us")

        def kb() -> float:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        before = kb()
        fraud = rng.random(rows) < 0.05
        cols: dict[str, object] = {
            "transaction_id": pa.array([f"tx-{i:012d}" for i in range(rows)]),
            "event_time": pa.array(t0 + rng.integers(0, 30 * 86_400_000_000, rows)),
            "card_id": pa.array([f"card-{i % 200_000:07d}" for i in range(rows)]),
            "merchant_id": pa.array([f"m-{i % 20_000:06d}" for i in range(rows)]),
        }
        for name in spec.names:
            if name in spec.categorical:
                cols[name] = pa.array(rng.choice(["pos", "online", "atm"], rows))
            else:
                cols[name] = pa.array(rng.normal(size=rows) + fraud)
        cols["is_fraud"] = pa.array(fraud)
        table = pa.table(cols)  # as spark_training_set's toArrow() returns it
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        frame = frame.sort(["event_time", "transaction_id"])
        del table, cols
        start = datetime(2026, 1, 1)
        window = TrainingWindow(start, start + timedelta(days=30), start, start)
        data = TrainingData(
            window, frame, spec.names, spec.categorical, 1.0, fingerprint(frame, spec.names)
        )
        weights = np.where(frame["is_fraud"].to_numpy(), 1.0, 10.0)
        t = time.perf_counter()
        fit(cfg, data, weights=weights)
        return {
            "rows": rows,
            "peak_mb": kb(),
            "before_mb": before,
            "fit_s": time.perf_counter() - t,
            "load_average": os.getloadavg(),
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _in_fresh_process(args: list[str], what: str) -> dict[str, Any] | None:
    """This script run with ``args`` in a fresh process: the JSON of its last JSON line, or
    None (``what`` failed, with the end of its stderr printed)."""
    proc = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        print(f"{what}: failed\n{proc.stderr[-3000:]}")
        return None
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _driver_rows(sizes: list[int]) -> None:
    results = []
    for n in sizes:
        r = _in_fresh_process(["--measure-driver", str(n)], f"{n:,} rows")
        if r is None:
            return
        results.append(r)
        grown = r["peak_mb"] - r["before_mb"]
        print(
            f"driver training on {n:>10,} rows: peak {r['peak_mb']:,.0f} MB ({grown:,.0f} MB "
            f"above start, {grown * 2**20 / n:,.0f} B/row), fit {r['fit_s']:.1f} s; load "
            f"average {', '.join(f'{x:.1f}' for x in r['load_average'])}",
            flush=True,
        )
    if len(results) > 1:
        a, b = results[0], results[-1]
        slope = (b["peak_mb"] - a["peak_mb"]) * 2**20 / (b["rows"] - a["rows"])
        print(f"driver memory per training row (between the sizes): {slope:,.0f} B")


def _land_new_day(root: Path) -> None:
    for feed in ("transactions", "labels"):
        for f in (root / "newday" / feed).iterdir():
            f.rename(root / "landing" / feed / f.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=20_000)
    parser.add_argument("--history-days", type=int, default=7)
    parser.add_argument("--engines", default="duckdb,spark1,spark2")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: engine,base
    parser.add_argument("--driver-rows", help="sizes for the driver memory of training")
    parser.add_argument("--measure-driver", type=int, help=argparse.SUPPRESS)  # internal
    args = parser.parse_args()
    if args.measure_driver:
        print(json.dumps(driver_memory(args.measure_driver)))
        return
    if args.driver_rows:
        _driver_rows([int(n) for n in args.driver_rows.split(",")])
        return
    if args.measure:
        engine, base = args.measure.split(",", 1)
        print(json.dumps(measure(Path(base), engine)))
        return
    base = Path(tempfile.mkdtemp(prefix="fw-engines-")) / "base"
    try:
        t = time.perf_counter()
        build(base, args.cards, args.history_days)
        print(f"built {args.history_days} days + 1 of {args.cards:,} cards in "
              f"{time.perf_counter() - t:.0f} s; load average {os.getloadavg()}", flush=True)  # fmt: skip
        for engine in args.engines.split(","):
            r = _in_fresh_process(["--measure", f"{engine},{base}"], engine)
            if r is None:
                continue
            extra = f", session start {r['session_s']:.1f} s" if "session_s" in r else ""
            print(
                f"{engine:7} {r['rows']:>9,} rows: ingest {r['ingest_s']:.1f} s, ingest + "
                f"score {r['total_s']:.1f} s = {r['rows_per_s']:,.0f} rows/s; peak (process "
                f"tree) {r['peak_tree_mb']:,.0f} MB{extra}; load average "
                f"{', '.join(f'{x:.1f}' for x in r['load_average'])}",
                flush=True,
            )
    finally:
        shutil.rmtree(base.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
