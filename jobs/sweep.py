"""The feature sweep: exact features for target rows from the keyed state (:mod:`jobs.keys`)
by one scan of integer columns and a linear pass per card and per merchant.

The definitions are :mod:`jobs.features`' (the SQL reference, :mod:`jobs.feature_reference`,
states them plainly; the tests compare value for value). What this module does instead of SQL:

1. one scan of ``card_key, merchant_key, event_time, amount_e4`` over the longest look-back
   before the first target to the last target (four integer columns, no string ids), and of
   the few ``known_frauds`` in the merchant risk's windows;
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

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa

from jobs import logs
from jobs import sweep_kernels as kernels
from jobs.sweep_kernels import NULL_AMOUNT

US_PER_DAY = 86_400_000_000
NONE = np.iinfo(np.int64).max  # "no time": a revoked_at that never came
SCAN_MEMORY = "128MB"  # DuckDB's memory limit during the sweep's scans


@dataclass(frozen=True)
class Windows:
    """The windows of the features, in days (config order), and the label delay."""

    card: tuple[int, ...]
    merchant: tuple[int, ...]
    delay: int
    card_history: int  # the longest card window: seconds since previous looks no further


@dataclass(frozen=True)
class Targets:
    """The target rows, in output order: keys, times (epoch microseconds), amounts."""

    card_key: np.ndarray  # int32
    merchant_key: np.ndarray  # int32
    time_us: np.ndarray  # int64
    amount: np.ndarray  # float64, as stored


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


# -- the scan -------------------------------------------------------------------------------
@dataclass(frozen=True)
class History:
    """The scanned rows grouped by key, each group in time order."""

    rows: int  # rows scanned
    c_off: np.ndarray  # card k's rows are c_off[k]:c_off[k + 1] of the c_ arrays
    c_time: np.ndarray
    c_amount: np.ndarray
    c_merchant: np.ndarray
    m_off: np.ndarray  # merchant k's times are m_off[k]:m_off[k + 1] of m_time
    m_time: np.ndarray  # only its rows of the days a window edge cuts (`exact_days`)
    m_cum: np.ndarray  # m_cum[d, k]: merchant k's rows of the other days before day d0 + d
    d0: int  # the first day scanned (epoch days)
    n_merchants: int


def _batches(con: duckdb.DuckDBPyConnection, cols: str, lo_us: int, hi_us: int):  # type: ignore[no-untyped-def]
    """The rows' ``cols`` with event_time in [lo, hi], batch by batch, in insertion order
    (rows are stored roughly in time order, so groups then need little sorting)."""
    return con.sql(
        f"SELECT {cols} FROM transactions "
        "WHERE event_time BETWEEN make_timestamp(?) AND make_timestamp(?)",
        params=[lo_us, hi_us],
    ).to_arrow_reader(1 << 20)


def _micros(column: pa.Array) -> np.ndarray:
    """A TIMESTAMP column as epoch microseconds, without a copy."""
    if column.type != pa.timestamp("us"):  # DuckDB's TIMESTAMP; anything else: convert
        column = column.cast(pa.timestamp("us"))
    return column.to_numpy().view(np.int64)


def _each(batches: pa.RecordBatchReader, work: Callable[[pa.RecordBatch], bool]) -> int | None:
    """``work`` on each batch in order: the rows, or None if a batch has a row without keys
    or ``work`` said False. (Handing the kernels to a worker thread while DuckDB decodes the
    next batch was measured slower: DuckDB's scan already uses every core.)"""
    rows = 0
    for b in batches:
        if b.column(0).null_count or b.column(1).null_count or not work(b):
            return None
        rows += b.num_rows
    return rows


def exact_days(targets: Targets, win: Windows) -> np.ndarray:
    """The days (epoch days) a merchant window's edge falls on, for some target: its own day
    ``D``, and ``D - w``, ``D - d`` and ``D - d - w`` for the label delay ``d`` and each
    merchant window ``w``. The sweep keeps the merchants' rows of those days one by one and
    only counts their rows of the other days, which every window holds whole or not at all."""
    days = np.unique(targets.time_us // US_PER_DAY)
    back = np.array([0, *win.merchant, win.delay, *(win.delay + w for w in win.merchant)])
    return np.unique(days[:, None] - back[None, :])


def _history(
    con: duckdb.DuckDBPyConnection,
    targets: Targets,
    lo_us: int,
    card_since: int,
    hi_us: int,
    edges: np.ndarray,
) -> History | None:
    """Two passes over the rows from ``lo`` to ``hi``: count each wanted card's (from
    ``card_since``) and merchant's rows, then put each row in its place; of a merchant's
    rows, only those of the days in ``edges`` (:func:`exact_days`), the others counted per
    day. Only the grouped arrays are ever held; None if a scanned row has no keys or rows
    appear between passes.
    (Sharing a batch between threads, each placing its own keys, was measured slower: each
    thread reads the whole batch, and the scan is bound by memory, not by one core.)"""
    n_cards, n_merchants = (
        int(v) + 1
        for v in con.execute(
            "SELECT coalesce((SELECT max(card_key) FROM card_keys), -1), "
            "coalesce((SELECT max(merchant_key) FROM merchant_keys), -1)"
        ).fetchall()[0]
    )
    if targets.card_key.max() >= n_cards or targets.merchant_key.max() >= n_merchants:
        return None
    want_card = np.zeros(n_cards, np.bool_)
    want_card[targets.card_key] = True
    want_merchant = np.zeros(n_merchants, np.bool_)
    want_merchant[targets.merchant_key] = True
    c_off = np.zeros(n_cards + 1, np.int64)
    m_off = np.zeros(n_merchants + 1, np.int64)
    d0 = lo_us // US_PER_DAY
    exact = np.zeros(hi_us // US_PER_DAY - d0 + 1, np.bool_)
    edges = edges[(edges >= d0) & (edges < d0 + exact.size)] - d0
    exact[edges] = True
    m_days = np.zeros((exact.size + 1, n_merchants), np.int64)
    shift = max(0, n_cards.bit_length() - 9)  # at most 512 buckets of cards

    def count(b: pa.RecordBatch) -> bool:
        card, merchant, when = b.column(0).to_numpy(), b.column(1).to_numpy(), b.column(2)
        return kernels.count_rows(  # type: ignore[no-any-return]
            card,
            merchant,
            _micros(when),
            card_since,
            want_card,
            want_merchant,
            c_off,
            m_off,
            d0,
            exact,
            m_days,
        )

    rows = _each(_batches(con, "card_key, merchant_key, event_time", lo_us, hi_us), count)
    if rows is None:
        return None  # a row without keys, or a key outside the dictionaries
    c_off, m_off = np.cumsum(c_off), np.cumsum(m_off)
    c_rows, m_rows = int(c_off[-1]), int(m_off[-1])
    c_time, c_amount = np.empty(c_rows, np.int64), np.empty(c_rows, np.int64)
    c_merchant = np.empty(c_rows, np.int32)
    c_low = np.empty(c_rows, np.int16 if shift < 16 else np.int32)
    m_time = np.empty(m_rows, np.int64)
    b_cur = c_off[: -1 : 1 << shift].copy()
    b_end = c_off[np.minimum(np.arange(1, b_cur.size + 1) << shift, n_cards)]
    m_cur, m_end = m_off[:-1].copy(), m_off[1:]

    def place(b: pa.RecordBatch) -> bool:
        card, merchant, when = b.column(0).to_numpy(), b.column(1).to_numpy(), b.column(2)
        amounts = b.column(3).fill_null(NULL_AMOUNT).to_numpy()
        return kernels.place_rows(  # type: ignore[no-any-return]
            card,
            merchant,
            _micros(when),
            amounts,
            card_since,
            want_card,
            want_merchant,
            shift,
            b_cur,
            b_end,
            c_time,
            c_amount,
            c_merchant,
            c_low,
            m_cur,
            m_end,
            m_time,
            d0,
            exact,
        )

    cols = "card_key, merchant_key, event_time, amount_e4"
    if _each(_batches(con, cols, lo_us, hi_us), place) is None:
        return None
    if not (np.array_equal(b_cur, b_end) and np.array_equal(m_cur, m_end)):
        return None  # rows gone between the passes
    kernels.settle_cards(c_off, shift, c_time, c_amount, c_merchant, c_low)
    m_cum = np.cumsum(m_days, axis=0, out=m_days)
    return History(rows, c_off, c_time, c_amount, c_merchant, m_off, m_time, m_cum, d0, n_merchants)


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
        h = _history(con, targets, lo, card_since, last, exact_days(targets, win))
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


def _spans(off: np.ndarray, parts: int) -> list[tuple[int, int]]:
    """The groups of offsets ``off`` in ``parts`` spans ``[a, b)`` of about as many rows."""
    cuts = np.searchsorted(off, off[-1] * np.arange(1, parts) // parts).clip(0, off.size - 1)
    edges = [0, *cuts.tolist(), off.size - 1]
    return [(a, b) for a, b in zip(edges, edges[1:], strict=False) if b > a]


def _sort_groups(h: History, parts: int) -> tuple[int, int]:
    """Each merchant's and card's rows sorted by time where they are out of order, spans of
    groups on ``parts`` threads (the kernels release the GIL); how many groups were."""
    with ThreadPoolExecutor(parts, thread_name_prefix="fw-sort") as pool:
        merchants = [
            pool.submit(kernels.sort_merchant_groups, h.m_off[a : b + 1], h.m_time)
            for a, b in _spans(h.m_off, parts)
        ]
        cards = [
            pool.submit(
                kernels.sort_card_groups, h.c_off[a : b + 1], h.c_time, h.c_amount, h.c_merchant
            )
            for a, b in _spans(h.c_off, parts)
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
    times = _micros(pa.array([0], pa.timestamp("us")))
    amounts = ro([0], pa.int64())
    days = np.zeros((2, 1), np.int64)
    kernels.count_rows(
        card, merchant, times, 0, want, want, np.zeros(2, np.int64), one.copy(), 0, want, days
    )
    c_time, c_amount = np.zeros(1, np.int64), np.zeros(1, np.int64)
    c_merchant, c_low, m_time = np.zeros(1, np.int32), np.zeros(1, np.int16), np.zeros(1, np.int64)
    offsets = np.array([0, 1], np.int64)
    kernels.place_rows(
        card,
        merchant,
        times,
        amounts,
        0,
        want,
        want,
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
    kernels.settle_cards(offsets, 0, c_time, c_amount, c_merchant, c_low)
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
        days,
        0,
    )
