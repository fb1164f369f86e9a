"""Features by the sweep: :func:`jobs.features.compute_features` on the keyed state.

The target rows are found in DuckDB (by time range, or by id bounded by the ids' range and
times), their card and merchant features come from :func:`jobs.sweep.sweep`, and the table
has the columns, types and row order of :func:`jobs.feature_sql.feature_sql`'s.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import datetime

import duckdb
import pyarrow as pa

from jobs import logs
from jobs.config import Config
from jobs.feature_sql import extra_feature_columns, time_of_day_columns
from jobs.features import feature_spec, quote_ident
from jobs.lean_imports import arrow_without_pandas
from jobs.sweep import SweepStats

log = logs.get("features")
ORDER = "ORDER BY x.event_time, x.transaction_id"  # the output's order


def _target_rows(
    con: duckdb.DuckDBPyConnection,
    cols: str,
    start: datetime | None,
    end: datetime | None,
    ids_table: str | None,
) -> pa.Table:
    """The target rows' ``cols`` (of ``transactions x``) in output order. By id, when
    ``ids_table`` has ``event_time``: first :func:`_boxed`, the rows of the ids' id and time
    ranges; else the search is bounded by the ids' range and, when there are times, their
    time range (DuckDB then skips the row groups outside them); should the times not match
    the transactions', the search runs again unbounded."""
    if ids_table is None:
        return con.sql(
            f"SELECT {cols} FROM transactions x WHERE (?::TIMESTAMP IS NULL OR x.event_time >= ?) "
            f"AND (?::TIMESTAMP IS NULL OR x.event_time < ?) {ORDER}",
            params=[start, start, end, end],
        ).to_arrow_table()
    ids = quote_ident(ids_table)
    names = [d[0] for d in con.execute(f"SELECT * FROM {ids} LIMIT 0").description]
    timed = "event_time" in names
    if timed:  # the ids' time and id ranges, and how many rows they are
        first, last, id_low, id_high, rows = con.execute(
            f"SELECT min(event_time), max(event_time), min(transaction_id), "
            f"max(transaction_id), count(*) FROM {ids}"
        ).fetchall()[0]
        boxed = _boxed(con, cols, ids, first, last, id_low, id_high, rows)
        if boxed is not None:
            return boxed
    con.execute("DROP TABLE IF EXISTS temp.fw_target")
    con.execute(f"CREATE TEMP TABLE fw_target AS SELECT DISTINCT transaction_id FROM {ids}")
    try:
        n, low, high = con.execute(
            "SELECT count(*), min(transaction_id), max(transaction_id) FROM fw_target"
        ).fetchall()[0]
        search = f"SELECT {cols} FROM transactions x SEMI JOIN fw_target USING (transaction_id) "
        bounded = "WHERE x.transaction_id BETWEEN ? AND ?"
        if timed:
            table = con.sql(
                f"{search} {bounded} AND x.event_time BETWEEN ? AND ? {ORDER}",
                params=[low, high, first, last],
            ).to_arrow_table()
            if table.num_rows == n:
                return table
        return con.sql(f"{search} {bounded} {ORDER}", params=[low, high]).to_arrow_table()
    finally:
        con.execute("DROP TABLE IF EXISTS temp.fw_target")


def _boxed(
    con: duckdb.DuckDBPyConnection,
    cols: str,
    ids: str,
    first: datetime | None,
    last: datetime | None,
    low: str | None,
    high: str | None,
    n: int,
) -> pa.Table | None:
    """The target rows when they are all the transactions of their box (the ids' id range
    times their time range), as a scoring chunk of the newest rows is: fetched by the box's
    bounds, with no join on the ids (0.19 s against 0.41-0.49 s for 1M rows of a day over
    10M). Exact, whatever the ids table's times: the box's rows are counted first, and
    fetched only if they are as many as the ids; then the fetched ids, in output order, must
    be the ids table's in its ``(event_time, transaction_id)`` order, which holds only if
    the two are the same rows (same times). ``first``, ``last``, ``low``, ``high``: the
    ids' time and id ranges; ``n``: the ids table's rows. None otherwise: search by id."""
    box = "x.transaction_id BETWEEN ? AND ? AND x.event_time BETWEEN ? AND ?"
    bounds = [low, high, first, last]
    if (
        n == 0
        or con.execute(f"SELECT count(*) FROM transactions x WHERE {box}", bounds).fetchall()[0][0]
        != n
    ):
        return None
    table = con.sql(
        f"SELECT {cols} FROM transactions x WHERE {box} {ORDER}",
        params=bounds,
    ).to_arrow_table()
    wanted = con.sql(
        f"SELECT transaction_id FROM {ids} ORDER BY event_time, transaction_id"
    ).to_arrow_table()["transaction_id"]
    return table if wanted.equals(table["transaction_id"]) else None


def swept_features(
    con: duckdb.DuckDBPyConnection,
    cfg: Config,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    ids_table: str | None = None,
) -> pa.Table | None:
    """:func:`compute_features` by the sweep over the keyed state (:mod:`jobs.sweep`), or
    None when it cannot vouch for them (no targets, a row without keys): take the SQL path.
    The caller checks the keyed state is current (:func:`jobs.keys.keys_current`)."""
    done = swept_with_stats(con, cfg, start=start, end=end, ids_table=ids_table)
    if done is None:
        return None
    table, stats = done
    logs.event(log, "features by the sweep", "debug", rows=table.num_rows, **stats.to_dict())
    return table


def swept_with_stats(
    con: duckdb.DuckDBPyConnection,
    cfg: Config,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    ids_table: str | None = None,
) -> tuple[pa.Table, SweepStats] | None:
    """:func:`swept_features` and where its time went."""
    import numpy as np

    from jobs.sweep import Targets, Windows, sweep, warm_up

    started = time.perf_counter()

    f = cfg.settings.features
    spec = feature_spec(cfg)
    cols = ", ".join(
        [
            "x.transaction_id, x.event_time, x.card_id, x.merchant_id, x.amount",
            time_of_day_columns(f),
            *extra_feature_columns(cfg.extra_columns()),
            "x.card_key AS fw_card_key, x.merchant_key AS fw_merchant_key, "
            "epoch_us(x.event_time) AS fw_us",
        ]
    )

    # numba's start-up (loading the kernels' cached machine code, ~1 s of CPU) while DuckDB
    # finds the target rows (it releases the GIL)
    def load_kernels() -> None:
        try:
            warm_up()
        except Exception as exc:  # the sweep itself will say what is wrong
            logs.event(log, "feature sweep kernels not loaded", "warning", error=str(exc))

    arrow_without_pandas()  # before the thread: see jobs/lean_imports.py
    kernels = threading.Thread(target=load_kernels, name="fw-sweep-warm-up", daemon=True)
    kernels.start()
    try:
        target = _target_rows(con, cols, start, end, ids_table)
    finally:
        kernels.join()
    fetched = time.perf_counter()
    if (
        target.num_rows == 0
        or target["fw_card_key"].null_count
        or target["fw_merchant_key"].null_count
    ):
        return None

    def column(name: str, dtype: type) -> np.ndarray:  # writable: one compiled signature
        return np.require(target[name].to_numpy(), dtype, ["C", "W"])

    targets = Targets(
        card_key=column("fw_card_key", np.int32),
        merchant_key=column("fw_merchant_key", np.int32),
        time_us=column("fw_us", np.int64),
        amount=column("amount", np.float64),
    )
    windows = Windows(
        card=tuple(int(w) for w in f.card_windows_days),
        merchant=tuple(int(w) for w in f.merchant_windows_days),
        delay=spec.label_delay_days,
        card_history=spec.card_history_days,
    )
    result = sweep(con, targets, windows)
    if result is None:
        return None
    out: dict[str, pa.Array | pa.ChunkedArray] = {
        k: target[k] for k in ("transaction_id", "event_time", "card_id", "merchant_id")
    }
    for name in spec.names:
        if name in result.columns:
            out[name] = pa.array(result.columns[name], mask=result.nulls.get(name))
        else:
            out[name] = target[name]
    table = pa.table(out)
    seconds = {"targets": round(fetched - started, 3), **result.stats.seconds}
    wall = sum(v for k, v in seconds.items() if not k.endswith("(cpu)"))
    seconds["assemble"] = round(time.perf_counter() - started - wall, 3)
    return table, replace(result.stats, seconds=seconds)
