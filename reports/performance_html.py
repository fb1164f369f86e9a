"""HTML of the performance report and the promotion gate's report (views for dumb templates).

Kept apart from :mod:`reports.html` so the drift report's command never
imports the performance and comparison code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from reports import svg
from reports.html import _render, _svg, drift_view, num, pct, signed

if TYPE_CHECKING:
    from reports.compare import Comparison
    from reports.drift import DriftResult
    from reports.estimation import EstimationSummary
    from reports.gate import Verdict
    from reports.performance import PerformanceResult


def money(x: float | None, currency: str = "") -> str:
    if x is None:
        return "n/a"
    return f"{x:,.2f} {currency}".rstrip()


def _label(r: PerformanceResult) -> str:
    return f"{r.role} v{r.model_version}" if r.model_version is not None else r.role


def sweep_rows(r: PerformanceResult, currency: str) -> list[dict[str, Any]]:
    return [
        {
            "threshold": f"{s.threshold:.2f}",
            "budget": s.budget,
            "alerts": num(s.alerts_per_day, 1),
            "above": num(s.above_per_day, 1),
            "precision": num(s.precision),
            "recall": num(s.recall),
            "caught": money(s.amount_caught, currency),
            "current": s.current,
        }
        for s in r.sweep
    ]


def performance_view(results: Sequence[PerformanceResult], currency: str = "") -> dict[str, Any]:
    def cash(x: float | None) -> str:
        return money(x, currency)

    kpis = [
        ("Average precision", "average_precision", num),
        ("ROC AUC", "roc_auc", num),
        ("Precision@k (mean per day)", "precision_at_k", num),
        ("Card precision@k (mean per day)", "card_precision_at_k", num),
        ("Precision at threshold", "precision_at_threshold", num),
        ("Recall at threshold", "recall_at_threshold", num),
        ("F1 at threshold", "f1_at_threshold", num),
        ("Fraud amount caught", "amount_caught", cash),
        ("Fraud amount missed", "amount_missed", cash),
        ("Alerts per day", "alerts_per_day", lambda x: num(x, 1)),
    ]
    first = results[0]
    days = [d.day.isoformat() for d in first.daily]
    by_day = {_label(r): {d.day.isoformat(): d for d in r.daily} for r in results}
    series_charts = []
    for title, attr in (
        ("Precision@k per day", "precision_at_k"),
        ("Card precision@k per day", "card_precision_at_k"),
        ("Alerts per day (at or above the threshold)", "alerts"),
        (f"Fraud amount missed per day ({currency})", "amount_missed"),
    ):
        lines = {
            name: [getattr(m[d], attr) if d in m else None for d in days]
            for name, m in by_day.items()
        }
        series_charts.append({"title": title, "svg": _svg(svg.lines(days, lines, title))})
    pr = _svg(svg.pr_curves({_label(r): r.pr_curve for r in results}, "Precision–recall"))
    return {
        "models": [_label(r) for r in results],
        "kpis": [
            {"name": name, "values": [fmt(getattr(r, attr)) for r in results]}  # type: ignore[operator]
            for name, attr, fmt in kpis
        ],
        "n": f"{first.n:,}",
        "frauds": f"{first.n_frauds:,}",
        "fraud_rate": pct(first.fraud_rate, 2),
        "threshold": num(first.threshold, 2),
        "k": first.k,
        "currency": currency,
        "charts": series_charts,
        "pr": pr,
        "sweep": sweep_rows(first, currency),
        "weekly": [
            {
                "week": w.start.isoformat(),
                "n": f"{w.n:,}",
                "frauds": f"{w.frauds:,}",
                "ap": num(w.average_precision),
                "cpak": num(w.card_precision_at_k),
            }
            for w in first.weekly
        ],
        "daily": [
            {
                "day": d.day.isoformat(),
                "n": f"{d.n:,}",
                "frauds": d.frauds,
                "alerts": d.alerts,
                "ap": num(d.average_precision),
                "pak": num(d.precision_at_k),
                "cpak": num(d.card_precision_at_k),
                "caught": cash(d.amount_caught),
                "missed": cash(d.amount_missed),
            }
            for d in first.daily
        ],
    }


def reviews_view(days: Sequence[Any], overturned: Any) -> dict[str, Any]:
    """Alert precision per day from analysts' decisions next to the chargebacks' (``days``:
    :class:`jobs.performance_data.ReviewDay`-like rows; ``overturned``: counts with
    ``compared``, ``overturned``, ``confirmed_but_legit``, ``cleared_but_fraud``, ``rate``)."""
    return {
        "days": [
            {
                "day": d.day.isoformat(),
                "alerts": d.alerts,
                "confirmed": d.confirmed,
                "cleared": d.cleared,
                "other": d.other,
                "pending": d.pending,
                "review_precision": num(d.review_precision),
                "label_precision": num(d.label_precision) if d.matured else "not matured",
            }
            for d in days
        ],
        "chart": _svg(
            svg.lines(
                [d.day.isoformat() for d in days],
                {
                    "from dispositions": [d.review_precision for d in days],
                    "from chargebacks": [d.label_precision for d in days],
                },
                "Alert precision per day",
            )
        )
        if days
        else None,
        "compared": overturned.compared if overturned is not None else 0,
        "overturned": overturned.overturned if overturned is not None else 0,
        "confirmed_but_legit": overturned.confirmed_but_legit if overturned is not None else 0,
        "cleared_but_fraud": overturned.cleared_but_fraud if overturned is not None else 0,
        "rate": pct(overturned.rate, 1)
        if overturned is not None and overturned.rate is not None
        else "n/a",
    }


def estimation_view(summary: EstimationSummary | None) -> dict[str, Any] | None:
    """Estimated metrics per day with their interval, the realised figure once matured, and
    how often the interval held it."""
    if summary is None:
        return None
    from reports.estimation import METRICS

    def cell(d: Any, m: str) -> dict[str, Any]:
        i = d.estimated[m]
        real = d.realised.get(m)
        return {
            "estimate": num(i.estimate),
            "interval": f"{num(i.low)} .. {num(i.high)}",
            "realised": (num(real) if d.matured else "not matured")
            + (" (in training window)" if d.in_training and d.matured else ""),
            "held": d.holds(m),
        }

    metric = summary.metric
    days = [x.day.isoformat() for x in summary.days]
    chart = svg.lines(
        days,
        {
            "estimate": [x.estimated[metric].estimate for x in summary.days],
            "interval low": [x.estimated[metric].low for x in summary.days],
            "interval high": [x.estimated[metric].high for x in summary.days],
            "realised": [x.realised.get(metric) for x in summary.days],
        },
        f"{metric.replace('_', ' ').capitalize()}: estimated and realised",
    )
    coverage = []
    for m in METRICS:
        held, compared = summary.coverage(m)
        coverage.append(
            {"metric": m.replace("_", " "), "held": held, "compared": compared,
             "share": pct(held / compared, 0) if compared else "n/a"}
        )  # fmt: skip
    return {
        "metric": metric.replace("_", " "),
        "metrics": [m.replace("_", " ") for m in METRICS],
        "confidence": pct(summary.confidence, 0),
        "alarm": summary.alarm,
        "reference": num(summary.reference),
        "recent": num(summary.recent),
        "recent_days": summary.recent_days,
        "max_drop": f"{summary.max_drop:g}",
        "coverage": coverage,
        "chart": _svg(chart),
        "days": [
            {
                "day": x.day.isoformat(),
                "matured": x.matured,
                "n": f"{x.n:,}",
                "alerts": x.alerts,
                "cells": [cell(x, m) for m in METRICS],
            }
            for x in reversed(summary.days)
        ],
    }


def render_performance(
    results: Sequence[PerformanceResult],
    *,
    title: str,
    meta: dict[str, str],
    currency: str = "",
    reviews: Sequence[Any] = (),
    overturned: Any = None,
    estimation: EstimationSummary | None = None,
) -> str:
    return _render(
        "performance.html",
        title=title,
        meta=meta,
        v=performance_view(results, currency),
        r=reviews_view(reviews, overturned),
        e=estimation_view(estimation),
    )


# -- comparison (gate) --------------------------------------------------------------------------
def _side_by_side(comparison: Comparison) -> dict[str, Any] | None:
    """Both models on the window: PR curves, per-day AP, card precision@k and alerts."""
    cand, champ = comparison.candidate_performance, comparison.champion_performance
    if cand is None or champ is None:
        return None
    days = sorted({d.day for d in cand.daily} | {d.day for d in champ.daily})
    c = {d.day: d for d in cand.daily}
    h = {d.day: d for d in champ.daily}
    x = [d.isoformat() for d in days]

    def line(m: dict[Any, Any], attr: str) -> list[float | None]:
        return [getattr(m[d], attr) if d in m else None for d in days]

    figures = [
        svg.pr_curves({"candidate": cand.pr_curve, "champion": champ.pr_curve}, "Precision–recall"),
        svg.lines(
            x,
            {"candidate": line(c, "average_precision"), "champion": line(h, "average_precision")},
            "Average precision per day",
        ),
        svg.lines(
            x,
            {
                "candidate": line(c, "card_precision_at_k"),
                "champion": line(h, "card_precision_at_k"),
            },
            f"Card precision@{comparison.k} per day",
        ),
        svg.lines(
            x,
            {"candidate": line(c, "alerts_capped"), "champion": line(h, "alerts_capped")},
            f"Alerts per day at threshold {comparison.threshold:g}, budget {comparison.k}",
        ),
    ]
    return {
        "charts": [_svg(s) for s in figures],
        "days": [
            {
                "day": d.isoformat(),
                "ap": (num(c[d].average_precision), num(h[d].average_precision)),
                "cpak": (num(c[d].card_precision_at_k), num(h[d].card_precision_at_k)),
                "alerts": (c[d].alerts_capped, h[d].alerts_capped),
            }
            for d in days
            if d in c and d in h
        ],
    }


def render_comparison(
    comparison: Comparison | None,
    verdict: Verdict,
    *,
    drift: DriftResult | None = None,
    quality: dict[str, Any],
    meta: dict[str, str],
) -> str:
    rows = []
    if comparison is not None:
        for m in comparison.metrics:
            rows.append(
                {
                    "name": m.name,
                    "candidate": num(m.candidate),
                    "champion": num(m.champion),
                    "diff": signed(m.difference),
                    "ci": f"{signed(m.ci_low)} .. {signed(m.ci_high)}"
                    if m.ci_low is not None
                    else "n/a",
                }
            )
    v = {
        "passed": verdict.passed,
        "verdict": "PASS: the candidate may be promoted"
        if verdict.passed
        else "REFUSED: the candidate is not promoted",
        "checks": [{"passed": c.passed, "detail": c.detail} for c in verdict.checks],
        "rows": rows,
        "window": (
            f"{comparison.days} days, {comparison.n:,} transactions, {comparison.n_frauds:,} frauds; "
            f"{comparison.bootstrap_samples} bootstrap samples, {comparison.confidence:.0%} intervals"
        )
        if comparison
        else "",
        "side": _side_by_side(comparison) if comparison is not None else None,
        "quality_status": quality.get("status", "unknown"),
        "quality_checks": [
            {"name": c.get("name"), "passed": c.get("passed"), "detail": c.get("detail")}
            for c in quality.get("checks", [])
        ],
        "drift": drift_view(drift) if drift is not None else None,
    }
    title = f"Promotion gate: {meta.get('candidate', '')} vs {meta.get('champion', '')}"
    return _render("comparison.html", title=title, meta=meta, v=v)
