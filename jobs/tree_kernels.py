"""The compiled kernel of :mod:`jobs.tree_predict` (numba, ``cache=True`` as the sweep's
kernels: only an install's first run compiles). Imported when a model first scores, so a
command that loads a model without scoring does not import numba (0.3-0.4 s)."""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from jobs.lean_imports import numba_without_blas
from jobs.tree_predict import CATEGORICAL, PLAIN

numba_without_blas()  # before this process's first kernel: see jobs/lean_imports.py

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
    A tree of PLAIN splits only (``plain``) walks eight rows at once: eight independent
    chains of loads the processor overlaps, where one row's walk waits on each load in turn.
    On the benchmark's champion (300 trees of 63 leaves, 1M rows, two threads) four rows at
    once took 25% less CPU than one, and eight 16% less than four (2.42 against 2.89 CPU-s;
    six 2.55, ten 2.48, twelve 2.55: past eight the chains' nodes no longer stay in
    registers). Other trees walk row by row; a tree's last rows of a block (fewer than
    eight) too."""
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
                while i + 8 <= nr:
                    n0 = n1 = n2 = n3 = n4 = n5 = n6 = n7 = root
                    while (n0 >= 0 or n1 >= 0 or n2 >= 0 or n3 >= 0) or (
                        n4 >= 0 or n5 >= 0 or n6 >= 0 or n7 >= 0
                    ):
                        if n0 >= 0:
                            n0 = _plain(n0, buf[feature[n0], i], threshold, nan_left, child)
                        if n1 >= 0:
                            n1 = _plain(n1, buf[feature[n1], i + 1], threshold, nan_left, child)
                        if n2 >= 0:
                            n2 = _plain(n2, buf[feature[n2], i + 2], threshold, nan_left, child)
                        if n3 >= 0:
                            n3 = _plain(n3, buf[feature[n3], i + 3], threshold, nan_left, child)
                        if n4 >= 0:
                            n4 = _plain(n4, buf[feature[n4], i + 4], threshold, nan_left, child)
                        if n5 >= 0:
                            n5 = _plain(n5, buf[feature[n5], i + 5], threshold, nan_left, child)
                        if n6 >= 0:
                            n6 = _plain(n6, buf[feature[n6], i + 6], threshold, nan_left, child)
                        if n7 >= 0:
                            n7 = _plain(n7, buf[feature[n7], i + 7], threshold, nan_left, child)
                    raw[i] += leaf_value[-n0 - 1]
                    raw[i + 1] += leaf_value[-n1 - 1]
                    raw[i + 2] += leaf_value[-n2 - 1]
                    raw[i + 3] += leaf_value[-n3 - 1]
                    raw[i + 4] += leaf_value[-n4 - 1]
                    raw[i + 5] += leaf_value[-n5 - 1]
                    raw[i + 6] += leaf_value[-n6 - 1]
                    raw[i + 7] += leaf_value[-n7 - 1]
                    i += 8
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
