"""Performance from small aggregates, so a report never loads millions of scored rows.

The warehouse reduces a window to frames of a few thousand rows (see
``jobs/performance_data.py``); this module turns them into a
:class:`~reports.performance.PerformanceResult`:

- ``days``: per event day, n, frauds, and at the alert threshold: alerts,
  true and false positives, fraud amount caught and missed (exact);
- ``bins``: per day and score bin of width 1/``BINS`` (bin ``floor(score *
  BINS)``), the rows, frauds and fraud amount. Average precision and ROC AUC
  are computed on the binned scores: equal to scikit-learn's on the scores
  rounded down to 1/``BINS`` (tied scores form one threshold, as in
  scikit-learn), so within about 0.001 of the exact values (tested);
- ``cards``: per day, the cards ranked by their highest score that day (the
  alerting job's one alert per card and day), with whether that transaction
  is a fraud, its amount, and whether the card had a fraud that day; enough
  rows for card precision@k and the threshold / budget sweep;
- ``top``: per day, the ``k`` highest-scored transactions (precision@k).

The sweep replays the alert policy on each day at once: the ``budget``
highest-scored cards whose best transaction scores at or above the threshold
(what the policy would have raised for the day; live runs alert batch by
batch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl

from reports.performance import DailyPerformance, PerformanceResult

BINS = 1000
SWEEP_THRESHOLDS = tuple(round(x, 2) for x in np.arange(0.05, 1.0, 0.05))
BUDGET_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)


@dataclass(frozen=True)
class SweepRow:
    threshold: float
    budget: int
    alerts_per_day: float  # alerts the policy raises (one per card and day, within budget)
    above_per_day: float  # cards at or above the threshold, before the budget
    precision: float | None  # share of alerts on a fraud transaction
    recall: float | None  # share of all frauds alerted
    amount_caught: float  # fraud amount of the alerted transactions
    current: bool  # the configured threshold and budget


@dataclass(frozen=True)
class PeriodMetrics:
    start: date  # first day of the period (a week: its Monday)
    n: int
    frauds: int
    average_precision: float | None
    card_precision_at_k: float | None


def ap_auc(n: np.ndarray, frauds: np.ndarray) -> tuple[float | None, float | None]:
    """Average precision and ROC AUC of binned scores (arrays by bin, ascending scores)."""
    pos = frauds[::-1].astype(float)  # highest scores first
    neg = (n - frauds)[::-1].astype(float)
    p, q = pos.sum(), neg.sum()
    if p == 0 or q == 0:
        return None, None
    tp, fp = np.cumsum(pos), np.cumsum(neg)
    seen = tp + fp
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(seen > 0, tp / seen, 0.0)
    ap = float(np.sum(pos / p * precision))
    # AUC: each positive beats the negatives in lower bins and half of its own bin's
    below = q - fp  # negatives in strictly lower bins
    auc = float(np.sum(pos * (below + neg / 2)) / (p * q))
    return ap, auc


def pr_curve(
    n: np.ndarray, frauds: np.ndarray, points: int = 200
) -> tuple[tuple[float, float], ...]:
    pos = frauds[::-1].astype(float)
    neg = (n - frauds)[::-1].astype(float)
    if pos.sum() == 0:
        return ()
    keep = (pos + neg) > 0
    tp, fp = np.cumsum(pos)[keep], np.cumsum(neg)[keep]
    recall, precision = tp / pos.sum(), tp / (tp + fp)
    idx = np.unique(np.linspace(0, recall.size - 1, min(points, recall.size)).astype(int))
    return tuple((float(recall[i]), float(precision[i])) for i in idx)


def _hist(bins: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    agg = bins.group_by("bin").agg(pl.col("n").sum(), pl.col("frauds").sum())
    n = np.zeros(BINS, dtype=np.int64)
    f = np.zeros(BINS, dtype=np.int64)
    idx = agg["bin"].to_numpy().clip(0, BINS - 1)
    np.add.at(n, idx, agg["n"].to_numpy())
    np.add.at(f, idx, agg["frauds"].to_numpy())
    return n, f


def card_precision_by_day(cards: pl.DataFrame, k: int) -> dict[date, float | None]:
    """Card precision@k per day: the top k cards by their highest score that day, leaving out
    cards caught on an earlier day (a fraud card in that day's top k); a loop over days."""
    caught: set[str] = set()
    out: dict[date, float | None] = {}
    for (day,), group in cards.sort("day").group_by(["day"], maintain_order=True):
        top = (
            group.filter(~pl.col("card_id").is_in(list(caught)))
            .sort(["score", "card_id"], descending=[True, False])
            .head(k)
        )
        assert isinstance(day, date)
        out[day] = float(top["card_fraud"].mean()) if top.height else None  # type: ignore[arg-type]
        caught.update(top.filter(pl.col("card_fraud"))["card_id"].to_list())
    return out


def sweep(
    cards: pl.DataFrame,
    *,
    days: int,
    frauds: int,
    threshold: float,
    budget: int,
    thresholds: Sequence[float] = SWEEP_THRESHOLDS,
    factors: Sequence[float] = BUDGET_FACTORS,
) -> tuple[SweepRow, ...]:
    """Each threshold at the configured budget, then each budget at the configured threshold."""
    ranked = cards.sort(["day", "score", "transaction_id"], descending=[False, True, False])
    ranked = ranked.with_columns(pl.int_range(pl.len()).over("day").alias("_rank"))
    combos = [(t, budget) for t in sorted({*thresholds, threshold})]
    combos += [(threshold, max(1, int(budget * f))) for f in factors if f != 1.0]
    out = []
    for t, k in combos:
        above = ranked.filter(pl.col("score") >= t)
        sent = above.filter(pl.col("_rank") < k)
        tp = int(sent["is_fraud"].sum())
        out.append(
            SweepRow(
                threshold=float(t),
                budget=k,
                alerts_per_day=sent.height / days if days else 0.0,
                above_per_day=above.height / days if days else 0.0,
                precision=tp / sent.height if sent.height else None,
                recall=tp / frauds if frauds else None,
                amount_caught=float(sent.filter(pl.col("is_fraud"))["amount"].sum()),
                current=(t == threshold and k == budget),
            )
        )
    return tuple(out)


def weekly(
    day_stats: pl.DataFrame, bins: pl.DataFrame, cpk: dict[date, float | None]
) -> tuple[PeriodMetrics, ...]:
    """AP and mean card precision@k per week (weeks start on Monday)."""
    out = []
    weeks = sorted({d - timedelta(days=d.weekday()) for d in day_stats["day"].to_list()})
    for w in weeks:
        end = w + timedelta(days=7)
        b = bins.filter((pl.col("day") >= w) & (pl.col("day") < end))
        n, f = _hist(b)
        ap, _ = ap_auc(n, f)
        vals = [v for d, v in cpk.items() if w <= d < end and v is not None]
        out.append(
            PeriodMetrics(
                start=w,
                n=int(n.sum()),
                frauds=int(f.sum()),
                average_precision=ap,
                card_precision_at_k=float(np.mean(vals)) if vals else None,
            )
        )
    return tuple(out)


def performance_from_aggregates(
    day_stats: pl.DataFrame,
    bins: pl.DataFrame,
    cards: pl.DataFrame,
    top: pl.DataFrame,
    *,
    threshold: float,
    k: int,
    model_name: str = "",
    model_version: int | None = None,
    role: str = "champion",
    start: Any = None,
    end: Any = None,
) -> PerformanceResult:
    n_hist, f_hist = _hist(bins)
    ap, auc = ap_auc(n_hist, f_hist)
    n, frauds = int(day_stats["n"].sum()), int(day_stats["frauds"].sum())
    tp, fp = int(day_stats["tp"].sum()), int(day_stats["fp"].sum())
    fn = frauds - tp
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = None
    if precision is not None and recall is not None:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    cpk = card_precision_by_day(cards, k)
    pak = (
        top.sort(["day", "score"], descending=[False, True])
        .group_by("day", maintain_order=True)
        .head(k)
        .group_by("day")
        .agg(pl.col("is_fraud").mean().alias("pak"))
    )
    day_ap = {}
    for (day,), part in bins.partition_by("day", as_dict=True).items():
        day_ap[day] = ap_auc(*_hist(part))[0]
    pak_map = dict(zip(pak["day"].to_list(), pak["pak"].to_list(), strict=True))
    daily = tuple(
        DailyPerformance(
            day=r["day"],
            n=int(r["n"]),
            frauds=int(r["frauds"]),
            alerts=int(r["alerts"]),
            alerts_capped=min(int(r["alerts"]), k),
            precision_at_k=pak_map.get(r["day"]),
            card_precision_at_k=cpk.get(r["day"]),
            amount_caught=float(r["amount_caught"]),
            amount_missed=float(r["amount_missed"]),
            average_precision=day_ap.get(r["day"]),
        )
        for r in day_stats.sort("day").iter_rows(named=True)
    )
    pk = [d.precision_at_k for d in daily if d.precision_at_k is not None]
    cp = [d.card_precision_at_k for d in daily if d.card_precision_at_k is not None]
    return PerformanceResult(
        model_name=model_name,
        model_version=model_version,
        role=role,
        start=start,
        end=end,
        n=n,
        n_frauds=frauds,
        fraud_rate=frauds / n if n else 0.0,
        average_precision=ap,
        roc_auc=auc,
        threshold=threshold,
        k=k,
        precision_at_threshold=precision,
        recall_at_threshold=recall,
        f1_at_threshold=f1,
        precision_at_k=float(np.mean(pk)) if pk else None,
        card_precision_at_k=float(np.mean(cp)) if cp else None,
        amount_caught=float(day_stats["amount_caught"].sum()),
        amount_missed=float(day_stats["amount_missed"].sum()),
        alerts_per_day=float(np.mean([d.alerts for d in daily])) if daily else 0.0,
        daily=daily,
        pr_curve=pr_curve(n_hist, f_hist),
        sweep=sweep(cards, days=len(daily), frauds=frauds, threshold=threshold, budget=k),
        weekly=weekly(day_stats, bins, cpk),
    )
