"""The feature sweep's scan (:mod:`jobs.sweep`, its steps 1 and 2): the history of the
targets' cards and merchants, grouped by key by two passes over four integer columns, and
the windows and targets that say what to read."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from jobs import sweep_kernels as kernels
from jobs.sweep_kernels import DAY as US_PER_DAY
from jobs.sweep_kernels import NULL_AMOUNT


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
class History:
    """The scanned rows grouped by key, each group in time order."""

    rows: int  # rows scanned
    c_off: np.ndarray  # card k's rows are c_off[k]:c_off[k + 1] of the c_ arrays
    c_time: np.ndarray
    c_amount: np.ndarray
    c_merchant: np.ndarray
    m_off: np.ndarray  # merchant k's times are m_off[k]:m_off[k + 1] of m_time
    m_time: np.ndarray  # only its rows of the days a window edge cuts (`exact_days`)
    m_slot: np.ndarray  # each target merchant's column of m_cum (-1: not a target's)
    m_cum: np.ndarray  # m_cum[d, m_slot[k]]: merchant k's rows of the other days before d0 + d
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


def micros(column: pa.Array) -> np.ndarray:
    """A TIMESTAMP column as epoch microseconds, without a copy."""
    if column.type != pa.timestamp("us"):  # DuckDB's TIMESTAMP; anything else: convert
        column = column.cast(pa.timestamp("us"))
    return column.to_numpy().view(np.int64)


def each_batch(batches: pa.RecordBatchReader, work: Callable[[pa.RecordBatch], bool]) -> int | None:
    """``work`` on each batch in order: the rows, or None if a batch has a row without keys
    or ``work`` said False. The reader is closed however it ends: a result left open would
    make the connection refuse the caller's next query, hiding an error raised here.
    (Handing the kernels to a worker thread while DuckDB decodes the next batch was measured
    slower: DuckDB's scan already uses every core.)"""
    rows = 0
    try:
        for b in batches:
            if b.column(0).null_count or b.column(1).null_count or not work(b):
                return None
            rows += b.num_rows
        return rows
    finally:  # else the connection refuses every query until the result is destroyed
        batches.close()


def spans(off: np.ndarray, parts: int) -> list[tuple[int, int]]:
    """The groups of offsets ``off`` in ``parts`` spans ``[a, b)`` of about as many rows."""
    cuts = np.searchsorted(off, off[-1] * np.arange(1, parts) // parts).clip(0, off.size - 1)
    edges = [0, *cuts.tolist(), off.size - 1]
    return [(a, b) for a, b in zip(edges, edges[1:], strict=False) if b > a]


def exact_days(targets: Targets, win: Windows) -> np.ndarray:
    """The days (epoch days) a merchant window's edge falls on, for some target: its own day
    ``D``, and ``D - w``, ``D - d`` and ``D - d - w`` for the label delay ``d`` and each
    merchant window ``w``. The sweep keeps the merchants' rows of those days one by one and
    only counts their rows of the other days, which every window holds whole or not at all."""
    days = np.unique(targets.time_us // US_PER_DAY)
    back = np.array([0, *win.merchant, win.delay, *(win.delay + w for w in win.merchant)])
    return np.unique(days[:, None] - back[None, :])


def scan_history(
    con: duckdb.DuckDBPyConnection,
    targets: Targets,
    lo_us: int,
    card_since: int,
    hi_us: int,
    edges: np.ndarray,
    parts: int = 1,
) -> History | None:
    """Two passes over the rows from ``lo`` to ``hi``: count the rows of each bucket of
    wanted cards (from ``card_since``) and of each merchant, then put each row in its
    bucket's or merchant's place, and each bucket's rows in their cards'; of a merchant's
    rows, only those of the days in ``edges`` (:func:`exact_days`), the others counted per
    day. Only the grouped arrays are ever held; None if a scanned row has no keys or rows
    appear between passes.

    Both passes run on ``parts`` threads, each over its own span of time (its own cursor,
    counters and write places, after the spans before it in each group, so a group's rows
    keep the scan's order); the buckets are settled ``parts`` at a time. Two spans on two
    cores: the scan 2.5-3.3 s against 3.7-4.0 s at 30M, 1.1-1.3 s against 1.5-1.6 s in a
    10M run (a loaded machine, builds alternating). (Sharing a batch between threads, each
    placing its own keys, was measured slower: each thread reads the whole batch.)"""
    n_cards, n_merchants = (
        int(v) + 1
        for v in con.execute(
            "SELECT coalesce((SELECT max(card_key) FROM card_keys), -1), "
            "coalesce((SELECT max(merchant_key) FROM merchant_keys), -1)"
        ).fetchall()[0]
    )
    if targets.card_key.max() >= n_cards or targets.merchant_key.max() >= n_merchants:
        return None
    # a bit per card (a byte per card missed the cache at every row)
    wanted_cards = np.zeros(n_cards + 7, np.bool_)
    wanted_cards[targets.card_key] = True
    want_card = np.packbits(wanted_cards, bitorder="little")
    shift = max(0, n_cards.bit_length() - 9)  # at most 512 buckets of cards
    buckets = ((n_cards - 1) >> shift) + 1
    d0 = lo_us // US_PER_DAY
    exact = np.zeros(hi_us // US_PER_DAY - d0 + 1, np.bool_)
    edges = edges[(edges >= d0) & (edges < d0 + exact.size)] - d0
    exact[edges] = True
    # a column per target merchant, not per merchant ever seen: no larger than the merchants'
    # rows those days would be (a day of targets has at most a row per merchant it names)
    wanted = np.unique(targets.merchant_key)
    m_slot = np.full(n_merchants, -1, np.int32)
    m_slot[wanted] = np.arange(wanted.size, dtype=np.int32)
    m_days = np.zeros((exact.size + 1, wanted.size), np.int64)

    # the range in ``parts`` spans of time, each scanned by its own cursor and thread (the
    # kernels release the GIL); each span counts into its own counters, then places its rows
    # after the spans before it in each bucket and merchant: rows stay in scan order
    # (by time from the range's first row: the look-back often starts before the history)
    first = (
        con.execute(
            "SELECT epoch_us(min(event_time)) FROM transactions "
            "WHERE event_time BETWEEN make_timestamp(?) AND make_timestamp(?)",
            [lo_us, hi_us],
        ).fetchall()[0][0]
        if parts > 1  # one span needs no cut: no extra pass over the times
        else None
    )
    start = lo_us if first is None else max(lo_us, int(first))
    cuts = [lo_us, *(start + (hi_us - start + 1) * p // parts for p in range(1, parts)), hi_us + 1]
    spans_us = [(a, b - 1) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]
    where = con.execute("SELECT current_database(), current_schema()").fetchall()[0]
    cursors = [con.cursor() for _ in spans_us]
    for cur in cursors:
        cur.execute("USE " + ".".join('"' + str(n).replace('"', '""') + '"' for n in where))
    b_counts = [np.zeros(buckets + 1, np.int64) for _ in spans_us]
    m_counts = [np.zeros(n_merchants + 1, np.int64) for _ in spans_us]
    m_days_of = [m_days] + [np.zeros_like(m_days) for _ in spans_us[1:]]

    def count(k: int) -> int | None:
        def work(b: pa.RecordBatch) -> bool:
            card, merchant, when = b.column(0).to_numpy(), b.column(1).to_numpy(), b.column(2)
            return kernels.count_rows(  # type: ignore[no-any-return]
                card,
                merchant,
                micros(when),
                card_since,
                n_cards,
                want_card,
                shift,
                m_slot,
                b_counts[k][1:],
                m_counts[k],
                d0,
                exact,
                m_days_of[k],
            )

        a, b = spans_us[k]
        return each_batch(_batches(cursors[k], "card_key, merchant_key, event_time", a, b), work)

    try:
        with ThreadPoolExecutor(len(spans_us), thread_name_prefix="fw-scan") as pool:
            counted = list(pool.map(count, range(len(spans_us))))
            if any(n is None for n in counted):
                return None  # a row without keys, or a key outside the dictionaries
            rows = sum(int(n) for n in counted if n is not None)
            for extra in m_days_of[1:]:
                m_days += extra
            b_off = np.cumsum(sum(b_counts))
            m_off = np.cumsum(sum(m_counts))
            c_rows, m_rows = int(b_off[-1]), int(m_off[-1])
            c_time, c_amount = np.empty(c_rows, np.int64), np.empty(c_rows, np.int64)
            c_merchant = np.empty(c_rows, np.int32)
            c_low = np.empty(c_rows, np.int16 if shift < 16 else np.int32)
            m_time = np.empty(m_rows, np.int64)
            b_cur, m_cur = [b_off[:-1].copy()], [m_off[:-1].copy()]
            for k in range(1, len(spans_us)):
                b_cur.append(b_cur[-1] + b_counts[k - 1][1:])
                m_cur.append(m_cur[-1] + m_counts[k - 1][1:])
            b_end = [cur + n[1:] for cur, n in zip(b_cur, b_counts, strict=True)]
            m_end = [cur + n[1:] for cur, n in zip(m_cur, m_counts, strict=True)]

            def place(k: int) -> bool:
                def work(b: pa.RecordBatch) -> bool:
                    card, merchant = b.column(0).to_numpy(), b.column(1).to_numpy()
                    amounts = b.column(3).fill_null(NULL_AMOUNT).to_numpy()
                    return kernels.place_rows(  # type: ignore[no-any-return]
                        card,
                        merchant,
                        micros(b.column(2)),
                        amounts,
                        card_since,
                        n_cards,
                        want_card,
                        m_slot,
                        shift,
                        b_cur[k],
                        b_end[k],
                        c_time,
                        c_amount,
                        c_merchant,
                        c_low,
                        m_cur[k],
                        m_end[k],
                        m_time,
                        d0,
                        exact,
                    )

                a, b = spans_us[k]
                cols = "card_key, merchant_key, event_time, amount_e4"
                if each_batch(_batches(cursors[k], cols, a, b), work) is None:
                    return False
                # rows gone or come between the passes
                return bool(
                    np.array_equal(b_cur[k], b_end[k]) and np.array_equal(m_cur[k], m_end[k])
                )

            if not all(pool.map(place, range(len(spans_us)))):
                return None
    finally:
        for cur in cursors:
            cur.close()
    c_off = np.empty(n_cards + 1, np.int64)
    with ThreadPoolExecutor(parts, thread_name_prefix="fw-settle") as pool:  # GIL released
        for f in [
            pool.submit(
                kernels.settle_cards, b_off, shift, a, b, c_off, c_time, c_amount, c_merchant, c_low
            )
            for a, b in spans(b_off, parts)
        ]:
            f.result()
    m_cum = np.cumsum(m_days, axis=0, out=m_days)
    return History(
        rows, c_off, c_time, c_amount, c_merchant, m_off, m_time, m_slot, m_cum, d0, n_merchants
    )
