"""The reports job: drift, performance and model cards from the warehouse and the registry.

``reports`` computes and renders from frames; this module decides the windows,
reads the warehouse, and publishes the HTML into ``var/reports/`` with the
index. Windows:

- drift: reference = the champion's training window, unless
  ``[reports.drift] reference_start/reference_end`` name another; current = the
  last ``current_days`` days up to the data clock;
- performance: transactions whose labels have matured (event time at least
  ``label_delay_days`` before the data clock), over the last
  ``[reports] performance_days`` days, champion and shadow challenger side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from jobs import logs
from jobs.config import Config
from jobs.errors import NotEnoughData
from jobs.features import compute_features, feature_spec
from jobs.registry_access import open_registry
from jobs.runs import ledger, utcnow
from jobs.scoring import inference_policy, load_model, predict
from jobs.training import data_clock
from jobs.warehouse import configured_warehouse
from registry import Registry
from reports.drift import DriftPolicy, DriftResult, compute_drift
from reports.html import (
    render_comparison,
    render_drift,
    render_model_card,
    render_performance,
)
from reports.index import publish
from reports.performance import PerformanceResult, compute_performance

log = logs.get("reporting")


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def label(self) -> str:
        return f"{self.start:%Y-%m-%d} .. {self.end:%Y-%m-%d}"


def drift_policy(cfg: Config) -> DriftPolicy:
    d = cfg.settings.reports.drift
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
    )


def _day(d: date | None) -> datetime | None:
    return datetime.combine(d, time()) if d else None


def _clock(con: duckdb.DuckDBPyConnection) -> datetime:
    clock = data_clock(con)
    if clock is None:
        raise NotEnoughData("the warehouse has no transactions yet: run `fraudwatch ingest` first")
    return clock


def _feature_frame(
    con: duckdb.DuckDBPyConnection, cfg: Config, reg: Registry, window: Window
) -> pl.DataFrame:
    """Features for the window plus the champion's score (computed, so both sides compare)."""
    table = compute_features(con, cfg, start=window.start, end=window.end)
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    champion = load_model(reg, cfg.settings.model.name, "champion")
    if champion is not None and table.num_rows:
        scores, _ = predict(
            champion, table, inference_policy(cfg), cfg.settings.scoring.num_threads
        )
        frame = frame.with_columns(pl.Series("score", scores))
    return frame


def drift_report(
    con: duckdb.DuckDBPyConnection,
    cfg: Config,
    reg: Registry,
    *,
    start: date | None = None,
    end: date | None = None,
) -> tuple[DriftResult, Window, Window]:
    """Reference vs current drift; ``start``/``end`` override the current window."""
    d = cfg.settings.reports.drift
    clock = _clock(con)
    current = Window(
        _day(start) or clock - timedelta(days=d.current_days),
        _day(end) or clock + timedelta(microseconds=1),
    )
    ref_start, ref_end = _day(d.reference_start), _day(d.reference_end)
    if ref_start is None or ref_end is None:
        champion = reg.get_alias(cfg.settings.model.name, "champion")
        if champion is None:
            raise NotEnoughData(
                "no drift reference: promote a champion (its training window is the reference) "
                "or set [reports.drift] reference_start and reference_end"
            )
        ref_start = ref_start or champion.lineage.training_start
        ref_end = ref_end or champion.lineage.training_end
    reference = Window(ref_start, ref_end)
    spec = feature_spec(cfg)
    ref = _feature_frame(con, cfg, reg, reference)
    cur = _feature_frame(con, cfg, reg, current)
    if ref.height == 0 or cur.height == 0:
        raise NotEnoughData(
            f"no transactions in the {'reference' if ref.height == 0 else 'current'} window "
            f"({(reference if ref.height == 0 else current).label()})"
        )
    numeric = [n for n in spec.names if n not in spec.categorical]
    result = compute_drift(
        ref,
        cur,
        numeric=numeric,
        categorical=list(spec.categorical),
        policy=drift_policy(cfg),
        score_column="score" if "score" in ref.columns and "score" in cur.columns else None,
    )
    return result, reference, current


def performance_frames(
    con: duckdb.DuckDBPyConnection,
    cfg: Config,
    reg: Registry,
    *,
    start: date | None = None,
    end: date | None = None,
) -> tuple[list[tuple[str, int, pl.DataFrame]], Window]:
    """Matured, labelled transactions with their stored live scores.

    The champion's series is what production served (role ``champion``, whichever
    version held the alias at the time); the challenger's is its shadow scores.
    """
    s = cfg.settings
    clock = _clock(con)
    matured = clock - timedelta(days=s.source.label_delay_days)
    window = Window(
        _day(start) or matured - timedelta(days=s.reports.performance_days),
        min(_day(end) or matured, matured),
    )
    out = []
    challenger = reg.get_alias(s.model.name, "challenger")
    queries: list[tuple[str, str, list[Any]]] = [("champion", "s.role = 'champion'", [])]
    if challenger is not None:
        queries.append(
            ("challenger", "s.role = 'challenger' AND s.model_version = ?", [challenger.version])
        )
    for role, where, extra in queries:
        frame = pl.from_arrow(
            con.sql(
                "SELECT t.transaction_id, t.event_time, t.card_id, t.amount, s.score, "
                "s.model_version, coalesce(l.is_fraud, false) AS is_fraud "
                "FROM scores s JOIN transactions t USING (transaction_id) "
                "LEFT JOIN (SELECT transaction_id, arg_max(is_fraud, reported_at) AS is_fraud "
                "           FROM labels GROUP BY transaction_id) l USING (transaction_id) "
                f"WHERE s.model_name = ? AND {where} "
                "AND t.event_time >= ? AND t.event_time < ? ORDER BY t.event_time",
                params=[s.model.name, *extra, window.start, window.end],
            ).to_arrow_table()
        )
        assert isinstance(frame, pl.DataFrame)
        if frame.height:
            # the version that served most of the window (a champion may change mid-window)
            version = int(frame["model_version"].mode().sort()[-1])
            out.append((role, version, frame.drop("model_version")))
    return out, window


def performance_report(
    con: duckdb.DuckDBPyConnection,
    cfg: Config,
    reg: Registry,
    *,
    start: date | None = None,
    end: date | None = None,
) -> tuple[list[PerformanceResult], Window]:
    s = cfg.settings
    frames, window = performance_frames(con, cfg, reg, start=start, end=end)
    if not frames:
        raise NotEnoughData(
            f"no scored transactions with matured labels in {window.label()}: labels mature "
            f"{s.source.label_delay_days} days after the event"
        )
    results = [
        compute_performance(
            frame,
            threshold=s.alerts.threshold,
            k=s.alerts.daily_budget,
            model_name=s.model.name,
            model_version=version,
            role=role,
        )
        for role, version, frame in frames
    ]
    return results, window


def _stamp() -> str:
    return f"{utcnow():%Y-%m-%dT%H%M%S}"


def write_drift(
    con: duckdb.DuckDBPyConnection, cfg: Config, reg: Registry, **kw: Any
) -> tuple[DriftResult, Path]:
    result, reference, current = drift_report(con, cfg, reg, **kw)
    meta = {
        "reference": reference.label(),
        "current": current.label(),
        "model": cfg.settings.model.name,
    }
    html = render_drift(result, title=f"Drift — {current.label()}", meta=meta)
    drifted = sum(1 for f in result.features if f.drifted)
    headline = {
        "verdict": "drift" if result.dataset_drift else "no drift",
        "drifted features": f"{drifted} of {len(result.features)}",
        "window": current.label(),
    }
    path = publish(
        cfg.reports_dir, "drift", f"{_stamp()}-drift", html, headline, f"Drift {current.label()}"
    )
    return result, path


def delivery_backlog(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Alerts a channel has not accepted yet (pending) or gave up on (failed), per channel."""
    rows = con.execute(
        "SELECT channel, count(*) FILTER (WHERE status = 'pending'), "
        "count(*) FILTER (WHERE status = 'failed') FROM alerts GROUP BY channel ORDER BY channel"
    ).fetchall()
    pending = ", ".join(f"{c} {p}" for c, p, _ in rows if p) or "none"
    failed = ", ".join(f"{c} {f}" for c, _, f in rows if f) or "none"
    return {"alerts pending delivery": pending, "alerts failed": failed}


def write_performance(
    con: duckdb.DuckDBPyConnection, cfg: Config, reg: Registry, **kw: Any
) -> tuple[list[PerformanceResult], Path]:
    results, window = performance_report(con, cfg, reg, **kw)
    undelivered = delivery_backlog(con)
    meta = {"window": window.label(), "model": cfg.settings.model.name, **undelivered}
    html = render_performance(results, title=f"Performance — {window.label()}", meta=meta)
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
    path = publish(
        cfg.reports_dir,
        "performance",
        f"{_stamp()}-performance",
        html,
        headline,
        f"Performance {window.label()}",
    )
    return results, path


def model_card_data(info: Any, aliases: list[str]) -> dict[str, Any]:
    d = info.to_dict()
    d["aliases"] = aliases
    return d


def write_model_cards(cfg: Config, reg: Registry, *, refresh: bool = False) -> list[Path]:
    """A model card per version (written once; aliases change, lineage does not)."""
    written = []
    name = cfg.settings.model.name
    for info in reg.list_versions(name):
        path = cfg.reports_dir / "models" / f"{name}-v{info.version}.html"
        if path.exists() and not refresh:
            continue
        html = render_model_card(model_card_data(info, list(info.aliases)))
        quality = (info.lineage.data_quality or {}).get("status", "unknown")
        metrics = info.lineage.metrics or {}
        headline = {
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
    meta = {
        "candidate": f"v{candidate.version}",
        "champion": f"v{champion.version}" if champion is not None else "none (first model)",
        "window": f"{start:%Y-%m-%d} .. {end:%Y-%m-%d}" if start and end else "validation metrics",
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
    )


def reports_due(con: duckdb.DuckDBPyConnection, cfg: Config) -> bool:
    cadence = cfg.settings.reports.cadence
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


def write_reports_with(
    con: duckdb.DuckDBPyConnection, cfg: Config, reg: Registry
) -> dict[str, Any]:
    """Drift, performance and model cards; a report without enough data is skipped with why."""
    out: dict[str, Any] = {"written": [], "skipped": {}}
    for kind, writer in (("drift", write_drift), ("performance", write_performance)):
        try:
            _, path = writer(con, cfg, reg)
            out["written"].append(str(path))
        except NotEnoughData as exc:
            out["skipped"][kind] = str(exc)
    out["written"].extend(str(p) for p in write_model_cards(cfg, reg))
    return out


def write_reports(cfg: Config) -> dict[str, Any]:
    """The scheduled reports job: its own ledger row."""
    with (
        configured_warehouse(cfg) as con,
        ledger(con, "reports") as rec,
    ):
        rec.counts["reports"] = write_reports_with(con, cfg, open_registry(cfg))
        return rec.counts["reports"]
