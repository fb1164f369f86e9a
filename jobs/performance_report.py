"""The performance report: matured labels, champion and shadow challenger side by side.

The window is whole days whose labels have matured (event day at least
``label_delay_days`` before the data clock's), over the last ``[reports]
performance_days`` days; the warehouse reduces it to small aggregates
(:mod:`jobs.performance_data`) and :mod:`reports.aggregated` computes the
metrics, the threshold / budget sweep and the weekly figures.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from jobs.config import Config
from jobs.errors import NotEnoughData
from jobs.reporting import Window, _day, fingerprint
from jobs.warehouse import data_clock
from registry import Registry
from reports.index import publish

if TYPE_CHECKING:
    from jobs.alert_reviews import Overturned
    from jobs.estimation import EstimationPlan
    from jobs.performance_data import ReviewDay
    from reports.estimation import EstimationSummary
    from reports.performance import PerformanceResult


def performance_window(
    con: duckdb.DuckDBPyConnection, cfg: Config, start: date | None, end: date | None
) -> Window:
    """Whole days whose labels have matured: up to the day ``label_delay_days`` before the
    clock's, over the last ``performance_days`` days (or the days asked for)."""
    s = cfg.settings
    matured = datetime.combine(
        (data_clock(con) - timedelta(days=s.source.label_delay_days)).date(), time()
    )
    return Window(
        _day(start) or matured - timedelta(days=s.reports.performance_days),
        min(_day(end) or matured, matured),
    )


def _roles(reg: Registry, name: str) -> list[tuple[str, str, list[Any]]]:
    challenger = reg.get_alias(name, "challenger")
    roles: list[tuple[str, str, list[Any]]] = [("champion", "s.role = 'champion'", [])]
    if challenger is not None:
        roles.append(
            ("challenger", "s.role = 'challenger' AND s.model_version = ?", [challenger.version])
        )
    return roles


def labels_as_of(con: duckdb.DuckDBPyConnection) -> datetime:
    """The report counts the labels reported before the data clock's day: within a day, new
    chargebacks do not make every run recompute the report; the next day's first run does."""
    return datetime.combine(data_clock(con).date(), time())


def performance_inputs(
    con: duckdb.DuckDBPyConnection, cfg: Config, reg: Registry, window: Window
) -> str:
    """What the report depends on: the window, the models, the labels known as of today, the
    alert policy (cheap: the window's scores are not read; a late transaction scored into an
    old window shows at the next change)."""
    s = cfg.settings
    as_of = labels_as_of(con)
    labels = con.execute(
        "SELECT count(*), max(ingested_at) FROM labels WHERE reported_at < ?", [as_of]
    ).fetchall()
    reviews = con.execute(
        "SELECT count(*), max(ingested_at), (SELECT count(*) FROM alerts) FROM dispositions"
    ).fetchall()
    return fingerprint(
        {
            "window": [window.start, window.end],
            "roles": _roles(reg, cfg.settings.model.name),
            "labels": [as_of, labels],
            "reviews": reviews,
            "policy": [s.alerts.threshold, s.alerts.daily_budget, s.reports.currency],
        }
    )


def performance_report(
    con: duckdb.DuckDBPyConnection,
    cfg: Config,
    reg: Registry,
    *,
    start: date | None = None,
    end: date | None = None,
) -> tuple[list[PerformanceResult], Window, EstimationSummary | None]:
    """Champion and challenger on the window's matured days, and the champion's estimate
    up to the data clock's day: the scores, transactions and labels are joined once, into
    one window table both read (:func:`jobs.performance_data.scored_window`)."""
    from jobs.estimation import estimate_from_window
    from jobs.performance_data import scored_window, window_aggregates
    from reports.aggregated import performance_from_aggregates

    s = cfg.settings
    window = performance_window(con, cfg, start, end)
    plan = estimation_plan(con, cfg, reg, window)
    challenger = reg.get_alias(s.model.name, "challenger")
    results = []
    with scored_window(
        con,
        model_name=s.model.name,
        where="(s.role = 'champion' OR (s.role = 'challenger' AND s.model_version = ?))",
        params=[challenger.version if challenger is not None else None],
        start=min(window.start, plan.rows_from or plan.start),
        end=max(window.end, plan.end),
        as_of=labels_as_of(con),
    ):
        for role, _, _ in _roles(reg, s.model.name):
            agg = window_aggregates(
                con,
                rows="champion = ? AND day >= ? AND day < ?",
                params=[role == "champion", window.start.date(), window.end.date()],
                threshold=s.alerts.threshold,
                k=s.alerts.daily_budget,
            )
            if agg is None:
                continue
            results.append(
                performance_from_aggregates(
                    agg.day_stats,
                    agg.bins,
                    agg.cards,
                    agg.top,
                    threshold=s.alerts.threshold,
                    k=s.alerts.daily_budget,
                    model_name=s.model.name,
                    model_version=agg.version,
                    role=role,
                    start=window.start,
                    end=window.end,
                )
            )
        if not results:
            raise NotEnoughData(
                f"no scored transactions with matured labels in {window.label()}: labels "
                f"mature {s.source.label_delay_days} days after the event"
            )
        estimation = estimate_from_window(con, cfg, reg, plan)
    return results, window, estimation


def delivery_backlog(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Alerts a channel has not accepted yet (pending) or gave up on (failed), per channel."""
    rows = con.execute(
        "SELECT channel, count(*) FILTER (WHERE status = 'pending'), "
        "count(*) FILTER (WHERE status = 'failed') FROM alerts GROUP BY channel ORDER BY channel"
    ).fetchall()
    pending = ", ".join(f"{c} {p}" for c, p, _ in rows if p) or "none"
    failed = ", ".join(f"{c} {f}" for c, _, f in rows if f) or "none"
    return {"alerts pending delivery": pending, "alerts failed": failed}


def reviews_section(
    con: duckdb.DuckDBPyConnection, label_delay_days: int, window: Window
) -> tuple[list[ReviewDay], Overturned]:
    """Alert days from the window's start to the data clock's: the analysts' decisions, and
    the chargebacks' verdict on the days whose labels matured; how often chargebacks
    overturned an analyst (transactions of those days)."""
    from jobs.alert_reviews import overturned
    from jobs.performance_data import review_days

    clock = data_clock(con)
    matured = datetime.combine((clock - timedelta(days=label_delay_days)).date(), time())
    end = datetime.combine(clock.date(), time()) + timedelta(days=1)
    days = review_days(con, window.start, end, matured, labels_as_of(con))
    return days, overturned(con, window.start, end)


def estimation_plan(
    con: duckdb.DuckDBPyConnection, cfg: Config, reg: Registry, window: Window
) -> EstimationPlan:
    """Estimated performance from the window's start to the data clock's day: the days
    whose labels have not matured, and the matured ones to hold the estimate against."""
    from jobs.estimation import EstimationPlan, rows_from

    clock = data_clock(con)
    matured = (clock - timedelta(days=cfg.settings.source.label_delay_days)).date()
    champion = reg.get_alias(cfg.settings.model.name, "champion")
    trained = champion.lineage.training_end if champion is not None else None
    return EstimationPlan(
        start=window.start,
        end=datetime.combine(clock.date(), time()) + timedelta(days=1),
        matured=matured,
        trained_through=trained.date() if isinstance(trained, datetime) else trained,
        rows_from=rows_from(cfg, window.start),
    )


def estimate_trend(summary: EstimationSummary) -> dict[str, Any]:
    """The index's trend of the estimated metric per day, and the realised one once known."""
    name = summary.metric.replace("_", " ")
    days = summary.days[-30:]
    return {
        "title": f"Estimated {name} per day (and realised)",
        "x": [f"{d.day:%m-%d}" for d in days],
        "lines": {
            "estimated": [d.estimated[summary.metric].estimate for d in days],
            "realised": [d.realised.get(summary.metric) for d in days],
        },
    }


def write_performance(
    con: duckdb.DuckDBPyConnection,
    cfg: Config,
    reg: Registry,
    *,
    inputs: str = "",
    **kw: Any,
) -> tuple[list[PerformanceResult], Path]:
    from reports.performance_html import render_performance

    results, window, estimation = performance_report(con, cfg, reg, **kw)
    undelivered = delivery_backlog(con)
    reviews, overturns = reviews_section(con, cfg.settings.source.label_delay_days, window)
    meta = {
        "window": window.label(),
        "labels reported before": f"{labels_as_of(con):%Y-%m-%d}",
        "model": cfg.settings.model.name,
        **undelivered,
    }
    if estimation is not None and estimation.calibration:
        meta["estimate of the latest day calibrated by"] = estimation.calibration
    html = render_performance(
        results,
        title=f"Performance — {window.label()}",
        meta=meta,
        currency=cfg.settings.reports.currency,
        reviews=reviews,
        overturned=overturns,
        estimation=estimation,
    )
    first = results[0]
    headline = {
        "model": f"v{first.model_version} ({first.role})",
        "average precision": "n/a"
        if first.average_precision is None
        else f"{first.average_precision:.3f}",
        "card precision@k": "n/a"
        if first.card_precision_at_k is None
        else f"{first.card_precision_at_k:.3f}",
        "window": window.label(),
        **undelivered,
    }
    if estimation is not None and estimation.recent is not None:
        name = estimation.metric.replace("_", " ")
        headline[f"estimated {name} (last {estimation.recent_days} days)"] = (
            f"{estimation.recent:.3f}"
        )
    path = publish(
        cfg.reports_dir,
        "performance",
        f"performance-{window.key()}",
        html,
        headline,
        f"Performance {window.label()}",
        inputs=inputs,
        status="bad" if estimation is not None and estimation.alarm else "ok",
        extra={"trend": estimate_trend(estimation)} if estimation is not None else None,
        summary=f"Alarm: {estimation.alarm}" if estimation is not None and estimation.alarm else "",
    )
    return results, path
