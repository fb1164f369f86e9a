"""The compiled kernel of :mod:`jobs.tree_predict` (numba, ``cache=True`` as the sweep's
kernels: only an install's first run compiles). Imported when a model first scores, so a
command that loads a model without scoring does not import numba (0.3-0.4 s)."""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from jobs.tree_predict import CATEGORICAL, PLAIN

ZERO = float(np.float32(1e-35))  # LightGBM's kZeroThreshold: a float literal held in a double
BLOCK = 2048  # rows walked through one tree before the next (1,024-4,096 measured alike)


@nb.njit(cache=True, nogil=True, inline="always")
def _plain(
    n: int, v: float, threshold: np.ndarray, nan_left: np.ndarray, child: np.ndarray
) -> int:  # pragma: no cover - compiled
    """The next node after a PLAIN split: ``v <= t`` goes left, NaN where ``nan_left`` says
    (LightGBM's missing type NaN: the default way; None: as 0)."""
    left = (v <= threshold[n]) | (math.isnan(v) & (nan_left[n] == 1))
    return child[2 * n + (0 if left else 1)]  # type: ignore[no-any-return]


@nb.njit(cache=True, nogil=True)
def scores(
    x: np.ndarray,
    lo: int,
    hi: int,
    roots: np.ndarray,
    plain: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    child: np.ndarray,
    kind: np.ndarray,
    nan_left: np.ndarray,
    default_left: np.ndarray,
    category: np.ndarray,
    cat_start: np.ndarray,
    cat_bits: np.ndarray,
    leaf_value: np.ndarray,
    sigmoid: float,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled; its tests compare it with LightGBM
    """Rows ``[lo, hi)`` of ``x``: their probabilities into ``out`` (see the module).

    A block's values are copied once as doubles, ``|v| <= 1e-35`` already 0, by feature.
    A tree of PLAIN splits only (``plain``) walks four rows at once: four independent
    chains of loads the processor overlaps, where one row's walk waits on each load in turn
    (25% less CPU on the benchmark's champion). Other trees walk row by row."""
    nf = x.shape[1]
    buf = np.empty((nf, BLOCK), np.float64)
    raw = np.empty(BLOCK, np.float64)
    for r0 in range(lo, hi, BLOCK):
        nr = min(hi, r0 + BLOCK) - r0
        for f in range(nf):
            for i in range(nr):
                v = float(x[r0 + i, f])
                buf[f, i] = 0.0 if -ZERO <= v <= ZERO else v
        raw[:nr] = 0.0
        for tree in range(roots.size):
            root = roots[tree]
            i = 0
            if plain[tree]:
                while i + 4 <= nr:
                    a = b = c = d = root
                    while a >= 0 or b >= 0 or c >= 0 or d >= 0:
                        if a >= 0:
                            a = _plain(a, buf[feature[a], i], threshold, nan_left, child)
                        if b >= 0:
                            b = _plain(b, buf[feature[b], i + 1], threshold, nan_left, child)
                        if c >= 0:
                            c = _plain(c, buf[feature[c], i + 2], threshold, nan_left, child)
                        if d >= 0:
                            d = _plain(d, buf[feature[d], i + 3], threshold, nan_left, child)
                    raw[i] += leaf_value[-a - 1]
                    raw[i + 1] += leaf_value[-b - 1]
                    raw[i + 2] += leaf_value[-c - 1]
                    raw[i + 3] += leaf_value[-d - 1]
                    i += 4
            while i < nr:
                n = root
                while n >= 0:
                    v = buf[feature[n], i]
                    k = kind[n]
                    if k == PLAIN:
                        n = _plain(n, v, threshold, nan_left, child)
                        continue
                    left = False
                    if k == CATEGORICAL:
                        # NaN, negative codes and codes past int's range go right
                        if not (math.isnan(v) or v <= -1.0 or v >= 2147483648.0):
                            code = np.int64(v)
                            c = category[n]
                            w = cat_start[c] + (code >> 5)
                            left = w < cat_start[c + 1] and (cat_bits[w] >> (code & 31)) & 1 == 1
                    elif math.isnan(v) or v == 0.0:  # ZERO_MISSING: NaN is 0, 0 is missing
                        left = default_left[n] == 1
                    else:
                        left = v <= threshold[n]
                    n = child[2 * n + (0 if left else 1)]
                raw[i] += leaf_value[-n - 1]
                i += 1
        for i in range(nr):
            out[r0 + i] = 1.0 / (1.0 + math.exp(-sigmoid * raw[i]))
