"""The feature sweep: exact features for target rows from the keyed state (:mod:`jobs.keys`)
by one scan of integer columns and a linear pass per card and per merchant.

The definitions are :mod:`jobs.features`' (the SQL reference, :mod:`jobs.feature_reference`,
states them plainly; the tests compare value for value). What this module does instead of SQL
(steps 1 and 2 in :mod:`jobs.sweep_scan`):

1. one scan of ``card_key, merchant_key, event_time, amount_e4`` over the longest look-back
   before the first target to the last target (four integer columns, no string ids; a span
   of time per thread), and of the few ``known_frauds`` in the merchant risk's windows;
2. a counting sort of those rows by card (time, exact amount, merchant), in place: linear,
   and memory for one extra int32 per row; and by merchant, of the rows of the days a
   merchant window's edge falls on (:func:`exact_days`: the targets' days ``D`` and
   ``D - w``, ``D - d``, ``D - d - w``), their times only. Of the other days (31 of the 38
   a day of targets looks back on with the default windows) each merchant's rows are
   counted per day: a window holds such a day whole or not at all;
3. each key's rows are then checked in time order and sorted where they are not. That is
   where *late rows* (an event time before rows stored earlier) and the scan's own order show
   up: the sweep sorts them itself, so a late row is exact without another path (the number of
   keys that needed it is in :class:`SweepStats`);
4. per target: binary searches in its card's and merchant's rows give every window's bounds
   (a merchant window's rows: those between its bounds, plus the per-day counts of the other
   days inside it); sums of exact integer amounts give the means; a stamp per merchant
   counts distinct merchants; seconds since the previous transaction are integer
   microseconds / 10^6.
   Same-instant rows are inside ``[t - w, t]``, as in SQL.

The kernels (:mod:`jobs.sweep_kernels`) are compiled with numba, ``cache=True``: the first
run in a fresh install compiles them (measured in benchmarks/README.md) and writes the machine
code to ``__pycache__`` beside them, or, where that is not writable (an installed package),
to numba's user-wide cache (``~/.cache/numba``), or to ``NUMBA_CACHE_DIR`` when set; later
processes load it (:func:`warm_up` does so ahead of time).

:func:`sweep` returns None when it cannot vouch for the result (a scanned row without keys, a
sum beyond 64 bits): the caller then takes the SQL path.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa

from jobs import logs
from jobs import sweep_kernels as kernels
from jobs.sweep_kernels import DAY as US_PER_DAY
from jobs.sweep_scan import (
    History,
    Targets,
    Windows,
    exact_days,
    micros,
    scan_history,
    spans,
)

NONE = np.iinfo(np.int64).max  # "no time": a revoked_at that never came
SCAN_MEMORY = "128MB"  # DuckDB's memory limit during the sweep's scans


@dataclass(frozen=True)
class SweepStats:
    history_rows: int  # rows scanned
    card_rows: int  # of which the target cards' rows in the card look-back
    merchant_rows: int  # and the target merchants' rows of the days kept one by one
    frauds: int  # known frauds read
    unsorted_cards: int  # cards whose rows came out of time order (late rows) and were sorted
    unsorted_merchants: int
    seconds: dict[str, float] = field(default_factory=dict)  # where the time went

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class SweepResult:
    columns: dict[str, np.ndarray]  # feature name -> values (NaN where SQL gives NULL)
    nulls: dict[str, np.ndarray]  # feature name -> mask of NULLs, for the nullable ones
    stats: SweepStats


def _frauds(
    con: duckdb.DuckDBPyConnection, merchants: int, lo_us: int, hi_us: int, last_us: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The known frauds of transactions in ``(lo, hi]`` reported by ``last``, grouped by
    merchant and in time order: offsets, times, reported, revoked (NONE: never)."""
    got = con.execute(
        "SELECT merchant_key AS k, epoch_us(tx_time) AS tx, epoch_us(reported_at) AS rep, "
        f"coalesce(epoch_us(revoked_at), {NONE}) AS rev FROM known_frauds "
        "WHERE merchant_key IS NOT NULL AND merchant_key < ? "
        "AND tx_time > make_timestamp(?) AND tx_time <= make_timestamp(?) "
        "AND reported_at <= make_timestamp(?) ORDER BY merchant_key, tx_time",
        [merchants, lo_us, hi_us, last_us],
    ).fetchnumpy()
    keys = np.asarray(got["k"], np.int64)
    off = np.zeros(merchants + 1, np.int64)
    np.add.at(off, keys + 1, 1)
    return (
        np.cumsum(off),
        np.asarray(got["tx"], np.int64),
        np.asarray(got["rep"], np.int64),
        np.asarray(got["rev"], np.int64),
    )


def _merchant_walks(targets: Targets, parts: int) -> list[np.ndarray]:
    """The targets in time order (the merchant kernel's pointers only move forward), dealt
    into ``parts`` walks by merchant: each merchant's pointers belong to one walk."""
    when = targets.time_us
    if when.size > 1 and bool((np.diff(when) < 0).any()):
        order = np.argsort(when, kind="stable")
    else:
        order = np.arange(when.size)
    if parts == 1:
        return [order]
    part = targets.merchant_key[order] % parts
    return [order[part == p] for p in range(parts)]


def sweep(con: duckdb.DuckDBPyConnection, targets: Targets, win: Windows) -> SweepResult | None:
    """The card and merchant features of ``targets`` (see the module's docstring), or None
    when the keyed state cannot give them exactly (the caller takes the SQL path). The
    kernels run on the connection's threads (they release the GIL), each on its own keys."""
    clock = logs.Laps(cpu=True)
    lap = clock.lap
    first, last = int(targets.time_us.min()), int(targets.time_us.max())
    card_since = first - win.card_history * US_PER_DAY
    merchant_reach = (max(win.merchant) + win.delay) * US_PER_DAY
    ordered, limit, threads = con.execute(
        "SELECT current_setting('preserve_insertion_order'), current_setting('memory_limit'), "
        "current_setting('threads')"
    ).fetchall()[0]
    # rows in insertion order (roughly time order: little to sort), and DuckDB's cache
    # kept small while the grouped arrays fill: a scan needs a few blocks at a time
    con.execute("SET preserve_insertion_order = true")
    con.execute(f"SET memory_limit = '{SCAN_MEMORY}'")
    try:
        lo = min(card_since, first - merchant_reach)
        edges = exact_days(targets, win)
        h = scan_history(con, targets, lo, card_since, last, edges, max(1, int(threads)))
    except duckdb.OutOfMemoryException:  # the connection's temp tables need more: SQL path
        return None
    finally:
        con.execute(f"SET preserve_insertion_order = {'true' if ordered else 'false'}")
        con.execute(f"SET memory_limit = '{limit}'")
    if h is None:
        return None
    lap("scan")
    m_unsorted, c_unsorted = _sort_groups(h, max(1, int(threads)))
    lap("late rows")
    delay = win.delay * US_PER_DAY
    frauds = _frauds(con, h.n_merchants, first - merchant_reach, last - delay, last)
    lap("frauds")
    found = _windows(targets, win, h, frauds, max(1, int(threads)))
    if found is None:
        return None  # a sum beyond 64 bits
    lap("windows")
    columns, nulls = found
    stats = SweepStats(
        history_rows=h.rows,
        card_rows=int(h.c_off[-1]),
        merchant_rows=int(h.m_off[-1]),
        frauds=int(frauds[1].size),
        unsorted_cards=int(c_unsorted),
        unsorted_merchants=int(m_unsorted),
        seconds=clock.seconds,
    )
    return SweepResult(columns, nulls, stats)


def _sort_groups(h: History, parts: int) -> tuple[int, int]:
    """Each merchant's and card's rows sorted by time where they are out of order, spans of
    groups on ``parts`` threads (the kernels release the GIL); how many groups were."""
    with ThreadPoolExecutor(parts, thread_name_prefix="fw-sort") as pool:
        merchants = [
            pool.submit(kernels.sort_merchant_groups, h.m_off[a : b + 1], h.m_time)
            for a, b in spans(h.m_off, parts)
        ]
        cards = [
            pool.submit(
                kernels.sort_card_groups, h.c_off[a : b + 1], h.c_time, h.c_amount, h.c_merchant
            )
            for a, b in spans(h.c_off, parts)
        ]
        return sum(int(f.result()) for f in merchants), sum(int(f.result()) for f in cards)


def _windows(
    targets: Targets,
    win: Windows,
    h: History,
    frauds: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    parts: int,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None:
    """The feature columns and their NULL masks: the card windows by spans of the targets in
    card order and the merchant windows by sets of merchants (each merchant's pointers are
    its own), ``parts`` at a time on as many threads (the kernels release the GIL), each
    kernel writing its own columns of the same outputs. None if a sum went beyond 64 bits."""
    card_days = np.array(sorted(set(win.card)), np.int64)
    n, nc, nm = targets.card_key.size, card_days.size, len(win.merchant)
    counts, distinct = np.empty((nc, n), np.int64), np.empty((nc, n), np.int64)
    means, prev = np.empty((nc, n), np.float64), np.empty(n, np.float64)
    m_counts, rates = np.empty((nm, n), np.int64), np.empty((nm, n), np.float64)
    card_windows = card_days * US_PER_DAY
    merchant_windows = np.array(win.merchant, np.int64) * US_PER_DAY
    # the targets by card: read in random card order, the cards' rows cost a cache miss a
    # row; in key order they stream (1.26 -> 0.63 s for 1M targets over 30M rows)
    by_card = np.argsort(targets.card_key, kind="quicksort")
    with ThreadPoolExecutor(parts, thread_name_prefix="fw-sweep") as pool:
        card_parts = [
            pool.submit(
                kernels.card_features,
                targets.card_key,
                targets.time_us,
                by_card,
                n * i // parts,
                n * (i + 1) // parts,
                h.c_off,
                h.c_time,
                h.c_amount,
                h.c_merchant,
                h.n_merchants,
                card_windows,
                win.card_history * US_PER_DAY,
                counts,
                distinct,
                means,
                prev,
            )
            for i in range(parts)
        ]
        merchant_parts = [
            pool.submit(
                kernels.merchant_features,
                targets.merchant_key,
                targets.time_us,
                walk,
                h.m_off,
                h.m_time,
                merchant_windows,
                win.delay * US_PER_DAY,
                *frauds,
                m_counts,
                rates,
                h.m_slot,
                h.m_cum,
                h.d0,
            )
            for walk in _merchant_walks(targets, parts)
        ]
        overflow = any([bool(f.result()) for f in card_parts])
        for f in merchant_parts:
            f.result()
    if overflow:
        return None
    columns: dict[str, np.ndarray] = {}
    nulls: dict[str, np.ndarray] = {}
    at = {int(d): i for i, d in enumerate(card_days)}
    for w in win.card:
        i = at[int(w)]
        mean = means[i]
        no_mean = np.isnan(mean)
        columns[f"card_tx_count_{w}d"] = counts[i]
        columns[f"card_mean_amount_{w}d"] = mean
        nulls[f"card_mean_amount_{w}d"] = no_mean
        ratio_null = no_mean | (mean == 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            columns[f"card_amount_ratio_{w}d"] = targets.amount / np.where(ratio_null, 1.0, mean)
        nulls[f"card_amount_ratio_{w}d"] = ratio_null
        columns[f"card_distinct_merchants_{w}d"] = distinct[i]
    columns["card_seconds_since_prev"] = prev
    nulls["card_seconds_since_prev"] = np.isnan(prev)
    for i, w in enumerate(win.merchant):
        columns[f"merchant_tx_count_{w}d"] = m_counts[i]
        columns[f"merchant_fraud_rate_{w}d"] = rates[i]
    return columns, nulls


def warm_up() -> None:
    """Load every kernel's machine code (from numba's cache; compiled on an install's first
    run) by running it on a few rows of the types a sweep passes. A process that will compute
    features may call it early, e.g. in a thread while it ingests (numba's first use in a
    process costs about a second; the kernels release the GIL while they run)."""

    def ro(values: list[int], kind: pa.DataType) -> np.ndarray:  # read-only, like a scan's
        return pa.array(values, kind).to_numpy()

    one, zero = np.zeros(2, np.int64), np.zeros(1, np.int64)
    want = np.ones(1, np.bool_)
    card, merchant = ro([0], pa.int32()), ro([0], pa.int32())
    times = micros(pa.array([0], pa.timestamp("us")))
    amounts = ro([0], pa.int64())
    days, slot = np.zeros((2, 1), np.int64), np.zeros(1, np.int32)
    count = np.zeros(2, np.int64)
    bits = np.ones(1, np.uint8)
    kernels.count_rows(card, merchant, times, 0, 1, bits, 0, slot, count, one.copy(), 0, want, days)
    c_time, c_amount = np.zeros(1, np.int64), np.zeros(1, np.int64)
    c_merchant, c_low, m_time = np.zeros(1, np.int32), np.zeros(1, np.int16), np.zeros(1, np.int64)
    offsets = np.array([0, 1], np.int64)
    kernels.place_rows(
        card,
        merchant,
        times,
        amounts,
        0,
        1,
        bits,
        slot,
        0,
        zero.copy(),
        offsets[1:].copy(),
        c_time,
        c_amount,
        c_merchant,
        c_low,
        zero.copy(),
        offsets[1:],
        m_time,
        0,
        want,
    )
    kernels.settle_cards(offsets, 0, 0, 1, offsets.copy(), c_time, c_amount, c_merchant, c_low)
    kernels.sort_merchant_groups(offsets, m_time)
    kernels.sort_card_groups(offsets, c_time, c_amount, c_merchant)
    t_card, t_time = np.zeros(1, np.int32), np.zeros(1, np.int64)
    window = np.array([US_PER_DAY], np.int64)
    c_out, f_out = np.empty((1, 1), np.int64), np.empty((1, 1), np.float64)
    kernels.card_features(
        t_card,
        t_time,
        np.zeros(1, np.int64),
        0,
        1,
        offsets,
        c_time,
        c_amount,
        c_merchant,
        1,
        window,
        US_PER_DAY,
        c_out,
        c_out.copy(),
        f_out,
        np.empty(1, np.float64),
    )

    f_off = np.cumsum(np.zeros(2, np.int64))
    empty = np.asarray(np.zeros(0, np.int64), np.int64)
    kernels.merchant_features(
        t_card,
        t_time,
        np.zeros(1, np.int64),
        offsets,
        m_time,
        window,
        0,
        f_off,
        empty,
        empty,
        empty,
        c_out,
        f_out,
        slot,
        days,
        0,
    )
