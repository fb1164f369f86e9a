"""Candidate vs champion on the same labelled window, with bootstrap confidence intervals.

The bootstrap resamples *days* (transactions within a day are correlated:
the same cards, merchants and fraud episodes). Each replicate draws the
window's days with replacement, which is the same as weighting every
transaction by how often its day was drawn; with the transactions sorted once
by score, each replicate's average precision and ROC AUC are weighted
cumulative sums (no re-sorting), and the per-day metrics are weighted means of
the per-day values. The interval is the percentile interval of the
replicates' differences (candidate − champion) at ``confidence``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl

from reports.performance import PerformanceResult, compute_performance, daily_metrics

METRICS = (
    "average_precision",
    "roc_auc",
    "card_precision_at_k",
    "precision_at_k",
    "recall_at_threshold",
    "precision_at_threshold",
    "f1_at_threshold",
)


@dataclass(frozen=True)
class MetricComparison:
    name: str
    candidate: float | None
    champion: float | None
    difference: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class Comparison:
    metrics: tuple[MetricComparison, ...]
    n: int
    n_frauds: int
    days: int
    threshold: float
    k: int
    bootstrap_samples: int
    confidence: float
    # each model's own figures on the window: PR curve, per-day AP, card precision@k, alerts
    candidate_performance: PerformanceResult | None = None
    champion_performance: PerformanceResult | None = None

    def get(self, name: str) -> MetricComparison | None:
        return next((m for m in self.metrics if m.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        d = {
            k: v
            for k, v in asdict(self).items()
            if k not in ("candidate_performance", "champion_performance")
        }
        for role in ("candidate", "champion"):
            perf = getattr(self, f"{role}_performance")
            d[f"{role}_performance"] = perf.to_dict() if perf is not None else None
        return d


def _weighted_ap_auc(
    y: np.ndarray, s: np.ndarray, day: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """AP and ROC AUC for each row of ``weights`` (replicates x days).

    Only the positives' positions matter: with the rows sorted by score once,
    each positive's precision and the negatives ranked below it are per-day
    cumulative counts times the replicate's day weights (ties broken by order;
    the point estimates themselves come from scikit-learn).
    """
    order = np.argsort(-s, kind="mergesort")
    ys, ds = y[order].astype(bool), day[order]
    n_days = weights.shape[1]
    pos = np.flatnonzero(ys)
    cum_pos = np.empty((pos.size, n_days))
    cum_all = np.empty((pos.size, n_days))
    neg_total = np.empty(n_days)
    pos_total = np.empty(n_days)
    for d in range(n_days):  # a loop over days, each vectorised over rows
        in_day = ds == d
        cum_pos[:, d] = np.cumsum(in_day & ys)[pos]
        cum_all[:, d] = np.cumsum(in_day)[pos]
        pos_total[d] = (in_day & ys).sum()
        neg_total[d] = (in_day & ~ys).sum()
    tp = cum_pos @ weights.T  # (positives, replicates)
    seen = cum_all @ weights.T
    fp = seen - tp
    w_pos = weights[:, ds[pos]].T  # each positive's own weight
    p_r = weights @ pos_total
    n_r = weights @ neg_total
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = (w_pos * (tp / seen)).sum(axis=0) / p_r
        auc = (w_pos * (n_r[None, :] - fp)).sum(axis=0) / (p_r * n_r)
    bad = (p_r == 0) | (n_r == 0)
    ap[bad] = np.nan
    auc[bad] = np.nan
    return ap, auc


def _per_day(
    frame: pl.DataFrame, score: str, days: list[Any], threshold: float, k: int
) -> dict[str, np.ndarray]:
    f = frame.select(
        "transaction_id",
        "event_time",
        "card_id",
        "amount",
        "is_fraud",
        pl.col(score).alias("score"),
    )
    d = daily_metrics(f, threshold=threshold, k=k)
    d = pl.DataFrame({"day": days}).join(d, on="day", how="left")
    fd = (
        f.with_columns(pl.col("event_time").dt.date().alias("day"))
        .group_by("day")
        .agg(
            (pl.col("is_fraud") & (pl.col("score") >= threshold)).sum().alias("tp"),
            (~pl.col("is_fraud") & (pl.col("score") >= threshold)).sum().alias("fp"),
            (pl.col("is_fraud") & (pl.col("score") < threshold)).sum().alias("fn"),
        )
    )
    d = d.join(fd, on="day", how="left")
    return {
        c: d[c].cast(pl.Float64).to_numpy()
        for c in ("precision_at_k", "card_precision_at_k", "tp", "fp", "fn")
    }


def _replicate_metrics(
    frame: pl.DataFrame,
    score: str,
    weights: np.ndarray,
    day_idx: np.ndarray,
    days: list[Any],
    threshold: float,
    k: int,
) -> dict[str, np.ndarray]:
    y = frame["is_fraud"].cast(pl.Boolean).to_numpy().astype(float)
    s = frame[score].cast(pl.Float64).to_numpy()
    ap, auc = _weighted_ap_auc(y, s, day_idx, weights)
    pd_ = _per_day(frame, score, days, threshold, k)
    out = {"average_precision": ap, "roc_auc": auc}
    for name in ("precision_at_k", "card_precision_at_k"):
        v = pd_[name]
        ok = ~np.isnan(v)
        num = (weights[:, ok] * v[ok]).sum(axis=1)
        den = weights[:, ok].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[name] = num / den
    tp = weights @ np.nan_to_num(pd_["tp"])
    fp = weights @ np.nan_to_num(pd_["fp"])
    fn = weights @ np.nan_to_num(pd_["fn"])
    with np.errstate(invalid="ignore", divide="ignore"):
        prec = tp / (tp + fp)
        rec = tp / (tp + fn)
        out["precision_at_threshold"] = prec
        out["recall_at_threshold"] = rec
        out["f1_at_threshold"] = 2 * prec * rec / (prec + rec)
    return out


def compare_models(
    frame: pl.DataFrame,
    *,
    threshold: float,
    k: int,
    metrics: list[str] | None = None,
    bootstrap_samples: int = 300,
    confidence: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """``frame``: transaction_id, event_time, card_id, amount, is_fraud, score_candidate, score_champion."""
    metrics = list(metrics or METRICS)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; known: {list(METRICS)}")
    base = frame.select("transaction_id", "event_time", "card_id", "amount", "is_fraud")
    point = {}
    for role in ("candidate", "champion"):
        r = compute_performance(
            base.with_columns(frame[f"score_{role}"].alias("score")), threshold=threshold, k=k
        )
        point[role] = r
    day_series = frame["event_time"].dt.date()
    days = sorted(day_series.unique().to_list())
    index = {d: i for i, d in enumerate(days)}
    day_idx = day_series.replace_strict(index, return_dtype=pl.Int64).to_numpy()
    rng = np.random.default_rng(seed)
    reps = bootstrap_samples
    weights = (
        rng.multinomial(len(days), np.full(len(days), 1 / len(days)), size=reps).astype(float)
        if reps and days
        else np.zeros((0, len(days)))
    )
    boot = {}
    if reps and days:
        for role in ("candidate", "champion"):
            boot[role] = _replicate_metrics(
                frame, f"score_{role}", weights, day_idx, days, threshold, k
            )
    alpha = (1 - confidence) / 2
    out = []
    for name in metrics:
        c = getattr(point["candidate"], name)
        h = getattr(point["champion"], name)
        diff = None if c is None or h is None else c - h
        lo = hi = None
        if boot and diff is not None:
            d = boot["candidate"][name] - boot["champion"][name]
            d = d[np.isfinite(d)]
            if d.size:
                lo, hi = (float(x) for x in np.quantile(d, [alpha, 1 - alpha]))
        out.append(MetricComparison(name, c, h, diff, lo, hi))
    return Comparison(
        metrics=tuple(out),
        n=frame.height,
        n_frauds=int(frame["is_fraud"].sum()),
        days=len(days),
        threshold=threshold,
        k=k,
        bootstrap_samples=reps,
        confidence=confidence,
        candidate_performance=point["candidate"],
        champion_performance=point["champion"],
    )
