"""Helpers shared by the benchmarks: peak memory and synthetic data at scale."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import duckdb


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB).

    It includes the peak of the process that started this one: Linux records the old
    memory's high-water mark at exec (and Python starts children with vfork), so a child
    of a large benchmark process reports at least the parent's peak. To measure a command
    on its own, use :func:`run_measured`.
    """
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


_TOUCH = """
import json, time
import numpy as np
seconds = []
for _ in range(2):
    t = time.perf_counter()
    a = np.empty(1 << 26, np.int64)  # 512 MiB
    a.fill(1)
    seconds.append(time.perf_counter() - t)
    del a
print(json.dumps({"fresh": 512 / seconds[0], "again": 512 / seconds[1]}))
"""


class MemorySpeed(NamedTuple):
    """MB/s written by a fresh process: its first write with small pages (as fraudwatch
    sets numpy), its first with numpy's huge-page advice, and a write again once freed."""

    fresh: float
    fresh_huge: float
    again: float

    def line(self) -> str:
        return (
            f"memory written {self.fresh:,.0f} MB/s fresh ({self.fresh_huge:,.0f} with huge "
            f"pages), {self.again:,.0f} MB/s again (benchmarks/common.py: memory_touch_mb_s)"
        )


def memory_touch_mb_s() -> MemorySpeed:
    """How fast a fresh process can first write memory, and write it again once freed. On a
    VM that hands unused memory back to its host (virtio-balloon free page reporting, as on
    the shared machine these figures come from) a first touch is a fault in the host, and
    huge pages (numpy's default advice, which fraudwatch turns off: jobs/process_setup.py)
    may first wait for the kernel to compact memory: 2026-12-02, 1,100-2,000 MB/s with
    small pages, 90-4,600 with huge ones, ~2,000 again. A cron process's memory is
    all fresh; a long-lived process (``fraudwatch schedule``) reuses its own. Printed with
    the figures so they can be read on another machine."""
    small = measure_fresh(["-c", _TOUCH], {"NUMPY_MADVISE_HUGEPAGE": "0"})
    huge = measure_fresh(["-c", _TOUCH], {"NUMPY_MADVISE_HUGEPAGE": "1"})
    return MemorySpeed(float(small["fresh"]), float(huge["fresh"]), float(small["again"]))


# A small Python process starts the command and reports its rusage: the command's peak
# then includes at most this launcher's (~10 MB), never the large benchmark process's.
_LAUNCHER = """
import json, os, subprocess, sys
out, err, *command = sys.argv[1:]
with open(out, "w") as o, open(err, "w") as e:
    proc = subprocess.Popen(command, stdout=o, stderr=e)
    _, status, usage = os.wait4(proc.pid, 0)
print(json.dumps({"code": os.waitstatus_to_exitcode(status), "maxrss_kb": usage.ru_maxrss,
                  "cpu_s": usage.ru_utime + usage.ru_stime}))
"""


def measure_fresh(args: list[str], env: dict[str, str] | None = None) -> dict:
    """Run ``python args...`` through the launcher (with ``env`` added to the environment)
    and return the JSON of its last output line: a measurement in a fresh process whose
    peak memory is its own."""
    with tempfile.TemporaryDirectory() as tmp:
        out, err = Path(tmp) / "out", Path(tmp) / "err"
        code = run_measured([sys.executable, *args], out, err, env).code
        if code != 0:
            sys.exit(f"the measurement {args} failed:\n{err.read_text()[-3000:]}")
        return json.loads(out.read_text().strip().splitlines()[-1])


class Measured(NamedTuple):
    seconds: float  # wall
    code: int  # exit code
    peak_mb: float  # the command's own peak resident memory
    cpu_s: float  # its CPU time (user + system, all threads): steadier than wall under load


def run_measured(
    command: list[str], out: Path, err: Path, env: dict[str, str] | None = None
) -> Measured:
    """Run ``command`` (stdout to ``out``, stderr to ``err``, ``env`` added to the
    environment) and measure it. The set-up's writes go to disk first: a warehouse written
    (or copied) just before would otherwise be flushed by the command's first fsync, its
    first checkpoint (0.7-0.9 s for the 480 MB of `run.py`'s 10M rows), a cost of the
    set-up, not of the command, that a scheduled run does not find."""
    os.sync()
    t = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, str(out), str(err), *command],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env} if env else None,
    )
    seconds = time.perf_counter() - t
    report = json.loads(done.stdout)
    return Measured(seconds, int(report["code"]), report["maxrss_kb"] / 1024, report["cpu_s"])


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


def _insert_transactions(
    con: duckdb.DuckDBPyConnection,
    lo: int,
    hi: int,
    *,
    history_rows: int,
    new_rows: int,
    days: int,
    cards: int,
    merchants: int,
    table: str = "transactions",
    random_ids: bool = False,
) -> None:
    """Rows ``lo <= i < hi`` of the synthetic stream: the history over ``days`` days, then
    ``new_rows`` on the next day (ingested now; the history a day ago). Ids grow with time
    (``tx0000000042``), or with ``random_ids`` look random (the md5 of that id, as UUIDs do:
    no id range bounds a search of the history)."""
    ident = (
        "md5('tx' || lpad(i::VARCHAR, 10, '0'))"
        if random_ids
        else "'tx' || lpad(i::VARCHAR, 10, '0')"
    )
    con.execute(
        f"""
        INSERT INTO {table} (transaction_id, event_time, card_id, merchant_id, amount,
                                  source_file, source_row, ingested_at, distance_km, channel)
        SELECT {ident},
               CASE WHEN i < {history_rows}
                    THEN TIMESTAMP '2026-01-01' + to_microseconds((i * ({days} * 86400e6 / {history_rows}))::BIGINT)
                    ELSE TIMESTAMP '2026-01-01' + INTERVAL {days} DAY
                         + to_microseconds(((i - {history_rows}) * (86400e6 / {max(new_rows, 1)}))::BIGINT) END,
               'c' || (hash(i * 7) % {cards})::VARCHAR,
               'm' || (hash(i * 13) % {merchants})::VARCHAR,
               round(exp((hash(i * 3) % 1000) / 250.0 + 1), 2),
               'bench', i,
               -- the history was ingested a day before the new rows (yesterday's run)
               CASE WHEN i < {history_rows} THEN now() - INTERVAL 1 DAY ELSE now() END,
               (hash(i * 5) % 5000) / 10.0,
               CASE hash(i * 11) % 10 WHEN 0 THEN 'online' WHEN 1 THEN 'atm' ELSE 'pos' END
        FROM range({lo}, {hi}) t(i)
        """
    )


def build_warehouse(
    root: Path,
    *,
    history_rows: int,
    new_rows: int,
    days: int = 30,
    cards: int = 500_000,
    merchants: int = 50_000,
    memory_limit: str | None = None,
    defer_new: bool = False,
    random_ids: bool = False,
) -> object:
    """A deployment folder with a warehouse of ``history_rows`` over ``days`` days, then
    ``new_rows`` on the next day, generated in DuckDB (no Python row objects). Returns the Config.

    ``defer_new`` leaves the new rows out: :func:`add_new_rows` lands them later (after the
    history has been scored and reported on, as yesterday's run would have left it)."""
    from jobs.config import load_config
    from jobs.warehouse import open_warehouse

    (root / "landing").mkdir(parents=True, exist_ok=True)  # empty: rows go in by SQL
    (root / "config.toml").write_text(
        'data_dir = "var"\n[source]\ntransactions = "landing/*.parquet"\n'
        '[source.numeric_columns]\ndistance_km = "distance_km"\n'
        '[source.categorical_columns]\nchannel = "channel"\n'
        "[training.quality]\nmin_rows = 100\nmin_frauds = 10\n"
        "[model]\nnum_boost_round = 300\nearly_stopping_rounds = 300\n"
        "[model.params]\nnum_leaves = 63\nmin_data_in_leaf = 20\n"
        + (f'[warehouse]\nmemory_limit = "{memory_limit}"\n' if memory_limit else "")
    )
    cfg = load_config(root / "config.toml")
    con = open_warehouse(cfg.warehouse_path, extra_columns=cfg.extra_columns())
    shape: dict[str, Any] = dict(
        history_rows=history_rows,
        new_rows=new_rows,
        days=days,
        cards=cards,
        merchants=merchants,
        random_ids=random_ids,
    )
    _insert_transactions(con, 0, history_rows if defer_new else history_rows + new_rows, **shape)
    # a few fraud labels, reported a day later, so merchant fraud rates are not all zero
    con.execute(
        f"INSERT INTO labels ({LABEL_COLUMNS}) SELECT transaction_id, true, event_time + INTERVAL 1 DAY, 'bench', 0, now() "
        f"FROM transactions WHERE hash(transaction_id) % 200 = 0 AND event_time < TIMESTAMP '2026-01-01' + INTERVAL {days} DAY"
    )
    key_rows(con, rebuild=True)
    con.execute("CHECKPOINT")
    con.close()
    return cfg


LABEL_COLUMNS = "transaction_id, is_fraud, reported_at, source_file, source_row, ingested_at"


def key_rows(con: duckdb.DuckDBPyConnection, *, rebuild: bool = False) -> None:
    """Key the rows written here by SQL, as ingest keys what it loads (jobs/keys.py), so the
    features take the sweep as they do after an ingest."""
    from jobs.keys import assign_keys, rebuild_keys
    from jobs.warehouse import transaction

    with transaction(con):
        (rebuild_keys if rebuild else assign_keys)(con)


def add_new_rows(
    cfg: object,
    *,
    history_rows: int,
    new_rows: int,
    days: int = 30,
    cards: int = 500_000,
    merchants: int = 50_000,
    land: bool = False,
    random_ids: bool = False,
) -> None:
    """Land the new day's rows of a warehouse built with ``defer_new``: with ``land``, as a
    Parquet file in the landing folder (the measured run ingests it, as cron's does), else
    inserted by SQL."""
    from jobs.warehouse import open_configured

    con = open_configured(cfg)  # type: ignore[arg-type]
    shape: dict[str, Any] = dict(
        history_rows=history_rows,
        new_rows=new_rows,
        days=days,
        cards=cards,
        merchants=merchants,
        random_ids=random_ids,
    )
    if land:
        con.execute("CREATE TEMP TABLE fw_new_day AS SELECT * FROM transactions LIMIT 0")
        _insert_transactions(
            con,
            history_rows,
            history_rows + new_rows,
            **shape,
            table="fw_new_day",
        )
        landing = cfg.path.parent / "landing" / "new-day.parquet"  # type: ignore[attr-defined]
        con.execute(
            "COPY (SELECT transaction_id, event_time, card_id, merchant_id, amount, distance_km, "
            f"channel FROM fw_new_day) TO '{landing}' (FORMAT parquet)"
        )
        con.execute("DROP TABLE fw_new_day")
    else:
        _insert_transactions(con, history_rows, history_rows + new_rows, **shape)
    # and the day's chargebacks for earlier transactions: the performance report's inputs move
    con.execute(
        f"INSERT INTO labels ({LABEL_COLUMNS}) SELECT transaction_id, true, TIMESTAMP '2026-01-01' + "
        f"INTERVAL {days} DAY + INTERVAL 12 HOUR, 'bench-new', 0, now() FROM transactions "
        f"WHERE hash(transaction_id) % 997 = 1 AND event_time < TIMESTAMP '2026-01-01' + INTERVAL {days} DAY"
    )
    key_rows(con)
    con.execute("CHECKPOINT")
    con.close()


# An analyst alongside a run: open the warehouse read-only, query, close, in a loop; a
# connection that lands inside a write window is retried every 5 ms. Prints what it saw.
_ANALYST = """
import json, os, sys, time, duckdb
path, stop = sys.argv[1], sys.argv[2]
seen = {"queries": 0, "retried": 0, "failed": 0, "longest_retry_s": 0.0, "retry_s": []}
while not os.path.exists(stop):
    began, tries = time.monotonic(), 0
    while True:
        tries += 1
        try:
            with duckdb.connect(path, read_only=True) as con:
                con.execute("SELECT count(*), max(scored_at) FROM scores").fetchall()
            seen["queries"] += 1
            break
        except duckdb.IOException:
            if time.monotonic() - began > 60:
                seen["failed"] += 1
                break
            time.sleep(0.005)
    if tries > 1:
        waited = time.monotonic() - began
        seen["retried"] += 1
        seen["retry_s"].append(round(waited, 3))
        seen["longest_retry_s"] = max(seen["longest_retry_s"], waited)
    time.sleep(0.05)
print(json.dumps(seen))
"""


@contextmanager
def analyst_alongside(warehouse: Path, out: dict) -> Iterator[None]:
    """An analyst's process querying ``warehouse`` in a loop during the block; what it saw
    (queries, how many were retried, the longest retry) goes into ``out``."""
    stop = warehouse.parent / "analyst.stop"
    proc = subprocess.Popen(
        [sys.executable, "-c", _ANALYST, str(warehouse), str(stop)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield
    finally:
        stop.touch()
        seen = json.loads(proc.communicate(timeout=120)[0])
        stop.unlink()
        retries = sorted(seen.pop("retry_s"))
        seen["median_retry_s"] = retries[len(retries) // 2] if retries else 0.0
        out.update(seen)
