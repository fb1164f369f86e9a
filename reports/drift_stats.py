"""The statistics drift is made of, on weighted points (a profile's sketches) and shares.

Each is checked against scipy on exact sketches (``tests/test_drift.py``); none
imports scipy.stats at module load (seconds of start-up): the Jensen–Shannon
distance is numpy, the Kolmogorov tail comes from scipy.special, and scipy.stats
is imported only for the small-sample KS distribution.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-4


def population_stability(ref: np.ndarray, cur: np.ndarray) -> float:
    """PSI between two share vectors; empty bins get EPS so the logarithm stays finite."""
    r = np.maximum(ref, EPS)
    c = np.maximum(cur, EPS)
    return float(np.sum((c - r) * np.log(c / r)))


def shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else np.zeros_like(counts, dtype=float)


def cdf(values: np.ndarray, weights: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The weighted empirical CDF at ``grid`` (right-continuous)."""
    cum = np.r_[0.0, np.cumsum(weights)]
    return cum[np.searchsorted(values, grid, side="right")] / cum[-1]


def wasserstein_points(u: np.ndarray, uw: np.ndarray, v: np.ndarray, vw: np.ndarray) -> float:
    """W1 between two weighted samples (values sorted): the integral of |F - G|.

    Equal to ``scipy.stats.wasserstein_distance`` with the same weights (tested).
    """
    grid = np.union1d(u, v)
    if grid.size < 2:
        return 0.0
    diff = np.abs(cdf(u, uw, grid[:-1]) - cdf(v, vw, grid[:-1]))
    return float(np.sum(diff * np.diff(grid)))


def ks_points(
    u: np.ndarray, uw: np.ndarray, v: np.ndarray, vw: np.ndarray, n: int, m: int
) -> tuple[float, float]:
    """KS statistic between two weighted samples and its asymptotic p-value for ``n`` and
    ``m`` rows (scipy's ``ks_2samp(method='asymp')`` on the same rows)."""
    grid = np.union1d(u, v)
    d = float(np.max(np.abs(cdf(u, uw, grid) - cdf(v, vw, grid)))) if grid.size else 0.0
    en = n * m / (n + m)
    if en < 10_000:
        from scipy import stats  # slow to import: only for small samples

        return d, float(stats.kstwo.sf(d, np.round(en)))
    from scipy.special import kolmogorov  # = scipy.stats.kstwobign.sf

    return d, float(kolmogorov(d * np.sqrt(en)))


def jensenshannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon distance with natural logs: ``scipy.spatial.distance.jensenshannon``'s
    default and Evidently's (tested equal), without importing scipy.spatial."""
    p = p / p.sum() if p.sum() else p
    q = q / q.sum() if q.sum() else q
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log(q / m), 0.0).sum()
    value = float(np.sqrt(max(0.0, (kl_p + kl_q) / 2)))
    return value if np.isfinite(value) else 0.0


def quantile_edges(values: np.ndarray, weights: np.ndarray, bins: int) -> np.ndarray:
    """The reference's inner quantile edges, interpolated by position as ``np.quantile``
    does on the rows the points stand for; duplicates merged."""
    cum = np.cumsum(weights)
    total = cum[-1]
    pos = np.linspace(0, 1, bins + 1)[1:-1] * (total - 1)

    def at(k: np.ndarray) -> np.ndarray:
        return values[np.minimum(np.searchsorted(cum, k, side="right"), values.size - 1)]

    lo = np.floor(pos)
    return np.unique(at(lo) + (pos - lo) * (at(np.ceil(pos)) - at(lo)))
