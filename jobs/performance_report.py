"""The performance report: matured labels, champion and shadow challenger side by side.

The window is whole days whose labels have matured (event day at least
``label_delay_days`` before the data clock's), over the last ``[reports]
performance_days`` days; the warehouse reduces it to small aggregates
(:mod:`jobs.performance_data`) and :mod:`reports.aggregated` computes the
metrics, the threshold / budget sweep and the weekly figures.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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
    from jobs.estimation import Columns, EstimationPlan
    from jobs.performance_data import Aggregates, ReviewDay
    from jobs.performance_days import DaysPlan
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
    keep_days: bool = True,
) -> tuple[list[PerformanceResult], Window, EstimationSummary | None]:
    """Champion and challenger on the window's matured days, and the champion's estimate
    up to the data clock's day. Each day's label-free figures are kept between runs
    (:mod:`jobs.performance_days`) and joined with the window's fraud rows; without
    ``keep_days``, or when the warehouse cannot, the scores, transactions and labels are
    joined once, into one window table both read (:func:`jobs.performance_data.scored_window`)."""
    from jobs.estimation import estimate_from_inputs
    from jobs.performance_days import DaysPlan
    from reports.aggregated import performance_from_aggregates

    s = cfg.settings
    window = performance_window(con, cfg, start, end)
    plan = estimation_plan(con, cfg, reg, window)
    challenger = reg.get_alias(s.model.name, "challenger")
    days = DaysPlan(
        model_name=s.model.name,
        challenger=challenger.version if challenger is not None else None,
        threshold=s.alerts.threshold,
        k=s.alerts.daily_budget,
        window_days=(window.end - window.start).days,
        start=min(window.start, plan.rows_from or plan.start),
        end=max(window.end, plan.end),
    )
    results = []
    with _report_rows(con, cfg, days, labels_as_of(con), keep_days) as rows:
        for role, _, _ in _roles(reg, s.model.name):
            agg = rows.aggregates(role == "champion", window.start.date(), window.end.date())
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
        estimation = estimate_from_inputs(cfg, reg, plan, *rows.estimation_inputs(plan))
    return results, window, estimation


class _WindowRows:
    """The report's rows read whole, into one window table (the reference)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, cfg: Config, days: DaysPlan) -> None:
        self.con, self.cfg, self.days = con, cfg, days

    def aggregates(self, champion: bool, start: date, end: date) -> Aggregates | None:
        from jobs.performance_data import window_aggregates

        return window_aggregates(
            self.con,
            rows="champion = ? AND day >= ? AND day < ?",
            params=[champion, start, end],
            threshold=self.days.threshold,
            k=self.days.k,
        )

    def estimation_inputs(self, plan: EstimationPlan) -> tuple[Columns, Columns]:
        from jobs.estimation import window_inputs

        return window_inputs(self.con, self.cfg, plan)


class _KeptDays(_WindowRows):
    """The report's rows from the days kept between runs and the window's fraud rows."""

    def aggregates(self, champion: bool, start: date, end: date) -> Aggregates | None:
        from jobs.performance_days import aggregates

        return aggregates(self.con, self.days, champion=champion, start=start, end=end)

    def estimation_inputs(self, plan: EstimationPlan) -> tuple[Columns, Columns]:
        from jobs.performance_days import estimation_inputs

        return estimation_inputs(self.con, self.days, plan)


@contextmanager
def _report_rows(
    con: duckdb.DuckDBPyConnection,
    cfg: Config,
    days: DaysPlan,
    as_of: datetime,
    keep_days: bool,
) -> Iterator[_WindowRows]:
    from jobs import performance_days
    from jobs.performance_data import scored_window

    if keep_days and performance_days.usable(con, days):
        with performance_days.kept_days(con, cfg.performance_days_dir, days, as_of):
            yield _KeptDays(con, cfg, days)
        return
    with scored_window(
        con,
        model_name=days.model_name,
        where=performance_days.WHERE,
        params=[days.challenger],
        start=days.start,
        end=days.end,
        as_of=as_of,
    ):
        yield _WindowRows(con, cfg, days)


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
    if not inputs:  # `fraudwatch report performance`: recorded too, or the next run redoes it
        inputs = performance_inputs(con, cfg, reg, window)
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
