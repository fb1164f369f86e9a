"""The reports job: drift, performance and model cards from the warehouse and the registry.

``reports`` computes and renders from small frames; this module decides the
windows, reads the warehouse, and publishes the HTML into ``var/reports/``
with the index. Windows:

- drift: reference = the champion's stored reference profile
  (:mod:`jobs.profiles`: its training window after the warm-up days, unless
  ``[reports.drift] reference_start/reference_end`` name another); current =
  the day profiles of the last ``current_days`` days up to the data clock;
- performance: transactions whose labels have matured (event time at least
  ``label_delay_days`` before the data clock), over the last ``[reports]
  performance_days`` days, champion and shadow challenger side by side,
  reduced in the warehouse (:mod:`jobs.performance_data`).

A scheduled run writes a report only when its inputs changed (new data, new
labels, another champion): each index entry records a fingerprint of its
inputs. ``[reports] retention_days`` prunes old drift and performance
reports (the latest of each kind always stays). Heavy modules (scikit-learn,
LightGBM, the gate) are imported only by the reports that need them, so
``fraudwatch report drift`` starts fast.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from jobs import logs
from jobs.config import Config, Drift
from jobs.errors import NotEnoughData
from jobs.features import feature_spec
from jobs.profiles import (
    ReferenceWindow,
    ensure_day_profiles,
    profiled_state,
    reference_profile,
    reference_window,
    window_profile,
)
from jobs.registry_access import open_registry
from jobs.runs import ledger, utcnow
from jobs.warehouse import data_clock, engine_warehouse
from registry import Registry
from reports.drift import DriftPolicy, DriftResult, drift_from_profiles
from reports.index import latest_entry, prune, publish

if TYPE_CHECKING:
    from reports.performance import PerformanceResult

log = logs.get("reporting")


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def label(self) -> str:
        last = self.end - timedelta(microseconds=1)
        return f"{self.start:%Y-%m-%d} .. {last:%Y-%m-%d}"

    def key(self) -> str:
        """The window in a file name: a report of the same window replaces the last one."""
        last = self.end - timedelta(microseconds=1)
        return f"{self.start:%Y-%m-%d}-to-{last:%Y-%m-%d}"


def drift_policy(d: Drift) -> DriftPolicy:
    return DriftPolicy(
        bins=d.bins,
        psi_threshold=d.psi_threshold,
        numeric_test=d.numeric_test,
        categorical_test=d.categorical_test,
        ks_threshold=d.ks_threshold,
        wasserstein_threshold=d.wasserstein_threshold,
        jensenshannon_threshold=d.jensenshannon_threshold,
        chi2_threshold=d.chi2_threshold,
        drift_share=d.drift_share,
        missing_tolerance=d.missing_tolerance,
        new_category_share=d.new_category_share,
        top_features=d.top_features,
    )


def _day(d: date | None) -> datetime | None:
    return datetime.combine(d, time()) if d else None


def fingerprint(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


# -- drift ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DriftPlan:
    """What a drift report compares, known before any profile is read."""

    current: Window
    reference: ReferenceWindow
    champion: Any  # VersionInfo | None
    inputs: str  # fingerprint: champion, windows, profiled rows per day, policy


def drift_plan(
    con: duckdb.DuckDBPyConnection,
    cfg: Config,
    reg: Registry,
    *,
    start: date | None = None,
    end: date | None = None,
) -> DriftPlan:
    d = cfg.settings.reports.drift
    clock = data_clock(con)
    last_day = datetime.combine(clock.date(), time())
    current = Window(
        _day(start) or last_day - timedelta(days=d.current_days - 1),
        _day(end) or last_day + timedelta(days=1),
    )
    champion = reg.get_alias(cfg.settings.model.name, "champion")
    training = (
        (champion.lineage.training_start, champion.lineage.training_end) if champion else None
    )
    reference = reference_window(con, cfg, training, current.start)
    if reference is None:
        raise NotEnoughData(
            "no drift reference: promote a champion (its training window is the reference) "
            "or set [reports.drift] reference_start and reference_end"
        )
    version = champion.version if champion else None
    inputs = fingerprint(
        {
            "champion": version,
            "reference": [reference.start, reference.end],
            "current": [current.start, current.end],
            "profiles": profiled_state(con, current.start.date(), current.end.date(), version),
            "policy": asdict(drift_policy(cfg.settings.reports.drift)),
            "features": list(feature_spec(cfg).names),
        }
    )
    return DriftPlan(current, reference, champion, inputs)


def _days(window: Window) -> list[date]:
    n = (window.end.date() - window.start.date()).days
    return [window.start.date() + timedelta(days=i) for i in range(n)]


def drift_report(
    con: duckdb.DuckDBPyConnection,
    cfg: Config,
    reg: Registry,
    *,
    start: date | None = None,
    end: date | None = None,
    plan: DriftPlan | None = None,
) -> tuple[DriftResult, Window, ReferenceWindow]:
    """Reference vs current drift from profiles; ``start``/``end`` override the current window."""
    plan = plan or drift_plan(con, cfg, reg, start=start, end=end)
    name = cfg.settings.model.name
    version = plan.champion.version if plan.champion else None
    fresh = ensure_day_profiles(
        con, cfg, _days(plan.current), model_name=name, model_version=version
    )
    cur, _ = window_profile(
        con,
        plan.current.start.date(),
        plan.current.end.date(),
        model_name=name,
        model_version=version,
        fresh=fresh,
    )
    if cur.rows == 0:
        raise NotEnoughData(f"no transactions in the current window ({plan.current.label()})")
    ref, _ = reference_profile(con, cfg, reg, plan.reference)
    if ref.rows == 0:
        raise NotEnoughData(
            f"no transactions in the reference window "
            f"({Window(plan.reference.start, plan.reference.end).label()})"
        )
    importance = plan.champion.lineage.extra.get("importance_gain") if plan.champion else None
    result = drift_from_profiles(
        ref,
        cur,
        features=list(feature_spec(cfg).names),
        policy=drift_policy(cfg.settings.reports.drift),
        importance=importance,
    )
    return result, plan.current, plan.reference


def _stamp() -> str:
    return f"{utcnow():%Y-%m-%dT%H%M%S}"


STATUS_COLOUR = {"alarm": "bad", "drift": "warn", "ok": "ok"}


def write_drift(
    con: duckdb.DuckDBPyConnection,
    cfg: Config,
    reg: Registry,
    *,
    plan: DriftPlan | None = None,
    **kw: Any,
) -> tuple[DriftResult, Path]:
    from reports.html import drift_headline, render_drift

    plan = plan or drift_plan(con, cfg, reg, **kw)
    result, current, reference = drift_report(con, cfg, reg, plan=plan)
    ref_label = Window(reference.start, reference.end).label()
    meta = {
        "model": cfg.settings.model.name,
        "champion": f"v{plan.champion.version}" if plan.champion else "none",
        "reference": f"{ref_label} ({reference.note})",
        "current": current.label(),
    }
    html = render_drift(result, title=f"Drift — {current.label()}", meta=meta)
    drifted = sum(1 for f in result.features if f.drifted)
    headline = {
        "verdict": result.status,
        "drifted features": f"{drifted} of {len(result.features)}",
        "importance drifted": f"{result.weighted_share:.1%}",
        "score PSI": "n/a" if result.score is None else f"{result.score.psi:.3f}",
        "window": current.label(),
    }
    path = publish(
        cfg.reports_dir,
        "drift",
        f"drift-{current.key()}",  # one report per window: a re-run of the day replaces it
        html,
        headline,
        f"Drift {current.label()}",
        inputs=plan.inputs,
        status=STATUS_COLOUR[result.status],
        summary=drift_headline(result),
    )
    return result, path


# -- performance (jobs.performance_report, imported only when needed) ------------------------
def write_performance(
    con: duckdb.DuckDBPyConnection, cfg: Config, reg: Registry, **kw: Any
) -> tuple[list[PerformanceResult], Path]:
    """The performance report (:func:`jobs.performance_report.write_performance`)."""
    from jobs.performance_report import write_performance as write

    return write(con, cfg, reg, **kw)


# -- model cards and gate reports ---------------------------------------------------------------
def model_card_data(info: Any, aliases: list[str]) -> dict[str, Any]:
    d = info.to_dict()
    d["aliases"] = aliases
    return d


def write_model_cards(cfg: Config, reg: Registry, *, refresh: bool = False) -> list[Path]:
    """A model card per version, rewritten when its aliases change (lineage never does)."""
    from reports.html import render_model_card

    written = []
    name = cfg.settings.model.name
    for info in reg.list_versions(name):
        path = cfg.reports_dir / "models" / f"{name}-v{info.version}.html"
        inputs = fingerprint(
            {
                "aliases": sorted(info.aliases),
                "version": info.version,
                "tags": info.tags,
                "description": info.description,
            }
        )
        entry = latest_entry(cfg.reports_dir, "models", f"models/{path.name}")
        if path.exists() and not refresh and entry is not None and entry.inputs == inputs:
            continue
        html = render_model_card(model_card_data(info, list(info.aliases)))
        quality = (info.lineage.data_quality or {}).get("status", "unknown")
        metrics = info.lineage.metrics or {}
        headline = {
            "aliases": ", ".join(info.aliases) or "none",
            "data quality": quality,
            "validation AP": f"{metrics['average_precision']:.3f}"
            if "average_precision" in metrics
            else "n/a",
        }
        written.append(
            publish(
                cfg.reports_dir,
                "models",
                f"{name}-v{info.version}",
                html,
                headline,
                f"Model card {name} v{info.version}",
                inputs=inputs,
                status="ok" if quality == "passed" else "bad",
            )
        )
    return written


def publish_comparison(
    cfg: Config,
    candidate: Any,
    champion: Any,
    comparison: Any,
    verdict: Any,
    start: datetime | None,
    end: datetime | None,
    drift: DriftResult | None = None,
) -> Path:
    from reports.performance_html import render_comparison

    s = cfg.settings
    meta = {
        "candidate": f"v{candidate.version}",
        "champion": f"v{champion.version}" if champion is not None else "none (first model)",
        "window": f"{start:%Y-%m-%d} .. {end:%Y-%m-%d}" if start and end else "validation metrics",
        "alert policy": f"threshold {s.alerts.threshold}, {s.alerts.daily_budget} alerts a day",
    }
    html = render_comparison(
        comparison,
        verdict,
        drift=drift,
        quality=dict(candidate.lineage.data_quality or {}),
        meta=meta,
    )
    headline = {"verdict": "pass" if verdict.passed else "refused", **meta}
    return publish(
        cfg.reports_dir,
        "gate",
        f"{_stamp()}-gate-v{candidate.version}",
        html,
        headline,
        f"Gate: v{candidate.version} vs {meta['champion']}",
        status="ok" if verdict.passed else "bad",
    )


# -- the reports stage --------------------------------------------------------------------------
def reports_due(con: duckdb.DuckDBPyConnection, cadence: str) -> bool:
    if cadence == "every_run":
        return True
    if cadence == "never":
        return False
    row = con.execute(
        "SELECT count(*) FROM runs WHERE status = 'ok' AND counts LIKE '%\"reports\"%' "
        "AND CAST(started_at AS DATE) = CAST(? AS DATE)",
        [utcnow()],
    ).fetchall()[0]
    return int(row[0]) == 0


def _unchanged(reports_dir: Path, kind: str, inputs: str) -> str | None:
    entry = latest_entry(reports_dir, kind)
    if entry is not None and entry.inputs == inputs and (reports_dir / entry.path).exists():
        return entry.path
    return None


def write_reports_with(
    con: duckdb.DuckDBPyConnection, cfg: Config, reg: Registry, *, force: bool = False
) -> dict[str, Any]:
    """Drift, performance and model cards, each only when its inputs changed since its latest
    report (or ``force``); a report without enough data is skipped with why."""
    from jobs.performance_report import performance_inputs, performance_window
    from jobs.trends import refresh_index

    out: dict[str, Any] = {"written": [], "skipped": {}, "unchanged": {}}
    clock = logs.Laps()
    drift: DriftResult | None = None
    performance: list[PerformanceResult] | None = None
    try:
        plan = drift_plan(con, cfg, reg)
        same = None if force else _unchanged(cfg.reports_dir, "drift", plan.inputs)
        if same:
            out["unchanged"]["drift"] = same
        else:
            drift, path = write_drift(con, cfg, reg, plan=plan)
            out["written"].append(str(path))
    except NotEnoughData as exc:
        out["skipped"]["drift"] = str(exc)
    clock.lap("drift")
    try:
        window = performance_window(con, cfg, None, None)
        inputs = performance_inputs(con, cfg, reg, window)
        same = None if force else _unchanged(cfg.reports_dir, "performance", inputs)
        if same:
            out["unchanged"]["performance"] = same
        else:
            performance, path = write_performance(con, cfg, reg, inputs=inputs)
            out["written"].append(str(path))
    except NotEnoughData as exc:
        out["skipped"]["performance"] = str(exc)
    clock.lap("performance")
    out["written"].extend(str(p) for p in write_model_cards(cfg, reg))
    clock.lap("model_cards")
    out["pruned"] = prune(cfg.reports_dir, cfg.settings.reports.retention_days)
    if out["written"] or out["pruned"]:
        refresh_index(con, cfg, reg, drift_result=drift, performance=performance)
    clock.lap("index")
    out["seconds"] = clock.seconds
    return out


def write_reports(cfg: Config) -> dict[str, Any]:
    """The scheduled reports job: its own ledger row."""
    with (
        engine_warehouse(cfg) as con,
        ledger(con, "reports") as rec,
    ):
        rec.counts["reports"] = write_reports_with(con, cfg, open_registry(cfg))
        return rec.counts["reports"]
