"""Drift between a reference and a current profile: per feature, for the score, for the dataset.

Both sides are :mod:`reports.profile` sketches (a report reads stored profiles;
:func:`compute_drift` profiles two frames first). A feature drifts for any of
these reasons, each named in the report:

- ``distribution``: the configured test says so. Numeric ``wasserstein``
  (W1 distance divided by the reference's standard deviation, drift when >
  ``wasserstein_threshold``, 0.1) or ``ks`` (two-sample Kolmogorov–Smirnov,
  drift when p < ``ks_threshold``, 0.05); categorical ``jensenshannon``
  (distance with NATURAL logs, so in [0, sqrt(ln 2)] ≈ [0, 0.83], as scipy's
  and Evidently's default; drift when > 0.1) or ``chi2`` (p < 0.05). The
  tests and thresholds are Evidently's defaults; both sides are taken from the
  sketches, exact for up to 512 distinct values, else within 1/512 of
  probability;
- ``psi``: the population stability index over the reference's ``bins``
  quantile bins (numeric; duplicate edges merged, open ends) or its 20
  commonest categories plus "other" (categorical), with MISSING VALUES AS
  THEIR OWN BIN, above ``psi_threshold`` (0.2; < 0.1 stable, 0.1–0.25
  moderate, > 0.25 major; Siddiqi, *Credit Risk Scorecards*, 2006); empty
  bins get ``EPS`` so the logarithm stays finite;
- ``missing``: the missing rate moved by more than ``missing_tolerance``
  (0.05, absolute);
- ``constant``: the feature took several values in the reference and one
  (or none) now;
- ``new values``: categories the reference never had make more than
  ``new_category_share`` (1%) of the current rows.

The verdict is weighted by what the champion relies on: each feature weighs
its share of the champion's gain (equal weights without one). The dataset is
in ``alarm`` when a missing-rate or constant-column drift appears, when one
of the ``top_features`` most important features drifts, or when the drifted
features carry at least ``drift_share`` of the importance, whatever the
share of features; ``drift`` when something else drifted; ``ok`` otherwise.
The score is tested like a numeric feature and reported apart, with a badge
when its PSI is above ``psi_threshold``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import polars as pl

from reports.drift_stats import (
    jensenshannon,
    ks_points,
    population_stability,
    quantile_edges,
    shares,
    wasserstein_points,
)
from reports.profile import (
    CategoricalSketch,
    NumericSketch,
    Profile,
    Sketch,
    profile_frame,
)

MAX_CATEGORY_BINS = 20
ALARM_KINDS = ("missing", "constant", "new values")


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
    drift_share: float = 0.5  # of the champion's importance
    missing_tolerance: float = 0.05
    new_category_share: float = 0.01
    top_features: int = 5


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
    new_share: float = 0.0  # rows with unseen categories / outside the reference's range
    reasons: tuple[str, ...] = ()  # why it drifted: distribution, psi, missing, constant, ...
    importance: float | None = None  # share of the champion's gain
    rank: int | None = None  # 1 = the champion's most important feature

    @property
    def alarming(self) -> bool:
        return any(r in ALARM_KINDS for r in self.reasons)

    @property
    def severity(self) -> float:
        """How far past its threshold the test is (p-values inverted)."""
        if self.p_value is not None:
            return float(-np.log10(max(self.p_value, 1e-300)))
        if not math.isfinite(self.statistic):
            return 0.0
        return self.statistic / self.threshold if self.threshold else self.statistic


@dataclass(frozen=True)
class DriftResult:
    features: tuple[FeatureDrift, ...]  # alarming first, then drifted, by importance
    score: FeatureDrift | None
    share_drifted: float  # of the features
    weighted_share: float  # of the champion's importance
    status: str  # alarm | drift | ok
    alarms: tuple[str, ...]  # why the status is alarm, in words
    n_reference: int
    n_current: int
    policy: DriftPolicy

    @property
    def dataset_drift(self) -> bool:
        return self.status == "alarm"

    @property
    def drifted(self) -> list[str]:
        return [f.name for f in self.features if f.drifted]

    @property
    def score_flag(self) -> bool:
        return self.score is not None and self.score.psi_flag

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "dataset_drift": self.dataset_drift,
            "alarms": list(self.alarms),
            "share_drifted": self.share_drifted,
            "weighted_share": self.weighted_share,
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
    for k in ("statistic", "psi"):
        if isinstance(d[k], float) and not math.isfinite(d[k]):
            d[k] = None
    return d


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _reasons(
    policy: DriftPolicy,
    test_drifted: bool,
    psi: float,
    ref_missing: float,
    cur_missing: float,
    constant: bool,
    new_share: float,
    categorical: bool,
) -> tuple[str, ...]:
    out = []
    if abs(cur_missing - ref_missing) > policy.missing_tolerance:
        out.append("missing")
    if constant:
        out.append("constant")
    if categorical and new_share > policy.new_category_share:
        out.append("new values")
    if test_drifted:
        out.append("distribution")
    if psi > policy.psi_threshold:
        out.append("psi")
    return tuple(out)


def numeric_drift(
    name: str, ref: NumericSketch, cur: NumericSketch, policy: DriftPolicy
) -> FeatureDrift:
    rv, rw = np.asarray(ref.values), np.asarray(ref.weights)
    cv, cw = np.asarray(cur.values), np.asarray(cur.weights)
    ref_missing = ref.missing / ref.n if ref.n else 0.0
    cur_missing = cur.missing / cur.n if cur.n else 0.0
    edges = quantile_edges(rv, rw, policy.bins) if rv.size else np.array([], dtype=float)
    ref_counts = np.bincount(
        np.searchsorted(edges, rv, side="right"), weights=rw, minlength=edges.size + 1
    )
    cur_counts = np.bincount(
        np.searchsorted(edges, cv, side="right"), weights=cw, minlength=edges.size + 1
    )
    labels = []
    bounds = [-np.inf, *edges.tolist(), np.inf]
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        labels.append(
            "all values"
            if lo == -np.inf and hi == np.inf
            else f"< {_fmt(hi)}"
            if lo == -np.inf
            else (f">= {_fmt(lo)}" if hi == np.inf else f"{_fmt(lo)}–{_fmt(hi)}")
        )
    ref_counts = np.append(ref_counts, ref.missing).astype(float)  # missing: its own bin
    cur_counts = np.append(cur_counts, cur.missing).astype(float)
    labels.append("missing")
    ref_share, cur_share = shares(ref_counts), shares(cur_counts)
    psi = population_stability(ref_share, cur_share)
    stat: float
    p: float | None = None
    if rv.size == 0 or cv.size == 0:
        stat, test, thr = float("nan"), policy.numeric_test, 0.0
        test_drifted = rv.size != cv.size
    elif policy.numeric_test == "wasserstein":
        std = ref.std
        stat = wasserstein_points(rv, rw, cv, cw) / (std if std > 0 else 1.0)
        test, thr = "wasserstein", policy.wasserstein_threshold
        test_drifted = stat > thr
    else:
        stat, p = ks_points(rv, rw, cv, cw, ref.finite, cur.finite)
        test, thr = "ks", policy.ks_threshold
        test_drifted = p < thr
    outside = 0.0
    if cv.size and rv.size:
        outside = float(cw[(cv < ref.lo) | (cv > ref.hi)].sum() / cw.sum())
    constant = cur.constant and not ref.constant and ref.finite > 0
    reasons = _reasons(
        policy, test_drifted, psi, ref_missing, cur_missing, constant, outside, False
    )
    return FeatureDrift(
        name=name,
        kind="numeric",
        test=test,
        statistic=stat,
        p_value=p,
        threshold=thr,
        drifted=bool(reasons),
        psi=psi,
        psi_flag=psi > policy.psi_threshold,
        ref_missing_rate=float(ref_missing),
        cur_missing_rate=float(cur_missing),
        bin_labels=tuple(labels),
        ref_share=tuple(float(x) for x in ref_share),
        cur_share=tuple(float(x) for x in cur_share),
        new_values=(f"{_fmt(ref.lo)}..{_fmt(ref.hi)}",) if outside > 0 else (),
        new_share=outside,
        reasons=reasons,
    )


def categorical_drift(
    name: str, ref: CategoricalSketch, cur: CategoricalSketch, policy: DriftPolicy
) -> FeatureDrift:
    top = sorted(ref.counts, key=lambda k: (-ref.counts[k], k))[:MAX_CATEGORY_BINS]
    labels = [*top, "other", "missing"]
    ref_known = sum(ref.counts.get(k, 0) for k in top)
    cur_known = sum(cur.counts.get(k, 0) for k in top)
    ref_counts = np.array(
        [ref.counts.get(k, 0) for k in top] + [ref.n - ref.missing - ref_known, ref.missing],
        dtype=float,
    )
    cur_counts = np.array(
        [cur.counts.get(k, 0) for k in top] + [cur.n - cur.missing - cur_known, cur.missing],
        dtype=float,
    )
    ref_share, cur_share = shares(ref_counts), shares(cur_counts)
    psi = population_stability(ref_share, cur_share)
    unseen = sorted(
        (k for k in cur.counts if k not in ref.counts), key=lambda k: (-cur.counts[k], k)
    )
    present = cur.n - cur.missing
    new_share = sum(cur.counts[k] for k in unseen) / present if present else 0.0
    p_value: float | None = None
    if policy.categorical_test == "chi2":
        keep = (ref_counts + cur_counts) > 0
        table = np.vstack([ref_counts[keep], cur_counts[keep]])
        if table.shape[1] < 2 or table.sum(axis=1).min() == 0:
            stat, p = 0.0, 1.0
        else:
            from scipy import stats  # slow to import: only for this test

            res = stats.chi2_contingency(table)
            stat, p = float(res.statistic), float(res.pvalue)
        test, thr, test_drifted = "chi2", policy.chi2_threshold, p < policy.chi2_threshold
        p_value = p
    else:
        stat = jensenshannon(ref_share, cur_share)  # natural log, as Evidently's
        if not np.isfinite(stat):
            stat = 0.0
        test, thr = "jensenshannon", policy.jensenshannon_threshold
        test_drifted = stat > thr
    ref_missing = ref.missing / ref.n if ref.n else 0.0
    cur_missing = cur.missing / cur.n if cur.n else 0.0
    constant = cur.constant and not ref.constant and ref.n > ref.missing
    reasons = _reasons(
        policy, test_drifted, psi, ref_missing, cur_missing, constant, new_share, True
    )
    return FeatureDrift(
        name=name,
        kind="categorical",
        test=test,
        statistic=stat,
        p_value=p_value,
        threshold=thr,
        drifted=bool(reasons),
        psi=psi,
        psi_flag=psi > policy.psi_threshold,
        ref_missing_rate=float(ref_missing),
        cur_missing_rate=float(cur_missing),
        bin_labels=tuple(labels),
        ref_share=tuple(float(x) for x in ref_share),
        cur_share=tuple(float(x) for x in cur_share),
        new_values=tuple(unseen[:5]),
        new_share=float(new_share),
        reasons=reasons,
    )


def sketch_drift(name: str, ref: Sketch, cur: Sketch, policy: DriftPolicy) -> FeatureDrift:
    if isinstance(ref, NumericSketch) and isinstance(cur, NumericSketch):
        return numeric_drift(name, ref, cur, policy)
    if isinstance(ref, CategoricalSketch) and isinstance(cur, CategoricalSketch):
        return categorical_drift(name, ref, cur, policy)
    raise ValueError(f"{name}: the reference is {ref.kind} but the current window is {cur.kind}")


def _importanceshares(
    names: Sequence[str], importance: Mapping[str, float] | None
) -> dict[str, float]:
    gains = {n: max(0.0, float((importance or {}).get(n, 0.0))) for n in names}
    total = sum(gains.values())
    if not total:
        return dict.fromkeys(names, 1 / len(names)) if names else {}
    return {n: g / total for n, g in gains.items()}


def drift_from_profiles(
    reference: Profile,
    current: Profile,
    *,
    features: Sequence[str],
    policy: DriftPolicy | None = None,
    importance: Mapping[str, float] | None = None,
    score_column: str | None = "score",
) -> DriftResult:
    """Drift of every listed feature (and the score, if both profiles have it)."""
    policy = policy or DriftPolicy()
    weights = _importanceshares(features, importance)
    has_gain = bool(importance) and any((importance or {}).get(n, 0) > 0 for n in features)
    ranked = sorted(features, key=lambda n: (-weights[n], n))
    rank = {n: i + 1 for i, n in enumerate(ranked)} if has_gain else {}
    out = []
    for name in features:
        ref, cur = reference.get(name), current.get(name)
        if ref is None or cur is None:
            side = "reference" if ref is None else "current"
            raise ValueError(f"feature {name!r} is not in the {side} profile")
        f = sketch_drift(name, ref, cur, policy)
        out.append(replace(f, importance=weights[name] if has_gain else None, rank=rank.get(name)))
    out.sort(
        key=lambda f: (
            not f.alarming,
            not f.drifted,
            -(f.importance or 0.0),
            -f.severity,
            f.name,
        )
    )
    score = None
    if score_column:
        ref_s, cur_s = reference.get(score_column), current.get(score_column)
        if isinstance(ref_s, NumericSketch) and isinstance(cur_s, NumericSketch) and cur_s.n:
            score = numeric_drift(score_column, ref_s, cur_s, policy)
    drifted = [f for f in out if f.drifted]
    share = len(drifted) / len(out) if out else 0.0
    weighted = float(sum(weights[f.name] for f in drifted))
    alarms = []
    for f in drifted:
        if f.alarming:
            what = {
                "missing": f"missing rate {f.ref_missing_rate:.1%} → {f.cur_missing_rate:.1%}",
                "constant": "became constant",
                "new values": f"{f.new_share:.1%} of rows in unseen categories",
            }
            alarms.append(f"{f.name}: " + ", ".join(what[r] for r in f.reasons if r in ALARM_KINDS))
        elif f.rank is not None and f.rank <= policy.top_features:
            alarms.append(f"{f.name}: the champion's #{f.rank} feature drifted")
    if weighted >= policy.drift_share:
        alarms.append(
            f"drifted features carry {weighted:.0%} of the "
            f"{'champion’s importance' if has_gain else 'features'} "
            f"(alarm at {policy.drift_share:.0%})"
        )
    status = "alarm" if alarms else ("drift" if drifted else "ok")
    return DriftResult(
        features=tuple(out),
        score=score,
        share_drifted=share,
        weighted_share=weighted,
        status=status,
        alarms=tuple(alarms),
        n_reference=reference.rows,
        n_current=current.rows,
        policy=policy,
    )


def compute_drift(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    *,
    numeric: list[str],
    categorical: list[str],
    policy: DriftPolicy | None = None,
    score_column: str | None = "score",
    importance: Mapping[str, float] | None = None,
) -> DriftResult:
    """Drift between two frames: each is profiled, then compared as stored profiles are."""
    extra = (
        [score_column]
        if score_column and score_column in reference.columns and score_column in current.columns
        else []
    )
    ref = profile_frame(reference, numeric=[*numeric, *extra], categorical=categorical)
    cur = profile_frame(current, numeric=[*numeric, *extra], categorical=categorical)
    return drift_from_profiles(
        ref,
        cur,
        features=[*numeric, *categorical],
        policy=policy,
        importance=importance,
        score_column=extra[0] if extra else None,
    )
