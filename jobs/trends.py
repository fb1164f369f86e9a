"""The index's context: the champion now and small trends, from small tables only.

- drift per week: each of the last ``WEEKS`` weeks' day profiles against the
  champion's stored reference profile (the share of the champion's importance
  that drifted, and how many features);
- average precision and card precision@k per week, on matured labels, from
  the latest performance computation (kept from the last context when the
  performance report was unchanged);
- alerts per day and the share of them confirmed as fraud by a label so far.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

import duckdb

from jobs import logs
from jobs.config import Config
from jobs.errors import NotEnoughData
from jobs.features import feature_spec
from jobs.profiles import reference_profile, window_profile
from registry import Registry
from reports.drift import DriftResult, drift_from_profiles
from reports.index import load_context, write_context

log = logs.get("trends")
WEEKS = 8
ALERT_DAYS = 30


def _champion(reg: Registry, name: str) -> dict[str, Any] | None:
    info = reg.get_alias(name, "champion")
    if info is None:
        return None
    since = None
    for event in reg.history(name, "champion"):  # the latest move to this version
        moved = event.to_version == info.version and event.kind != "refused"
        if moved and (since is None or event.created_at > since):
            since = event.created_at
    return {
        "model": name,
        "version": info.version,
        "since": f"{since:%Y-%m-%d %H:%M}" if since else None,
        "card": f"models/{name}-v{info.version}.html",
    }


def drift_weeks(
    con: duckdb.DuckDBPyConnection, cfg: Config, reg: Registry, clock: datetime
) -> dict[str, Any]:
    from jobs.reporting import drift_plan, drift_policy

    name = cfg.settings.model.name
    plan = drift_plan(con, cfg, reg)
    ref, _ = reference_profile(con, cfg, reg, plan.reference)
    version = plan.champion.version if plan.champion else None
    importance = plan.champion.lineage.extra.get("importance_gain") if plan.champion else None
    monday = clock.date() - timedelta(days=clock.date().weekday())
    x, share, drifted = [], [], []
    for i in range(WEEKS - 1, -1, -1):
        start = monday - timedelta(weeks=i)
        cur, days = window_profile(
            con, start, start + timedelta(days=7), model_name=name, model_version=version
        )
        if not days or not ref.rows:
            continue
        try:
            r = drift_from_profiles(
                ref,
                cur,
                features=list(feature_spec(cfg).names),
                policy=drift_policy(cfg.settings.reports.drift),
                importance=importance,
            )
        except ValueError:  # a week profiled under other feature definitions
            continue
        x.append(f"{start:%m-%d}")
        share.append(round(r.weighted_share, 4))
        drifted.append(len(r.drifted))
    return {
        "title": "Drift per week (importance drifted)",
        "x": x,
        "lines": {"importance drifted": share},
        "drifted": drifted,
    }


def performance_weeks(results: list[Any] | None) -> dict[str, Any]:
    first = results[0] if results else None
    weeks = list(first.weekly) if first else []
    return {
        "title": "AP and card precision@k per week",
        "x": [f"{w.start:%m-%d}" for w in weeks],
        "lines": {
            "AP": [w.average_precision for w in weeks],
            "card p@k": [w.card_precision_at_k for w in weeks],
        },
    }


def alert_days(con: duckdb.DuckDBPyConnection, clock: datetime) -> dict[str, Any]:
    since = datetime.combine(clock.date(), time()) - timedelta(days=ALERT_DAYS)
    rows = con.execute(
        "WITH a AS (SELECT DISTINCT transaction_id, alert_day FROM alerts WHERE alert_day >= ?), "
        "l AS (SELECT transaction_id, arg_max(is_fraud, reported_at) AS is_fraud FROM labels "
        "GROUP BY transaction_id) "
        "SELECT a.alert_day, count(*), count(*) FILTER (WHERE l.is_fraud) "
        "FROM a LEFT JOIN l USING (transaction_id) GROUP BY ALL ORDER BY 1",
        [since.date()],
    ).fetchall()
    return {
        "title": "Alerts per day",
        "x": [f"{d:%m-%d}" for d, _, _ in rows],
        "lines": {"alerts": [int(n) for _, n, _ in rows]},
        "confirmed": [round(f / n, 4) if n else None for _, n, f in rows],
    }


def landing_problems(con: duckdb.DuckDBPyConnection, limit: int = 20) -> list[dict[str, Any]]:
    """Landing files that need a person: set aside as unreadable, or changed after they
    were ingested (as the ledger says now; a file fixed or re-ingested leaves the list)."""
    rows = con.execute(
        "SELECT path, feed, status, coalesce(note, ''), ingested_at FROM ingested_files "
        "WHERE status IN ('set_aside', 'changed') ORDER BY ingested_at DESC LIMIT ?",
        [limit],
    ).fetchall()
    return [
        {"path": p, "feed": f, "status": s.replace("_", " "), "note": n, "when": str(t)[:16]}
        for p, f, s, n, t in rows
    ]


def refresh_index(
    con: duckdb.DuckDBPyConnection,
    cfg: Config,
    reg: Registry,
    *,
    drift_result: DriftResult | None = None,
    performance: list[Any] | None = None,
) -> dict[str, Any]:
    """Recompute the index's context and rewrite the index page with it."""
    from jobs.warehouse import data_clock

    clock = data_clock(con)
    trends = []
    try:
        trends.append(drift_weeks(con, cfg, reg, clock))
    except (NotEnoughData, ValueError) as exc:  # a trend never fails the reports
        logs.event(log, "no drift trend", reason=str(exc))
    perf = performance_weeks(performance)
    if performance is None:  # the performance report was unchanged: keep its last trend
        before = load_context(cfg.reports_dir).get("trends", [])
        perf = next((t for t in before if t.get("title") == perf["title"]), perf)
    trends.append(perf)
    alerts = alert_days(con, clock)
    trends.append(alerts)
    trends.append(
        {
            "title": "Alerts confirmed as fraud (share)",
            "x": alerts["x"],
            "lines": {"confirmed": alerts["confirmed"]},
        }
    )
    context = {
        "champion": _champion(reg, cfg.settings.model.name),
        "champion_card": (_champion(reg, cfg.settings.model.name) or {}).get("card"),
        "trends": trends,
        "as_of": str(clock),
        "drift_status": drift_result.status if drift_result else None,
        "landing_problems": landing_problems(con),
    }
    write_context(cfg.reports_dir, context)
    return context
