"""The feature sweep's compiled kernels (numba, ``cache=True``): see :mod:`jobs.sweep`.

Each takes and returns plain arrays; times are epoch microseconds, amounts 1/10,000ths.
The machine code is cached on disk (``__pycache__`` beside this file, else numba's
user-wide cache, or ``NUMBA_CACHE_DIR``), so only an install's first run compiles.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from jobs.lean_imports import numba_without_blas

numba_without_blas()  # before this process's first kernel: see jobs/lean_imports.py

NULL_AMOUNT = np.iinfo(np.int64).min  # an amount_e4 that is NULL (above 10^14): out of means
DAY = 86_400_000_000  # microseconds: a compile-time constant, so t // DAY is a multiply


@nb.njit(cache=True, nogil=True)
def lower(a: np.ndarray, lo: int, hi: int, x: int) -> int:
    """First index in [lo, hi) with a[i] >= x (hi if none); a sorted there."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@nb.njit(cache=True, nogil=True)
def upper(a: np.ndarray, lo: int, hi: int, x: int) -> int:
    """First index in [lo, hi) with a[i] > x (hi if none)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@nb.njit(cache=True, nogil=True)
def wanted(bits, c):  # type: ignore[no-untyped-def]
    """Whether card ``c``'s bit is set (a bit per card: the set fits in a core's cache)."""
    return (bits[c >> 3] >> (c & 7)) & 1


@nb.njit(cache=True, nogil=True)
def count_rows(  # type: ignore[no-untyped-def]
    card,
    merchant,
    times,
    since,
    n_cards,
    want_card,
    shift,
    m_slot,
    b_count,
    m_count,
    d0,
    exact,
    m_days,
):
    """Pass 1, batch by batch: the rows each *bucket* of wanted cards (``k >> shift``, see
    :func:`place_rows`) has in the look-back (:func:`settle_cards` counts each card's); each
    wanted merchant's (``m_slot[merchant] >= 0``) rows on the days whose rows a window edge
    cuts (``exact[day - d0]``), and its rows per other day (``m_days[day - d0 + 1,
    m_slot[merchant]]``: day-major, so the rows of a day, which come together, count into
    one small slice). Every counter it touches stays in cache: a counter per card was a
    cache miss a row. False if a key is outside the dictionaries."""
    for i in range(card.size):
        m, c = merchant[i], card[i]
        if m < 0 or m >= m_slot.size or c < 0 or c >= n_cards:
            return False
        s = m_slot[m]
        if s >= 0:
            d = times[i] // DAY - d0
            if exact[d]:
                m_count[m + 1] += 1
            else:
                m_days[d + 1, s] += 1
        if times[i] >= since and wanted(want_card, c):
            b_count[c >> shift] += 1
    return True


@nb.njit(cache=True, nogil=True)
def place_rows(  # type: ignore[no-untyped-def]
    card,
    merchant,
    times,
    amounts,
    since,
    n_cards,
    want_card,
    m_slot,
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
):
    """Pass 2, batch by batch: each target merchant's (``m_slot >= 0``) row of a day a window
    edge cuts to its merchant's next place; each card row to the next place of its card's
    *bucket* (cards ``k >> shift``: a few hundred buckets, so the writes stay in cache),
    with the card's low bits. False if a group overflows (rows written between the
    passes)."""
    mask = (1 << shift) - 1
    for i in range(card.size):
        m, t, c = merchant[i], times[i], card[i]
        if m < 0 or m >= m_slot.size or c < 0 or c >= n_cards:
            return False
        if m_slot[m] >= 0 and exact[t // DAY - d0]:
            at = m_cur[m]
            if at >= m_end[m]:
                return False
            m_time[at] = t
            m_cur[m] = at + 1
        if t >= since and wanted(want_card, c):
            bk = c >> shift
            at = b_cur[bk]
            if at >= b_end[bk]:
                return False
            c_time[at] = t
            c_amount[at] = amounts[i]
            c_merchant[at] = m
            c_low[at] = c & mask
            b_cur[bk] = at + 1
    return True


@nb.njit(cache=True, nogil=True)
def settle_cards(b_off, shift, k_lo, k_hi, c_off, c_time, c_amount, c_merchant, c_low):  # type: ignore[no-untyped-def]
    """Buckets ``k_lo`` to ``k_hi`` (exclusive): count each card's rows in its bucket
    (``b_off[k]:b_off[k + 1]``), write the cards' offsets ``c_off``, and move each row to
    its card's place, keeping the scan order."""
    n_cards = c_off.size - 1
    width = 1 << shift
    biggest = 0
    for k in range(k_lo, k_hi):
        biggest = max(biggest, b_off[k + 1] - b_off[k])
    tt = np.empty(biggest, np.int64)
    ta = np.empty(biggest, np.int64)
    tm = np.empty(biggest, c_merchant.dtype)
    tl = np.empty(biggest, c_low.dtype)
    cur = np.empty(width, np.int64)
    for k in range(k_lo, k_hi):
        a, b = b_off[k], b_off[k + 1]
        k0 = k << shift
        k1 = min(k0 + width, n_cards)
        cur[:] = 0
        for j in range(a, b):
            cur[c_low[j]] += 1
        at = a
        for low in range(k1 - k0):
            c_off[k0 + low] = at
            n = cur[low]
            cur[low] = at
            at += n
        if k1 == n_cards:
            c_off[n_cards] = at
        n = b - a
        tt[:n] = c_time[a:b]
        ta[:n] = c_amount[a:b]
        tm[:n] = c_merchant[a:b]
        tl[:n] = c_low[a:b]
        for j in range(n):
            low = tl[j]
            at = cur[low]
            cur[low] = at + 1
            c_time[at] = tt[j]
            c_amount[at] = ta[j]
            c_merchant[at] = tm[j]


@nb.njit(cache=True, nogil=True)
def sort_merchant_groups(off, times):  # type: ignore[no-untyped-def]
    """Sort each group's times where they are out of order; how many were."""
    unsorted = 0
    for k in range(off.size - 1):
        a, b = off[k], off[k + 1]
        for j in range(a + 1, b):
            if times[j] < times[j - 1]:
                times[a:b].sort()
                unsorted += 1
                break
    return unsorted


@nb.njit(cache=True, nogil=True)
def sort_card_groups(off, times, amounts, merchants):  # type: ignore[no-untyped-def]
    """Sort each card's rows by time where they are out of order; how many were."""
    unsorted = 0
    for k in range(off.size - 1):
        a, b = off[k], off[k + 1]
        for j in range(a + 1, b):
            if times[j] < times[j - 1]:
                order = np.argsort(times[a:b], kind="mergesort") + a
                times[a:b] = times[order]
                amounts[a:b] = amounts[order]
                merchants[a:b] = merchants[order]
                unsorted += 1
                break
    return unsorted


@nb.njit(cache=True, nogil=True)
def card_features(  # type: ignore[no-untyped-def]
    t_card,
    t_time,
    order,
    first,
    stop,
    off,
    times,
    amounts,
    merchants,
    n_merchants,
    windows,
    history,
    counts,
    distinct,
    means,
    prev,
):
    """Targets ``order[first:stop]`` (so threads can share the work, each its own span; in
    card order, the cards' rows are read in memory order, each once for all its targets):
    into columns ``i`` of the outputs, counts, exact-amount means, distinct merchants for
    each window (``windows`` ascending, in microseconds), and seconds since the card's
    previous transaction. True if a sum went beyond 64 bits."""
    nw = windows.size
    stamp = np.full(n_merchants, -1, np.int64)
    big = np.iinfo(np.int64).max
    overflow = False
    for j in range(first, stop):
        i = order[j]
        k, t = t_card[i], t_time[i]
        a, b = off[k], off[k + 1]
        hi = upper(times, a, b, t)
        eq = lower(times, a, hi, t)
        if hi - eq > 1:  # another transaction of the card at the same instant
            prev[i] = 0.0
        elif eq > a and times[eq - 1] >= t - history:
            prev[i] = (t - times[eq - 1]) / 1e6
        else:
            prev[i] = np.nan
        total, known, seen = 0, 0, 0
        j = hi - 1
        for w in range(nw):
            lo = lower(times, a, hi, t - windows[w])
            while j >= lo:
                m = merchants[j]
                if stamp[m] != i:
                    stamp[m] = i
                    seen += 1
                x = amounts[j]
                if x != NULL_AMOUNT:
                    if (x > 0 and total > big - x) or (x < 0 and total < -big - x):
                        overflow = True
                    total += x
                    known += 1
                j -= 1
            counts[w, i] = hi - lo
            distinct[w, i] = seen
            means[w, i] = total / (known * 10000.0) if known else np.nan
    return overflow


@nb.njit(cache=True, nogil=True)
def merchant_features(  # type: ignore[no-untyped-def]
    t_merchant,
    t_time,
    walk,
    off,
    times,
    windows,
    delay,
    f_off,
    f_time,
    f_reported,
    f_revoked,
    counts,
    rates,
    slot,
    cum,
    d0,
):
    """The targets ``walk`` lists, in that order (time order: a set of merchants, so threads
    can share the work): into columns ``i`` of the outputs, the merchant's transactions in
    ``[t - w, t]`` and its fraud rate over ``(t - d - w, t - d]`` (frauds known at t over the
    transactions then), each window. Every bound only moves forward as t grows: one pointer
    per merchant and bound, side by side, so a target reads one or two cache lines of them.

    ``times`` holds the merchant's rows of the days a window edge cuts, which hold both ends
    of every window; ``cum[d - d0, slot[k]]`` counts its rows of the other days before day ``d``,
    so a window's rows are the pointers' difference plus the other days' rows inside it."""
    nw = windows.size
    longest = windows.max()
    frauds = np.zeros(nw, np.int64)
    n_keys = off.size - 1
    # per merchant: [hi, upto, lo_0.., dlo_0.., fa, fb]
    ptr = np.empty((n_keys, 2 * nw + 4), np.int64)
    for k in range(n_keys):
        ptr[k, : 2 * nw + 2] = off[k]
        ptr[k, 2 * nw + 2 :] = f_off[k]
    for j in range(walk.size):
        i = walk[j]
        k, t = t_merchant[i], t_time[i]
        b = off[k + 1]
        p = ptr[k]
        hi = p[0]
        while hi < b and times[hi] <= t:
            hi += 1
        p[0] = hi
        until = t - delay
        upto = p[1]
        while upto < b and times[upto] <= until:
            upto += 1
        p[1] = upto
        fb_end = f_off[k + 1]
        fa = p[2 * nw + 2]
        while fa < fb_end and f_time[fa] <= until - longest:
            fa += 1
        p[2 * nw + 2] = fa
        fb = max(fa, p[2 * nw + 3])
        while fb < fb_end and f_time[fb] <= until:
            fb += 1
        p[2 * nw + 3] = fb
        frauds[:] = 0
        for e in range(fa, fb):
            if f_reported[e] <= t and f_revoked[e] > t:
                for w in range(nw):
                    if f_time[e] > until - windows[w]:
                        frauds[w] += 1
        day, u_day, col = t // DAY - d0, until // DAY - d0, slot[k]
        for w in range(nw):
            lo = p[2 + w]
            since = t - windows[w]
            while lo < b and times[lo] < since:
                lo += 1
            p[2 + w] = lo
            counts[w, i] = hi - lo + cum[day, col] - cum[since // DAY - d0 + 1, col]
            dlo = p[2 + nw + w]
            edge = until - windows[w]
            while dlo < b and times[dlo] <= edge:
                dlo += 1
            p[2 + nw + w] = dlo
            delayed = upto - dlo + cum[u_day, col] - cum[edge // DAY - d0 + 1, col]
            rates[w, i] = frauds[w] / delayed if delayed > 0 else 0.0
