"""The compiled kernel of :mod:`jobs.tree_predict` (numba, ``cache=True`` as the sweep's
kernels: only an install's first run compiles). Imported when a model first scores, so a
command that loads a model without scoring does not import numba (0.3-0.4 s)."""

from __future__ import annotations

import math

import numba as nb
import numpy as np

ZERO = float(np.float32(1e-35))  # LightGBM's kZeroThreshold: a float literal held in a double
BLOCK = 2048  # rows walked through one tree before the next (1,024-4,096 measured alike)


@nb.njit(cache=True, nogil=True)
def scores(
    x: np.ndarray,
    lo: int,
    hi: int,
    roots: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    default_left: np.ndarray,
    missing: np.ndarray,
    category: np.ndarray,
    cat_start: np.ndarray,
    cat_bits: np.ndarray,
    leaf_value: np.ndarray,
    sigmoid: float,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled; its tests compare it with LightGBM
    """Rows ``[lo, hi)`` of ``x``: their probabilities into ``out`` (see the module)."""
    for r0 in range(lo, hi, BLOCK):
        r1 = min(hi, r0 + BLOCK)
        for r in range(r0, r1):
            out[r] = 0.0
        for tree in range(roots.size):
            root = roots[tree]
            for r in range(r0, r1):
                n = root
                while n >= 0:
                    v = float(x[r, feature[n]])
                    if -ZERO <= v <= ZERO:
                        v = 0.0
                    nxt = right[n]
                    c = category[n]
                    if c >= 0:
                        if not (math.isnan(v) or v <= -1.0 or v >= 2147483648.0):
                            k = np.int64(v)
                            w = cat_start[c] + (k >> 5)
                            if w < cat_start[c + 1] and (cat_bits[w] >> (k & 31)) & 1:
                                nxt = left[n]
                    else:
                        m = missing[n]
                        if math.isnan(v):
                            if m == 2:
                                if default_left[n]:
                                    nxt = left[n]
                                n = nxt
                                continue
                            v = 0.0
                        if m == 1 and v == 0.0:
                            if default_left[n]:
                                nxt = left[n]
                        elif v <= threshold[n]:
                            nxt = left[n]
                    n = nxt
                out[r] += leaf_value[-n - 1]
        for r in range(r0, r1):
            out[r] = 1.0 / (1.0 + math.exp(-sigmoid * out[r]))
