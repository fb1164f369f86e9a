"""Drift between a reference and a current sample: per feature, for the score, for the dataset.

Per feature:

- PSI on the reference's quantile bins (numeric: ``bins`` quantiles of the
  reference, duplicate edges merged, open ends; categorical: the reference's
  categories, the rest grouped as "other"; missing values are their own bin);
  empty bins get ``EPS`` so the logarithm stays finite. PSI above
  ``psi_threshold`` is flagged (rule of thumb: < 0.1 stable, 0.1–0.25 moderate,
  > 0.25 major; Siddiqi, *Credit Risk Scorecards*, 2006).
- A distribution test decides whether the feature drifted: numeric ``ks``
  (two-sample Kolmogorov–Smirnov; drift when p < ``ks_threshold``, 0.05) or
  ``wasserstein`` (distance divided by the reference's standard deviation;
  drift when > ``wasserstein_threshold``, 0.1); categorical ``jensenshannon``
  (distance with base-2 logs, in [0, 1]; drift when > 0.1) or ``chi2``
  (p < 0.05). These are Evidently's defaults for the same tests.
- The change of the missing rate.

The score is tested like a numeric feature and reported apart. The dataset
drifts when the share of drifted features reaches ``drift_share`` (0.5,
Evidently's default). Everything is vectorised numpy/polars per feature; no
loop over rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl
from scipy import stats

EPS = 1e-4


@dataclass(frozen=True)
class DriftPolicy:
    bins: int = 10
    psi_threshold: float = 0.2
    numeric_test: str = "wasserstein"  # wasserstein | ks
    categorical_test: str = "jensenshannon"  # jensenshannon | chi2
    ks_threshold: float = 0.05
    wasserstein_threshold: float = 0.1
    jensenshannon_threshold: float = 0.1
    chi2_threshold: float = 0.05
    drift_share: float = 0.5


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    kind: str  # numeric | categorical
    test: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    psi: float
    psi_flag: bool
    ref_missing_rate: float
    cur_missing_rate: float
    bin_labels: tuple[str, ...]
    ref_share: tuple[float, ...]
    cur_share: tuple[float, ...]
    new_values: tuple[str, ...] = ()  # categorical: the commonest values unseen in the reference

    @property
    def severity(self) -> float:
        """A sort key: how far past its threshold the test is (p-values inverted)."""
        if self.p_value is not None:
            return float(-np.log10(max(self.p_value, 1e-300)))
        return self.statistic / self.threshold if self.threshold else self.statistic


@dataclass(frozen=True)
class DriftResult:
    features: tuple[FeatureDrift, ...]  # sorted by drift, most drifted first
    score: FeatureDrift | None
    share_drifted: float
    dataset_drift: bool
    n_reference: int
    n_current: int
    policy: DriftPolicy

    @property
    def drifted(self) -> list[str]:
        return [f.name for f in self.features if f.drifted]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset_drift": self.dataset_drift,
            "share_drifted": self.share_drifted,
            "drifted_features": self.drifted,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "policy": asdict(self.policy),
            "score": _feature_dict(self.score) if self.score else None,
            "features": [_feature_dict(f) for f in self.features],
        }


def _feature_dict(f: FeatureDrift) -> dict[str, Any]:
    d = asdict(f)
    d["bins"] = [
        {"label": b, "reference": r, "current": c}
        for b, r, c in zip(d.pop("bin_labels"), d.pop("ref_share"), d.pop("cur_share"), strict=True)
    ]
    return d


def _psi(ref: np.ndarray, cur: np.ndarray) -> float:
    r = np.maximum(ref, EPS)
    c = np.maximum(cur, EPS)
    return float(np.sum((c - r) * np.log(c / r)))


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else np.zeros_like(counts, dtype=float)


def _numeric_values(s: pl.Series) -> np.ndarray:
    """The finite values, sorted (polars sorts in parallel)."""
    v = s.cast(pl.Float64)
    v = v.filter(v.is_finite())
    return v.sort().to_numpy()


def wasserstein(u: np.ndarray, v: np.ndarray) -> float:
    """W1 between two samples given SORTED: the integral of |F^-1(p) - G^-1(p)| over p.

    Equal to ``scipy.stats.wasserstein_distance`` (tested), without re-sorting.
    """
    n, m = u.size, v.size
    if n == m:
        return float(np.mean(np.abs(u - v)))
    p = np.union1d(np.arange(1, n + 1) / n, np.arange(1, m + 1) / m)
    widths = np.diff(np.r_[0.0, p])
    iu = np.minimum(np.ceil(p * n - 1e-12).astype(np.int64) - 1, n - 1)
    iv = np.minimum(np.ceil(p * m - 1e-12).astype(np.int64) - 1, m - 1)
    return float(np.sum(widths * np.abs(u[np.maximum(iu, 0)] - v[np.maximum(iv, 0)])))


def ks(u: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    """Two-sample KS statistic and asymptotic p-value for SORTED samples (scipy's 'asymp')."""
    grid = np.concatenate([u, v])
    d = float(
        np.max(
            np.abs(
                np.searchsorted(u, grid, side="right") / u.size
                - np.searchsorted(v, grid, side="right") / v.size
            )
        )
    )
    en = u.size * v.size / (u.size + v.size)
    return d, float(stats.kstwo.sf(d, np.round(en))) if en < 10_000 else float(
        stats.kstwobign.sf(d * np.sqrt(en))
    )


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def numeric_drift(
    name: str, ref_s: pl.Series, cur_s: pl.Series, policy: DriftPolicy
) -> FeatureDrift:
    ref = _numeric_values(ref_s)
    cur = _numeric_values(cur_s)
    ref_missing = 1 - ref.size / max(1, ref_s.len())
    cur_missing = 1 - cur.size / max(1, cur_s.len())
    if ref.size:  # quantiles of the sorted reference, by position
        pos = np.linspace(0, 1, policy.bins + 1)[1:-1] * (ref.size - 1)
        qs = ref[np.floor(pos).astype(np.int64)] + (pos % 1) * (
            ref[np.ceil(pos).astype(np.int64)] - ref[np.floor(pos).astype(np.int64)]
        )
        edges = np.unique(qs)
    else:
        edges = np.array([], dtype=float)
    ref_counts = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=edges.size + 1)
    cur_counts = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=edges.size + 1)
    labels = []
    bounds = [-np.inf, *edges.tolist(), np.inf]
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        labels.append(
            f"< {_fmt(hi)}"
            if lo == -np.inf
            else (f">= {_fmt(lo)}" if hi == np.inf else f"{_fmt(lo)}–{_fmt(hi)}")
        )
    # missing values as their own bin
    ref_counts = np.append(ref_counts, ref_s.len() - ref.size).astype(float)
    cur_counts = np.append(cur_counts, cur_s.len() - cur.size).astype(float)
    labels.append("missing")
    ref_share, cur_share = _shares(ref_counts), _shares(cur_counts)
    psi = _psi(ref_share, cur_share)
    if ref.size == 0 or cur.size == 0:
        stat, p, test, thr, drifted = (
            float("nan"),
            None,
            policy.numeric_test,
            0.0,
            ref.size != cur.size,
        )
    elif policy.numeric_test == "wasserstein":
        std = float(np.std(ref))
        stat = wasserstein(ref, cur) / (std if std > 0 else 1.0)
        p, test, thr = None, "wasserstein", policy.wasserstein_threshold
        drifted = stat > thr
    else:
        stat, p = ks(ref, cur)
        test, thr = "ks", policy.ks_threshold
        drifted = p < thr
    return FeatureDrift(
        name=name,
        kind="numeric",
        test=test,
        statistic=stat,
        p_value=p,
        threshold=thr,
        drifted=bool(drifted),
        psi=psi,
        psi_flag=psi > policy.psi_threshold,
        ref_missing_rate=float(ref_missing),
        cur_missing_rate=float(cur_missing),
        bin_labels=tuple(labels),
        ref_share=tuple(float(x) for x in ref_share),
        cur_share=tuple(float(x) for x in cur_share),
    )


def categorical_drift(
    name: str, ref_s: pl.Series, cur_s: pl.Series, policy: DriftPolicy, max_categories: int = 20
) -> FeatureDrift:
    ref_counts_df = ref_s.cast(pl.Utf8).value_counts(sort=True)
    cur_counts_df = cur_s.cast(pl.Utf8).value_counts(sort=True)
    col = ref_counts_df.columns[0]
    ref_map = {k: int(v) for k, v in ref_counts_df.iter_rows() if k is not None}
    cur_map = {k: int(v) for k, v in cur_counts_df.iter_rows() if k is not None}
    _ = col
    top = sorted(ref_map, key=lambda k: (-ref_map[k], k))[:max_categories]
    labels = [str(k) for k in top] + ["other", "missing"]
    ref_counts = np.array(
        [ref_map.get(k, 0) for k in top]
        + [sum(v for k, v in ref_map.items() if k not in top), ref_s.null_count()],
        dtype=float,
    )
    cur_counts = np.array(
        [cur_map.get(k, 0) for k in top]
        + [sum(v for k, v in cur_map.items() if k not in top), cur_s.null_count()],
        dtype=float,
    )
    ref_share, cur_share = _shares(ref_counts), _shares(cur_counts)
    psi = _psi(ref_share, cur_share)
    unseen = sorted((k for k in cur_map if k not in ref_map), key=lambda k: (-cur_map[k], k))
    if policy.categorical_test == "chi2":
        keep = (ref_counts + cur_counts) > 0
        table = np.vstack([ref_counts[keep], cur_counts[keep]])
        if table.shape[1] < 2:
            stat, p = 0.0, 1.0
        else:
            res = stats.chi2_contingency(table)
            stat, p = float(res.statistic), float(res.pvalue)
        test, thr, drifted = "chi2", policy.chi2_threshold, p < policy.chi2_threshold
        p_value: float | None = p
    else:
        from scipy.spatial.distance import jensenshannon

        stat = float(jensenshannon(ref_share, cur_share, base=2))
        if not np.isfinite(stat):
            stat = 0.0
        test, thr = "jensenshannon", policy.jensenshannon_threshold
        drifted = stat > thr
        p_value = None
    return FeatureDrift(
        name=name,
        kind="categorical",
        test=test,
        statistic=stat,
        p_value=p_value,
        threshold=thr,
        drifted=bool(drifted),
        psi=psi,
        psi_flag=psi > policy.psi_threshold,
        ref_missing_rate=float(ref_s.null_count() / max(1, ref_s.len())),
        cur_missing_rate=float(cur_s.null_count() / max(1, cur_s.len())),
        bin_labels=tuple(labels),
        ref_share=tuple(float(x) for x in ref_share),
        cur_share=tuple(float(x) for x in cur_share),
        new_values=tuple(str(k) for k in unseen[:5]),
    )


def compute_drift(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    *,
    numeric: list[str],
    categorical: list[str],
    policy: DriftPolicy | None = None,
    score_column: str | None = "score",
) -> DriftResult:
    """Drift of every listed feature (and the score, if present) from reference to current."""
    policy = policy or DriftPolicy()
    out = [numeric_drift(n, reference[n], current[n], policy) for n in numeric]
    out += [categorical_drift(c, reference[c], current[c], policy) for c in categorical]
    score = None
    if score_column and score_column in reference.columns and score_column in current.columns:
        score = numeric_drift(score_column, reference[score_column], current[score_column], policy)
    out.sort(key=lambda f: (not f.drifted, -f.severity, f.name))
    share = sum(f.drifted for f in out) / len(out) if out else 0.0
    return DriftResult(
        features=tuple(out),
        score=score,
        share_drifted=share,
        dataset_drift=share >= policy.drift_share,
        n_reference=reference.height,
        n_current=current.height,
        policy=policy,
    )
