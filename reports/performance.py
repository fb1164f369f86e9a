"""Model performance on transactions whose labels have matured.

Input: one frame per model with ``transaction_id, event_time, card_id,
amount, is_fraud, score``. Headline metrics (average precision, ROC AUC,
the precision–recall curve) come from scikit-learn, imported when used (the
report's own path, :mod:`reports.aggregated`, shares these result types only);
the per-day metrics are polars group-bys:

- precision@k: each day, the share of frauds among the k highest-scored
  transactions (k = the daily alert budget);
- card precision@k: each day, rank cards by their highest score that day, take
  the top k, and count the share of them with a fraud that day; cards already
  caught (a fraud card in an earlier day's top k) are left out of later days;
- amount caught / missed: fraud amounts scored at or above the threshold / below;
- alerts per day: transactions at or above the threshold, raw and capped at k.

With no fraud (or only frauds) in the window, AP and ROC AUC are undefined
and reported as ``None``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import polars as pl


@dataclass(frozen=True)
class DailyPerformance:
    day: date
    n: int
    frauds: int
    alerts: int  # at or above the threshold
    alerts_capped: int  # min(alerts, k)
    precision_at_k: float | None
    card_precision_at_k: float | None
    amount_caught: float
    amount_missed: float
    average_precision: float | None = None  # the day's own AP (None without both classes)


@dataclass(frozen=True)
class PerformanceResult:
    model_name: str
    model_version: int | None
    role: str
    start: datetime | None
    end: datetime | None
    n: int
    n_frauds: int
    fraud_rate: float
    average_precision: float | None
    roc_auc: float | None
    threshold: float
    k: int
    precision_at_threshold: float | None
    recall_at_threshold: float | None
    f1_at_threshold: float | None
    precision_at_k: float | None  # mean over days
    card_precision_at_k: float | None  # mean over days
    amount_caught: float
    amount_missed: float
    alerts_per_day: float
    daily: tuple[DailyPerformance, ...]
    pr_curve: tuple[tuple[float, float], ...]  # (recall, precision), at most 200 points
    sweep: tuple[Any, ...] = ()  # reports.aggregated.SweepRow: thresholds and budgets
    weekly: tuple[Any, ...] = ()  # reports.aggregated.PeriodMetrics: AP, card p@k per week

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("start", "end"):
            d[key] = d[key].isoformat() if d[key] else None
        d["daily"] = [{**x, "day": x["day"].isoformat()} for x in d["daily"]]
        d["weekly"] = [{**x, "start": x["start"].isoformat()} for x in d["weekly"]]
        d["pr_curve"] = [list(p) for p in self.pr_curve]
        return d


def _safe(fn: Any, y: np.ndarray, s: np.ndarray) -> float | None:
    if y.size == 0 or y.min() == y.max():
        return None
    return float(fn(y, s))


def threshold_metrics(
    y: np.ndarray, s: np.ndarray, threshold: float
) -> tuple[float | None, float | None, float | None]:
    pred = s >= threshold
    tp = int((pred & y).sum())
    fp = int((pred & ~y).sum())
    fn = int((~pred & y).sum())
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    if precision is None or recall is None:
        f1 = None
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def daily_metrics(frame: pl.DataFrame, *, threshold: float, k: int) -> pl.DataFrame:
    """Per-day series (vectorised): n, frauds, alerts, precision@k, card precision@k, amounts."""
    f = frame.with_columns(pl.col("event_time").dt.date().alias("day"))
    base = f.group_by("day").agg(
        pl.len().alias("n"),
        pl.col("is_fraud").sum().cast(pl.Int64).alias("frauds"),
        (pl.col("score") >= threshold).sum().cast(pl.Int64).alias("alerts"),
        pl.when(pl.col("is_fraud") & (pl.col("score") >= threshold))
        .then(pl.col("amount"))
        .otherwise(0.0)
        .sum()
        .alias("amount_caught"),
        pl.when(pl.col("is_fraud") & (pl.col("score") < threshold))
        .then(pl.col("amount"))
        .otherwise(0.0)
        .sum()
        .alias("amount_missed"),
    )
    ranked = f.with_columns(
        pl.col("score").rank("ordinal", descending=True).over("day").alias("_rank")
    )
    pak = (
        ranked.filter(pl.col("_rank") <= k)
        .group_by("day")
        .agg(pl.col("is_fraud").mean().alias("precision_at_k"))
    )
    cards = f.group_by(["day", "card_id"]).agg(
        pl.col("score").max().alias("max_score"), pl.col("is_fraud").any().alias("fraud")
    )
    # cards caught on an earlier day (a fraud card in that day's top k) are left out later:
    # a loop over days (not rows), as each day's exclusions depend on the days before it
    caught: set[str] = set()
    rows: list[tuple[Any, float | None]] = []
    for (day,), group in cards.sort("day").group_by(["day"], maintain_order=True):
        top = (
            group.filter(~pl.col("card_id").is_in(list(caught)))
            .sort(["max_score", "card_id"], descending=[True, False])
            .head(k)
        )
        rows.append((day, float(top["fraud"].mean()) if top.height else None))  # type: ignore[arg-type]
        caught.update(top.filter(pl.col("fraud"))["card_id"].to_list())
    cpk = pl.DataFrame(
        {"day": [d for d, _ in rows], "card_precision_at_k": [v for _, v in rows]},
        schema={"day": pl.Date, "card_precision_at_k": pl.Float64},
    )
    return (
        base.join(pak, on="day", how="left")
        .join(cpk, on="day", how="left")
        .with_columns(pl.min_horizontal(pl.col("alerts"), pl.lit(k)).alias("alerts_capped"))
        .sort("day")
    )


def compute_performance(
    frame: pl.DataFrame,
    *,
    threshold: float,
    k: int,
    model_name: str = "",
    model_version: int | None = None,
    role: str = "champion",
) -> PerformanceResult:
    y = frame["is_fraud"].cast(pl.Boolean).to_numpy().astype(bool)
    s = frame["score"].cast(pl.Float64).to_numpy()
    n = int(y.size)
    frauds = int(y.sum())
    # scikit-learn takes seconds to import: only the row-by-row path (the gate) needs it
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

    ap = _safe(average_precision_score, y, s)
    auc = _safe(roc_auc_score, y, s)
    p_t, r_t, f1_t = threshold_metrics(y, s, threshold)
    curve: tuple[tuple[float, float], ...] = ()
    if ap is not None:
        precision, recall, _ = precision_recall_curve(y, s)
        idx = np.unique(np.linspace(0, precision.size - 1, min(200, precision.size)).astype(int))
        curve = tuple((float(recall[i]), float(precision[i])) for i in idx)
    days = daily_metrics(frame, threshold=threshold, k=k) if n else pl.DataFrame()
    day_ap: dict[Any, float | None] = {}
    if n:  # a loop over days (not rows), each scored by scikit-learn
        by_day = frame.select(
            pl.col("event_time").dt.date().alias("day"), "is_fraud", "score"
        ).partition_by("day", as_dict=True)
        for (day,), part in by_day.items():
            day_ap[day] = _safe(
                average_precision_score,
                part["is_fraud"].cast(pl.Boolean).to_numpy().astype(bool),
                part["score"].cast(pl.Float64).to_numpy(),
            )
    daily = tuple(
        DailyPerformance(
            day=r["day"],
            n=int(r["n"]),
            frauds=int(r["frauds"]),
            alerts=int(r["alerts"]),
            alerts_capped=int(r["alerts_capped"]),
            precision_at_k=None if r["precision_at_k"] is None else float(r["precision_at_k"]),
            card_precision_at_k=None
            if r["card_precision_at_k"] is None
            else float(r["card_precision_at_k"]),
            amount_caught=float(r["amount_caught"]),
            amount_missed=float(r["amount_missed"]),
            average_precision=day_ap.get(r["day"]),
        )
        for r in (days.iter_rows(named=True) if n else [])  # one row per day
    )
    pk = [d.precision_at_k for d in daily if d.precision_at_k is not None]
    cpk = [d.card_precision_at_k for d in daily if d.card_precision_at_k is not None]
    times = frame["event_time"] if n else None
    return PerformanceResult(
        model_name=model_name,
        model_version=model_version,
        role=role,
        start=times.min() if times is not None else None,  # type: ignore[arg-type]
        end=times.max() if times is not None else None,  # type: ignore[arg-type]
        n=n,
        n_frauds=frauds,
        fraud_rate=frauds / n if n else 0.0,
        average_precision=ap,
        roc_auc=auc,
        threshold=threshold,
        k=k,
        precision_at_threshold=p_t,
        recall_at_threshold=r_t,
        f1_at_threshold=f1_t,
        precision_at_k=float(np.mean(pk)) if pk else None,
        card_precision_at_k=float(np.mean(cpk)) if cpk else None,
        amount_caught=float(sum(d.amount_caught for d in daily)),
        amount_missed=float(sum(d.amount_missed for d in daily)),
        alerts_per_day=float(np.mean([d.alerts for d in daily])) if daily else 0.0,
        daily=daily,
        pr_curve=curve,
    )
